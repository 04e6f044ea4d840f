"""Tiny hand-made sources for the graph builders."""

import json

import pytest

from tests.conftest import write_dictd


@pytest.fixture
def dictd_path(tmp_path):
    return write_dictd(tmp_path, [
        (["Alpha"], "Alpha\n\n   <test> Links to {beta} and {Gamma\n   rays} and {Beta}.\n"),
        (["beta", "B"], "beta\n\n   See {alphas}, {missing page} and {beta} itself.\n"
                        "   {home (http://example.org/)}\n"),
        (["gamma rays"], "gamma rays\n\n   No links here.\n"),
        (["Café"], "Café\n\n   Unicode: {gamma rays} and {B}.\n"),
    ])


@pytest.fixture
def html_folder(tmp_path):
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text(
        '<html><head><title>Home</title><style>p{}</style></head><body><p>Welcome '
        '<a href="a.html#top">to A</a> <a href="sub/b.html?x=1">B</a> <a href="sub/">sub index</a>'
        '<a href="http://example.org/a.html">web</a> <a href="../outside.html">out</a>'
        '<a href="missing.html">gone</a> <a href="caf%C3%A9.html">café</a> <a href="a.html">again</a>'
        '<a href="#self">self</a></body></html>', encoding="utf-8")
    (root / "a.html").write_text("<title>A page</title><p>Unclosed <b>bold <a href='index.html'>home"
                                 "<div><a href=sub/b.html>b</a> <<< stray", encoding="utf-8")
    (root / "sub" / "b.html").write_text('<p>B</p><a href="../index.html">up</a><a href="/a.html">abs</a>',
                                         encoding="utf-8")
    (root / "sub" / "index.html").write_text("<p>no links at all</p>", encoding="utf-8")
    (root / "café.html").write_text('<title>Café</title><a href="index.html">home</a>', encoding="utf-8")
    (root / "notes.txt").write_text("not a page")
    (tmp_path / "outside.html").write_text("<a href='site/index.html'>x</a>")
    return root


@pytest.fixture
def edgelist_paths(tmp_path):
    edges = tmp_path / "edges.txt"
    edges.write_text("# source target anchor\nA B the b link\nA C\nB C\nC A\nC A dup\nC C\n"
                     "B Z dangling\nQ A unknown source\nD A\n", encoding="utf-8")
    texts = tmp_path / "pages.jsonl"
    texts.write_text("\n".join(json.dumps(r) for r in [
        {"id": "A", "title": "Page A", "text": "alpha"}, {"id": "B", "text": "beta"},
        {"id": "C", "title": "Ça", "text": "gamma"}, {"id": "D", "title": "D", "text": "delta"}]) + "\n",
        encoding="utf-8")
    return edges, texts
