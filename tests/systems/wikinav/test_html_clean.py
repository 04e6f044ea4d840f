"""Clean page text for HTML sites: main content without the sidebar, headings, anchor texts of links
into a page, source path and URL, and dropping links that every page carries (navigation chrome)."""

import pytest

from protege.core.errors import UserError
from protege.worlds.graphs.builders import build
from protege.worlds.graphs.store import open_graph

TOPICS = {
    "widgets.html": ("Widgets", "A widget is a small reusable control drawn on a canvas"),
    "gears.html": ("Gears", "Gears transmit torque between rotating shafts through meshing teeth"),
    "rivers.html": ("Rivers", "A river carries fresh water from mountain springs down to the sea"),
    "comets.html": ("Comets", "A comet is an icy body that releases gas when it nears the sun"),
}
SIDEBAR_WORDS = "Quick search sidebar Navigation Previous topic This page Show source"


def page(name, title, sentence, body_links=""):
    sidebar = "".join(f'<li><a href="{n}">{t}</a></li>' for n, (t, _) in TOPICS.items())
    paragraphs = "".join(
        f"<p>{sentence}. Paragraph {i} explains {title.lower()} at some length, with enough words that "
        f"a content extractor sees real prose here and not a navigation list of short labels.</p>"
        for i in range(4))
    return (f"<html><head><title>{title} — Demo 1.0 documentation</title></head><body>"
            f'<div class="related"><a href="index.html">Home</a> | <a href="genindex.html">General Index</a></div>'
            f'<div class="document"><div class="body" role="main"><h1>{title}¶</h1>{paragraphs}'
            f"<h2>Details of {title.lower()}</h2><p>{sentence} again, in the details section, which "
            f"goes on for a while to read like documentation.</p>{body_links}</div></div>"
            f'<div class="sphinxsidebar"><h3>Navigation</h3><p>{SIDEBAR_WORDS}</p><ul>{sidebar}</ul></div>'
            f'<div class="footer"><a href="copyright.html">Copyright</a> 2024.</div></body></html>')


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    for name, (title, sentence) in TOPICS.items():
        links = '<p>See <a href="gears.html">the gear train chapter</a>.</p>' if name != "gears.html" else ""
        links += '<p>More in <a href="notes.html">the notes</a>.</p>' if name == "widgets.html" else ""
        (root / name).write_text(page(name, title, sentence, links), encoding="utf-8")
    (root / "notes.html").write_text(page("notes.html", "Notes", "Notes on every topic of the demo"),
                                     encoding="utf-8")  # linked from one page body only
    (root / "index.html").write_text(page("index.html", "Home", "Welcome to the demo documentation"),
                                     encoding="utf-8")
    (root / "genindex.html").write_text(page("genindex.html", "General Index", "Every term of the demo"),
                                        encoding="utf-8")
    (root / "copyright.html").write_text("<title>Copyright</title><p>(c) 2024</p>"
                                         '<a href="index.html">Home</a>', encoding="utf-8")
    (root / "frames.html").write_text('<html><title>Frames</title><frameset><frame src="index.html">'
                                      "</frameset></html>", encoding="utf-8")  # no text at all
    return root


def records(folder):
    table = open_graph(folder).pages()
    return {r["path"]: r for r in table.to_pylist()}


def test_text_is_main_content_with_headings_and_in_anchors(site, tmp_path):
    summary = build("html", site, tmp_path / "g", base_url="https://demo.example/docs")
    pages = records(tmp_path / "g")
    gears = pages["gears.html"]
    assert gears["title"] == "Gears"  # the site suffix every title shares is dropped
    assert summary["title_suffix_stripped"] == "Demo 1.0 documentation"
    assert "meshing teeth" in gears["content"] and "Quick search" not in gears["content"]
    assert "Previous topic" not in gears["text"] and "General Index" not in gears["content"]
    assert gears["headings"][:2] == ["Gears", "Details of gears"]
    assert gears["in_anchors"][0] == "the gear train chapter"  # three pages name it so
    assert gears["text"].startswith("Gears · Details of gears. Linked as: the gear train chapter")
    assert gears["url"] == "https://demo.example/docs/gears.html"
    assert pages["copyright.html"]["url"] == "https://demo.example/docs/copyright.html"
    assert "(c) 2024" in pages["copyright.html"]["text"]
    # the frame set has no main content for the extractor: it keeps its whole text and is counted
    assert summary["pages_whole_text_fallback"] == 1 and summary["pages_main_content"] == 8


def test_default_url_is_the_file_uri(site, tmp_path):
    build("html", site, tmp_path / "g")
    assert records(tmp_path / "g")["rivers.html"]["url"] == (site / "rivers.html").resolve().as_uri()


def test_drop_common_links_removes_chrome_and_reports_it(site, tmp_path):
    full = build("html", site, tmp_path / "full")
    clean = build("html", site, tmp_path / "clean", drop_common_links=0.5)
    assert "links_dropped_common" not in full
    # home, general index, copyright and the four topics (in every sidebar) are each linked from all
    # eight or seven pages; the notes page, linked from one page's text, stays
    assert clean["common_link_targets"] == 7
    # occurrences dropped, counted before duplicates and self-links are
    assert clean["links_dropped_common"] >= full["links_resolved"] - clean["links_resolved"] > 0
    assert "copyright.html" in clean["common_link_examples"]
    g = open_graph(tmp_path / "clean")
    assert [g.titles()[t] for t in g.targets] == ["Notes"]


def test_drop_common_links_keeps_links_below_the_threshold(site, tmp_path):
    clean = build("html", site, tmp_path / "clean", drop_common_links=0.85)
    assert clean["common_link_targets"] == 1  # only the home page is linked from eight of nine pages
    g = open_graph(tmp_path / "clean")
    titles = g.titles()
    linked = {titles[t] for t in g.targets}
    assert "Home" not in linked and {"Gears", "General Index", "Copyright"} <= linked


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2])
def test_drop_common_links_must_be_a_fraction(site, tmp_path, fraction):
    with pytest.raises(UserError, match="--drop-common-links must be a fraction"):
        build("html", site, tmp_path / "g", drop_common_links=fraction)
    assert not (tmp_path / "g").exists()


def test_cli_refuses_html_options_for_other_sources(cli, tmp_path):
    edges = tmp_path / "e.txt"
    edges.write_text("a b\n")
    code, output = cli("nav", "build", "edgelist", str(edges), "--out", str(tmp_path / "g"),
                       "--drop-common-links", "0.5")
    assert code != 0 and "--drop-common-links is for html sources only" in output
    assert "Traceback" not in output
