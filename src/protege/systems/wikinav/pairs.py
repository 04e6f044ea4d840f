"""Source-target pairs for navigation evaluation and validation, k apart three ways (walk, distance,
non-hub; see `evaluate`), and the step budgets they are navigated with."""

from dataclasses import dataclass

import numpy as np
from numba import njit

from protege.worlds.graphs.walks import random_walks


@dataclass
class NavEvalConfig:
    """What to evaluate and how hard."""
    ks: tuple[int, ...] = tuple(range(1, 21))
    pairs: int = 300
    """pairs per k and pair kind"""
    min_pairs: int = 30
    """report a k only with at least this many pairs"""
    budget_factors: tuple[float, ...] = (2.0, 4.0)
    """step budgets for pairs k apart: ceil(f * k) for each f"""
    bfs_sources: int = 2000
    """sources searched (BFS) for distance pairs"""
    seed: int = 1234

    def __post_init__(self):
        from protege.core.config_help import check_fields
        check_fields(self, ks="nonempty", pairs=">=1", min_pairs=">=1", budget_factors="nonempty",
                     bfs_sources=">=1", seed=">=0")
        self.budget_factors = tuple(sorted(set(float(f) for f in self.budget_factors)))
        if not all(np.isfinite(f) and f > 0 for f in self.budget_factors):
            raise ValueError(f"budget factors must be finite and > 0, got {self.budget_factors}")
        if self.min_pairs > self.pairs:  # no k could ever be reported: an empty table, silently
            raise ValueError(f"min_pairs ({self.min_pairs}) is more than pairs ({self.pairs}); "
                             f"lower --min-pairs or raise --pairs")


def budget_for(k: int, factor: float) -> int:
    return int(np.ceil(factor * k))


@njit(cache=True)
def bfs_fill(offsets, targets, source, dist, queue, stop):
    """Breadth-first search from `source` over the CSR graph, writing path lengths into `dist` (which
    must hold -1 on every page) and the pages reached, in order, into `queue`; it stops once page
    `stop` has its length (-1: never). Returns how many pages it reached, so a caller that reuses the
    buffers resets only `dist[queue[:count]]`."""
    dist[source] = 0
    queue[0] = source
    head, tail = 0, 1
    while head < tail and (stop < 0 or dist[stop] < 0):
        u = queue[head]
        head += 1
        for e in range(offsets[u], offsets[u + 1]):
            v = targets[e]
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue[tail] = v
                tail += 1
    return tail


@njit(cache=True)
def bfs_distances(offsets, targets, source):
    """int32 [N] shortest-path lengths from `source` (-1 where unreachable)."""
    n = len(offsets) - 1
    dist = np.full(n, -1, np.int32)
    bfs_fill(offsets, targets, source, dist, np.empty(n, np.int64), -1)
    return dist


def walk_pairs(graph, k: int, n: int, seed: int, target_mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Up to `n` (source, target) pairs where target ends a k-step random walk (no dead-end stop,
    target != source, target in `target_mask` if given); sources uniform over pages with links."""
    rng = np.random.default_rng([seed, k])
    pages = np.flatnonzero(graph.out_degree() > 0)
    tries = 4 * n if target_mask is None else int(min(4 * n / max(target_mask.mean(), 1e-3), 400 * n))
    starts = rng.choice(pages, size=tries)
    walks = random_walks(graph, starts, k, "stop", seed=seed * 1000 + k)
    end = walks.nodes[:, -1]
    ok = (end >= 0) & (end != walks.nodes[:, 0])
    if target_mask is not None:
        ok &= target_mask[np.maximum(end, 0)]
    return walks.nodes[ok, 0][:n].astype(np.int64), end[ok][:n].astype(np.int64)


def distance_pairs(graph, ks, n: int, sources: int, seed: int, target_mask=None) -> dict:
    """k -> (sources, targets) at shortest-path distance exactly k (targets in `target_mask` if
    given), at most one pair per source."""
    rng = np.random.default_rng(seed)
    pages = np.flatnonzero(graph.out_degree() > 0)
    chosen = rng.choice(pages, size=min(sources, len(pages)), replace=False)
    found = {k: ([], []) for k in ks}
    offsets, targets = np.asarray(graph.offsets), np.asarray(graph.targets)
    for s in chosen:
        dist = bfs_distances(offsets, targets, s)
        if target_mask is not None:
            dist = np.where(target_mask, dist, -1)
        for k in ks:
            at_k = np.flatnonzero(dist == k)
            if len(at_k) and len(found[k][0]) < n:
                found[k][0].append(s)
                found[k][1].append(rng.choice(at_k))
    return {k: (np.array(a, np.int64), np.array(b, np.int64)) for k, (a, b) in found.items()}


def oracle_lengths(graph, sources: np.ndarray, goals: np.ndarray) -> np.ndarray:
    offsets, targets = np.asarray(graph.offsets), np.asarray(graph.targets)
    return np.array([bfs_distances(offsets, targets, s)[g] for s, g in zip(sources, goals)])


def non_hubs(graph) -> tuple[np.ndarray, float]:
    """(bool [N]: in-degree >= 1 and below the median in-degree of pages with in-links, that median).
    The median over all pages would not do: most pages of a sparse graph have in-degree 0 or 1."""
    indeg = np.bincount(np.asarray(graph.targets, np.int64), minlength=graph.num_nodes)
    median = float(np.median(indeg[indeg > 0])) if (indeg > 0).any() else 0.0
    return (indeg > 0) & (indeg < median), median


PAIR_KINDS = ("walk", "distance", "nonhub")


def eval_pairs(graph, cfg: NavEvalConfig, target_mask=None, kinds=PAIR_KINDS) -> dict:
    """(pair kind, k) -> (sources, targets) for every k with at least `min_pairs` pairs; targets only
    in `target_mask` (bool [N]) if given."""
    found = {}
    if "walk" in kinds:
        found["walk"] = {k: walk_pairs(graph, k, cfg.pairs, cfg.seed, target_mask) for k in cfg.ks}
    if "distance" in kinds:
        found["distance"] = distance_pairs(graph, cfg.ks, cfg.pairs, cfg.bfs_sources, cfg.seed, target_mask)
    if "nonhub" in kinds:
        mask = non_hubs(graph)[0] if target_mask is None else non_hubs(graph)[0] & target_mask
        found["nonhub"] = distance_pairs(graph, cfg.ks, cfg.pairs, cfg.bfs_sources, cfg.seed + 1, mask)
    return {(kind, k): found[kind][k] for kind in kinds if kind in found for k in cfg.ks
            if len(found[kind][k][0]) >= cfg.min_pairs}
