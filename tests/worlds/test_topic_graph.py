"""Synthetic topic graphs: a valid CSR graph of the requested size with its category tree, and page
embeddings that are deterministic per page and closer within a topic than across topics."""

import numpy as np

from protege.worlds.graphs.store import check_graph, open_graph
from protege.worlds.graphs.topic_graph import (
    TopicEmbedder,
    TopicSpec,
    build_topic_graph,
    page_text,
    spec_of,
    topic_of,
)

SPEC = TopicSpec(levels=2, branching=4, pages_per_leaf=16, seed=1,
                 link_mix=(0.1, 0.4, 0.5), text_mix=(0.3, 0.3, 0.4))
NODES, EDGES = 500, 4000


def test_topic_graph_is_a_valid_graph_with_its_hub_tree(tmp_path):
    info = build_topic_graph(tmp_path / "g", NODES, EDGES, SPEC)
    assert info["edges"] == EDGES and info["structural_links"] < EDGES
    counts = check_graph(tmp_path / "g")
    assert counts["pages"] == NODES and counts["links"] == EDGES
    graph = open_graph(tmp_path / "g")
    assert spec_of(graph) == SPEC
    src = np.repeat(np.arange(NODES), graph.out_degree())
    assert not (src == np.asarray(graph.targets)).any()  # no self-loops
    for u in (1, 17, 130, 499):  # every non-hub page links to its leaf's hub first
        assert graph.neighbors(u)[0] == (u // 16) * 16
    hub = set(graph.neighbors(64).tolist())  # a level-1 hub (topics of 64 pages, leaves of 16)
    assert {0, 128, 448} <= hub                 # the other level-1 hubs
    assert {80, 96, 112} <= hub                 # its subtopics' hubs
    assert set(range(65, 80)) <= hub            # the pages of its leaf
    leaf_hub = graph.neighbors(80)[:3 + 15].tolist()  # a level-2 hub: its siblings, then its leaf
    assert leaf_hub == [64, 96, 112] + list(range(81, 96))


def test_embeddings_are_deterministic_unit_and_carry_topic_signal():
    embed = TopicEmbedder(SPEC, dim=32)
    whole = embed(0, NODES)
    np.testing.assert_array_equal(np.concatenate([embed(0, 123), embed(123, NODES)]), whole)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1, atol=1e-5)
    leaf = topic_of(SPEC, np.arange(NODES), 2)
    cos = whole @ whole.T
    same = (leaf[:, None] == leaf[None, :]) & ~np.eye(NODES, dtype=bool)
    assert cos[same].mean() > cos[leaf[:, None] // 4 != leaf[None, :] // 4].mean() + 0.2
    assert page_text(SPEC, 7) == page_text(SPEC, 7) != page_text(SPEC, 8)
    assert len(page_text(SPEC, 7).split()) == SPEC.words_per_page
