"""Graph commands never delete what they did not write: an output folder that is someone else's, or
that overlaps the input, is refused in one line and left as it was (regressions: `nav build html SITE
--out SITE` replaced the site with the graph; `--out DIR` deleted whatever DIR held)."""

import json

import pytest

from protege.core.errors import UserError
from protege.data.manifest import MANIFEST
from protege.worlds.graphs.builders import build
from protege.worlds.graphs.store import open_graph
from protege.worlds.graphs.walks import walk_stats


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text('<title>Home</title><a href="a.html">a</a>', encoding="utf-8")
    (root / "a.html").write_text('<title>A</title><a href="index.html">home</a>', encoding="utf-8")
    return root


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_existing_foreign_folder_is_refused_and_kept(site, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("three years of work")
    with pytest.raises(UserError, match="already exists"):
        build("html", site, out)
    assert (out / "thesis.tex").read_text() == "three years of work"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


@pytest.mark.parametrize("where", ["same", "inside", "holding"])
def test_output_overlapping_the_input_is_refused(site, tmp_path, where):
    out = {"same": site, "inside": site / "graph", "holding": tmp_path}[where]
    before = snapshot(site)
    with pytest.raises(UserError, match="overlaps the input"):
        build("html", site, out)
    assert snapshot(site) == before
    assert not (site / "graph").exists()


def test_an_earlier_graph_is_replaced_but_not_with_extra_files(site, tmp_path):
    out = tmp_path / "g"
    build("html", site, out)
    (out / "embeddings-tfidf.safetensors").write_bytes(b"cache")  # a derived cache may go
    build("html", site, out)
    assert open_graph(out).num_nodes == 2
    (out / "notes.md").write_text("mine")
    with pytest.raises(UserError, match="notes.md"):
        build("html", site, out)
    assert (out / "notes.md").read_text() == "mine"


def test_output_that_is_a_file_is_refused(site, tmp_path):
    (tmp_path / "g").write_text("a file")
    with pytest.raises(UserError, match="existing file"):
        build("html", site, tmp_path / "g")
    assert (tmp_path / "g").read_text() == "a file"


def test_walks_never_write_into_the_graph_or_a_foreign_folder(site, tmp_path):
    graph = tmp_path / "g"
    build("html", site, graph)
    before = snapshot(graph)
    with pytest.raises(UserError, match="overlaps the input"):
        walk_stats(graph, 2, 3, "stop", 2, 0, out=graph)
    with pytest.raises(UserError, match="overlaps the input"):
        walk_stats(graph, 2, 3, "stop", 2, 0, out=graph / "walks")
    assert snapshot(graph) == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        walk_stats(graph, 2, 3, "stop", 2, 0, out=foreign)
    assert (foreign / "keep.txt").read_text() == "x"
    walk_stats(graph, 2, 3, "stop", 2, 0, out=tmp_path / "w")
    walk_stats(graph, 2, 3, "stop", 2, 0, out=tmp_path / "w")  # its own earlier output: replaced
    manifest = json.loads((tmp_path / "w" / MANIFEST).read_text())
    assert manifest["meta"]["kind"] == "protege.worlds.graphs.walks"


@pytest.mark.parametrize("content,message", [
    ("", "no pages"), ("# only a comment\n\n", "no pages"), ("A A\n", "no link"),
])
def test_empty_edge_lists_are_refused(tmp_path, content, message):
    (tmp_path / "e.txt").write_text(content)
    with pytest.raises(UserError, match=message):
        build("edgelist", tmp_path / "e.txt", tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_edge_list_and_page_texts_must_be_utf8(tmp_path):
    (tmp_path / "e.txt").write_bytes(b"A B\ncaf\xe9 A\n")
    with pytest.raises(UserError, match=r"e.txt line 2: not UTF-8"):
        build("edgelist", tmp_path / "e.txt", tmp_path / "g")
    (tmp_path / "e.txt").write_text("A B\n")
    (tmp_path / "p.jsonl").write_bytes(b'{"id": "A"}\n\x89PNG\x00\xff\n')
    with pytest.raises(UserError, match=r"p.jsonl line 2: not UTF-8"):
        build("edgelist", tmp_path / "e.txt", tmp_path / "g", texts=tmp_path / "p.jsonl")
    (tmp_path / "sub").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        build("edgelist", tmp_path / "sub", tmp_path / "g")
