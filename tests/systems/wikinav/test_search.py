"""Search that finds pages: BM25's best page, then the policy; and its held-out measurement."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import protege.systems.wikinav.cli  # noqa: F401  registers `protege nav`
from protege.core.cli import app
from protege.core.errors import UserError
from protege.systems.wikinav.search import first_sentence

WORDS = ("river canyon glacier comet nebula quartz basalt falcon heron maple cedar orchid tundra "
         "delta lagoon meteor galaxy pulsar granite marble").split()


def invoke(*args):
    return CliRunner().invoke(app, list(map(str, args)), catch_exceptions=True)


@pytest.fixture(scope="module")
def site_graph(tmp_path_factory):
    """A 20-page site: a sidebar link to the first page on every page, a ring of body links plus a chord."""
    tmp = tmp_path_factory.mktemp("search")
    site = tmp / "site"
    site.mkdir()
    n = len(WORDS)
    for i, word in enumerate(WORDS):
        near = [WORDS[(i + 1) % n], WORDS[(i + 7) % n]]
        body = "".join(f'<p>Related: <a href="{w}.html">the {w} page</a>.</p>' for w in near)
        text = (f"<p>The {word} is the subject of this page and of its {word} notes. "
                f"Every {word} fact sits here, {word} after {word}, with more words on {word}.</p>")
        (site / f"{word}.html").write_text(
            f"<html><head><title>{word.title()} — Atlas</title></head><body><div role='main'>"
            f"<h1>{word.title()}</h1>{text * 3}{body}</div><div class='sidebar'>"
            f"<a href='{WORDS[0]}.html'>Start</a></div></body></html>", encoding="utf-8")
    from protege.worlds.graphs.builders import build
    build("html", site, tmp / "g", base_url="https://atlas.example/")
    return tmp / "g"


@pytest.fixture(scope="module")
def untrained(site_graph):
    """The scorer before training: the fixed similarity baseline plus a zero correction."""
    from protege.nn.link_scorer import LinkScorer, PolicyConfig
    from protege.nn.text_encoders import load_or_encode
    from protege.worlds.graphs.store import open_graph
    graph = open_graph(site_graph)
    return LinkScorer(load_or_encode(graph, "tfidf", show_progress=False), PolicyConfig()).eval(), graph


def test_first_sentence():
    assert first_sentence("The cat sat on the mat today. Then it left.") == "The cat sat on the mat today."
    assert first_sentence("Too short. The rest of it goes on and on.") is None
    assert first_sentence("os.path.join() joins paths with the separator. Next.") \
        == "os.path.join() joins paths with the separator."


def test_search_starts_at_bm25_best_and_follows_links(untrained):
    from protege.systems.wikinav.search import search
    model, graph = untrained
    rows = search(model, graph, "tfidf", "facts about the glacier", steps=4)
    assert rows[0]["page"] == "Glacier" and rows[0]["path"] == "glacier.html"
    assert rows[0]["url"] == "https://atlas.example/glacier.html"
    assert rows[0]["bm25"] == max(r["bm25"] for r in rows) > 0
    paths = graph.pages(["path"]).column("path").to_pylist()
    ids = [paths.index(r["path"]) for r in rows]
    assert len(ids) == 5 and len(set(ids)) == 5  # never revisits
    for i, row in enumerate(rows[1:], 1):
        assert row["from step"] < i and ids[i] in graph.neighbors(ids[row["from step"]])


def test_tfidf_query_encoder_reproduces_the_page_embeddings(untrained):
    from protege.nn.text_encoders import load_or_encode
    from protege.systems.wikinav.search import query_encoder
    _, graph = untrained
    encode = query_encoder(graph, "tfidf")
    np.testing.assert_allclose(encode(graph.texts()), load_or_encode(graph, "tfidf"), atol=1e-4)


def test_search_eval_rows_and_invariants(untrained):
    from protege.systems.wikinav.search import search_eval, search_markdown
    model, graph = untrained
    embeddings = model.embeddings
    rows = search_eval(model, graph, "tfidf", queries=8, seed=3)
    assert model.embeddings is embeddings  # the held-out copy is not left behind
    by = {(x["method"], x["k"]): x for x in rows}
    assert {m for m, _ in by} == {"bm25", "bm25+policy", "bm25+sim"} and all(x["n"] == 8 for x in rows)
    for method in ("bm25", "bm25+policy", "bm25+sim"):
        s = [by[method, k]["success"] for k in (1, 2, 5, 10, 20)]
        assert s == sorted(s)  # a list of more pages holds the target at least as often
        assert s[-1] == 1.0    # 20 pages: retrieval's top 20 and a 20-page walk both cover the site
    # navigation starts at BM25's best page: at k = 1 the three agree
    assert by["bm25", 1]["success"] == by["bm25+policy", 1]["success"] == by["bm25+sim", 1]["success"]
    # untrained, the policy is the similarity baseline exactly
    assert all(by["bm25+policy", k]["success"] == by["bm25+sim", k]["success"] for k in (1, 2, 5, 10, 20))
    assert "| bm25+policy |" in search_markdown(rows)


def test_held_out_queries_are_first_sentences(untrained):
    from protege.systems.wikinav.search import held_out_queries
    _, graph = untrained
    pages, sentences = held_out_queries(graph, 5, seed=0)
    table = graph.pages(["content", "headings"]).to_pylist()
    assert len(set(pages.tolist())) == 5
    for p, s in zip(pages, sentences):
        heading = table[p]["headings"][0]  # the content opens with it; the query is the prose after
        assert table[p]["content"].startswith(f"{heading} {s}") and s.startswith("The ") and s.endswith(".")
    with pytest.raises(UserError, match="--queries 20 or fewer"):
        held_out_queries(graph, 21, seed=0)


@pytest.mark.slow
def test_search_commands_on_a_trained_policy(site_graph, tmp_path):
    r = invoke("nav", "train", site_graph, "--out", tmp_path / "run", "--encoder", "tfidf",
               "--steps", 10, "--batch-size", 16)
    assert r.exit_code == 0, r.output
    r = invoke("nav", "search", "facts about the glacier", "--policy", tmp_path / "run", "--steps", 3)
    assert r.exit_code == 0 and "glacier.html" in r.output, r.output
    r = invoke("nav", "search-eval", tmp_path / "run", "--queries", 8, "--out", tmp_path / "s.json",
               "--markdown", tmp_path / "s.md")
    assert r.exit_code == 0, r.output
    assert len(json.loads((tmp_path / "s.json").read_text())) == 15
    assert "success@5" in (tmp_path / "s.md").read_text()
    r = invoke("nav", "search-eval", tmp_path / "run", "--queries", 0)
    assert isinstance(r.exception, UserError) and "--queries must be >= 1" in str(r.exception)


def test_search_steps_back_from_a_dead_end(dictd_path, tmp_path):
    from protege.nn.link_scorer import LinkScorer, PolicyConfig
    from protege.nn.text_encoders import load_or_encode
    from protege.systems.wikinav.search import search
    from protege.worlds.graphs.builders import build
    from protege.worlds.graphs.store import open_graph
    build("dictd", dictd_path, tmp_path / "g")
    graph = open_graph(tmp_path / "g")
    model = LinkScorer(load_or_encode(graph, "tfidf", show_progress=False), PolicyConfig()).eval()
    rows = search(model, graph, "tfidf", "unicode café", steps=3)
    assert rows[0]["page"] == "Café" and rows[0]["path"] == ""  # dictd pages have no source path
    titles = graph.titles()
    ids = [titles.index(r["page"]) for r in rows]
    assert len(set(ids)) == len(ids) == 4  # all four pages, none twice
    dead_end = next(i for i, p in enumerate(ids) if len(graph.neighbors(p)) == 0)
    after = rows[dead_end + 1]  # reached by stepping back: linked from an earlier page, not the dead end
    assert after["from step"] < dead_end and ids[dead_end + 1] in graph.neighbors(ids[after["from step"]])
