import numpy as np
import pytest

from protege.core.errors import UserError
from protege.data.manifest import MANIFEST
from protege.worlds.graphs.builders import build
from protege.worlds.graphs.html import resolve_href
from protege.worlds.graphs.store import open_graph
from protege.worlds.text.dictd import read_dictd


def edges_by_title(graph):
    titles = graph.titles()
    return {(titles[u], titles[v]) for u in range(graph.num_nodes) for v in graph.neighbors(u)}


def test_dictd_builder_resolves_aliases_plurals_and_counts(dictd_path, tmp_path):
    entries = read_dictd(dictd_path)
    assert entries[0].headwords[0] == "alpha"
    assert not any(h.startswith("00-") for e in entries for h in e.headwords)
    summary = build("dictd", dictd_path, tmp_path / "g")
    g = open_graph(tmp_path / "g")
    assert g.titles() == ["Alpha", "beta", "gamma rays", "Café"]
    assert edges_by_title(g) == {("Alpha", "beta"), ("Alpha", "gamma rays"), ("beta", "Alpha"),
                                 ("Café", "gamma rays"), ("Café", "beta")}
    assert summary["duplicate_edges"] == 1          # {beta} and {Beta}
    assert summary["self_loops"] == 1               # beta -> {beta}
    assert summary["links_dangling"] == 1           # {missing page}
    assert summary["links_external"] == 1           # {home (http://...)}
    assert summary["links_by_singular"] == 1        # {alphas} -> alpha
    assert summary["dead_ends"] == 1 and summary["non_ascii_titles"] == 1
    assert summary["headwords"] == 5 and g.num_nodes == 4
    anchors = g.pages(["links"]).column("links").to_pylist()[0]
    assert [a["anchor"] for a in anchors] == ["beta", "Gamma rays"]  # whitespace folded


def test_dictd_bad_index_line_names_file_and_line(tmp_path):
    (tmp_path / "bad.index").write_text("word\tAA\tB\nbroken line\n")
    (tmp_path / "bad.dict").write_text("xx")
    with pytest.raises(UserError, match=r"bad.index line 2"):
        build("dictd", tmp_path / "bad.index", tmp_path / "g")


def test_html_builder_handles_broken_markup_unicode_and_outside_links(html_folder, tmp_path):
    summary = build("html", html_folder, tmp_path / "g")
    g = open_graph(tmp_path / "g")
    e = edges_by_title(g)
    titles = set(g.titles())
    assert titles == {"Home", "A page", "sub/b.html", "sub/index.html", "Café"}
    assert {("Home", "A page"), ("Home", "sub/b.html"), ("Home", "sub/index.html"), ("Home", "Café"),
            ("A page", "Home"), ("A page", "sub/b.html"), ("sub/b.html", "Home"),
            ("sub/b.html", "A page"), ("Café", "Home")} == e
    assert summary["links_outside_folder"] == 2     # http://... and ../outside.html
    assert summary["links_dangling"] == 1           # missing.html
    assert summary["duplicate_edges"] == 1          # a.html twice
    assert summary["self_loops"] == 1               # #self
    assert summary["dead_ends"] == 1 and summary["non_ascii_titles"] == 1
    texts = dict(zip(g.titles(), g.pages(["text"]).column("text").to_pylist()))
    assert "p{}" not in texts["Home"] and "Welcome" in texts["Home"]


@pytest.mark.parametrize("page,href,want", [
    ("a/b.html", "../c.html#x", "c.html"), ("a/b.html", "d/", "a/d/index.html"),
    ("b.html", "../x.html", None), ("b.html", "mailto:x@y", None), ("a/b.html", "/c.html", "c.html"),
    ("b.html", "%E2%82%AC.html", "€.html")])
def test_resolve_href(page, href, want):
    assert resolve_href(page, href) == want


def test_edgelist_builder(edgelist_paths, tmp_path):
    edges, texts = edgelist_paths
    summary = build("edgelist", edges, tmp_path / "g", texts=texts)
    g = open_graph(tmp_path / "g")
    assert edges_by_title(g) == {("Page A", "B"), ("Page A", "Ça"), ("B", "Ça"), ("Ça", "Page A"),
                                 ("D", "Page A")}
    assert (summary["duplicate_edges"], summary["self_loops"], summary["links_dangling"],
            summary["links_unknown_source"], summary["non_ascii_titles"]) == (1, 1, 1, 1, 1)
    assert g.offsets.dtype == np.int64 and g.targets.dtype == np.int32


def test_edgelist_errors_name_the_line(tmp_path):
    (tmp_path / "e.txt").write_text("A B\nlonely\n")
    with pytest.raises(UserError, match=r"e.txt:2"):
        build("edgelist", tmp_path / "e.txt", tmp_path / "g")
    (tmp_path / "p.jsonl").write_text('{"id": "A"}\n{oops\n')
    (tmp_path / "e.txt").write_text("A B\n")
    with pytest.raises(UserError, match=r"p.jsonl line 2"):
        build("edgelist", tmp_path / "e.txt", tmp_path / "g", texts=tmp_path / "p.jsonl")


def test_manifest_detects_corruption_and_unknown_source(edgelist_paths, tmp_path):
    edges, texts = edgelist_paths
    build("edgelist", edges, tmp_path / "g", texts=texts)
    assert (tmp_path / "g" / MANIFEST).exists()
    with open(tmp_path / "g" / "targets.npy", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x7f")
    with pytest.raises(UserError, match="checksum"):
        open_graph(tmp_path / "g")
    with pytest.raises(UserError, match="Valid: dictd, edgelist, html"):
        build("wiki", edges, tmp_path / "h")
