from collections import deque

import numpy as np

from protege.systems.wikinav.evaluate import evaluate, headline_rows
from protege.systems.wikinav.navigate import navigate, random_scorer
from protege.systems.wikinav.pairs import (
    NavEvalConfig,
    bfs_distances,
    distance_pairs,
    eval_pairs,
    non_hubs,
    walk_pairs,
)
from protege.worlds.graphs.store import Graph, csr_from_edges


def random_graph(n=400, deg=2, seed=0):
    rng = np.random.default_rng(seed)
    src = np.repeat(np.arange(n), deg)
    dst = rng.integers(0, n, len(src))
    return Graph(*csr_from_edges(src, dst, n))


def naive_distance(g, s, t):
    seen, queue = {s: 0}, deque([s])
    while queue:
        u = queue.popleft()
        for v in g.neighbors(u):
            if int(v) not in seen:
                seen[int(v)] = seen[u] + 1
                queue.append(int(v))
    return seen.get(t, -1)


def test_bfs_matches_naive():
    g = random_graph()
    d = bfs_distances(g.offsets, g.targets, 5)
    for t in range(0, 400, 7):
        assert d[t] == naive_distance(g, 5, t)


def test_distance_pairs_have_the_stated_shortest_path_distance():
    g = random_graph()
    pairs = distance_pairs(g, range(1, 9), n=40, sources=200, seed=0)
    assert sum(len(s) for s, _ in pairs.values()) > 150
    for k, (src, tgt) in pairs.items():
        assert len(src) <= 40
        for s, t in zip(src, tgt):
            assert naive_distance(g, int(s), int(t)) == k


def test_walk_pairs_end_k_step_walks():
    g = random_graph()
    src, tgt = walk_pairs(g, 4, 100, seed=3)
    assert len(src) == 100 and (src != tgt).all()
    for s, t in zip(src, tgt):
        assert 1 <= naive_distance(g, int(s), int(t)) <= 4


def test_navigate_counts_steps_and_backtracks():
    # 0 -> 1 (dead end), 0 -> 2 -> 3. A scorer preferring low ids tries 1 first.
    g = Graph(*csr_from_edges(np.array([0, 0, 2]), np.array([1, 2, 3]), 4))

    def low_first(cur, goal, cand, seg):
        return -cand.astype(float)
    steps = navigate(g, low_first, np.array([0, 0, 3]), np.array([3, 1, 3]), budget=10, backtrack=True)
    assert list(steps) == [4, 1, 0]  # 0->1, back to 0, 0->2, 2->3
    greedy = navigate(g, low_first, np.array([0]), np.array([3]), budget=10, backtrack=False)
    assert list(greedy) == [-1]       # stuck in the dead end
    assert list(navigate(g, low_first, np.array([0]), np.array([3]), budget=3, backtrack=True)) == [-1]


def test_evaluate_rows_and_min_pairs():
    g = random_graph(n=300)
    cfg = NavEvalConfig(ks=(1, 2, 30), pairs=40, min_pairs=20, bfs_sources=300)
    rows = evaluate(g, {"random": random_scorer(0)}, cfg)
    cells = {(r["pairs"], r["k"]) for r in rows}
    assert {("walk", 1), ("walk", 2), ("walk", 30), ("distance", 1), ("distance", 2)} <= cells
    assert ("distance", 30) not in cells and ("nonhub", 30) not in cells  # fewer than min_pairs
    for r in rows:
        assert r["ci_low"] <= r["success"] <= r["ci_high"]
        assert r["budget"] == r["budget_factor"] * r["k"] and r["budget_factor"] in (2.0, 4.0)
        if r["pairs"] != "walk":
            assert r["oracle_mean_length"] == r["k"]
    by_budget = {(r["pairs"], r["k"], r["mode"], r["budget_factor"]): r for r in rows}
    for (kind, k, mode, factor), r in by_budget.items():  # one navigation: 4k succeeds where 2k did
        if factor == 2.0:
            assert by_budget[kind, k, mode, 4.0]["success"] >= r["success"]
    assert len(headline_rows(rows)) == 2 * len(cells)


def test_nonhub_pairs_end_on_pages_below_the_median_in_degree():
    g = random_graph(n=300)
    indeg = np.bincount(g.targets, minlength=300)
    mask, median = non_hubs(g)
    assert median == np.median(indeg[indeg > 0]) and (indeg[mask] < median).all() and (indeg[mask] > 0).all()
    pairs = eval_pairs(g, NavEvalConfig(ks=(1, 2, 3), pairs=30, min_pairs=1, bfs_sources=300), kinds=("nonhub",))
    assert pairs and all(mask[t].all() for _, t in pairs.values())
    for (kind, k), (src, tgt) in pairs.items():
        assert all(naive_distance(g, int(s), int(t)) == k for s, t in zip(src, tgt))


def test_pairs_can_be_restricted_to_chosen_targets():
    g = random_graph(n=300)
    chosen = np.zeros(300, bool)
    chosen[::5] = True
    pairs = eval_pairs(g, NavEvalConfig(ks=(2, 4), pairs=20, min_pairs=1, bfs_sources=300), target_mask=chosen)
    assert {kind for kind, _ in pairs} == {"walk", "distance", "nonhub"}
    assert all(chosen[t].all() for _, t in pairs.values())
