"""Hyperlink-navigation evaluation: success within step budgets on source-target pairs k apart.

Pairs are drawn three ways for each k:
  walk:     the target ends a k-step uniform random walk from the source (arXiv:2211.00177's
            "k steps apart", matching how training walks are drawn); the target is within k links.
  distance: the target is at shortest-path distance exactly k (BFS); stricter, and rare for large k.
  nonhub:   distance pairs whose target is not a hub: its in-degree is below the median in-degree of
            the pages that have in-links (a random walk rarely ends on such a page).
Each pair is navigated once with the largest budget ceil(f * k) of `budget_factors`; a smaller
budget's success counts the episodes that arrived within it (a deterministic scorer's shorter run is
a prefix of the longer one). Every rate comes with a Wilson 95% interval; k with fewer than
`min_pairs` pairs is not reported.
"""

from dataclasses import dataclass

import numpy as np
from numba import njit

from protege.eval.stats import wilson_interval
from protege.systems.wikinav.navigate import navigate
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
def bfs_distances(offsets, targets, source):
    """int32 [N] shortest-path lengths from `source` (-1 where unreachable)."""
    n = len(offsets) - 1
    dist = np.full(n, -1, np.int32)
    queue = np.empty(n, np.int64)
    dist[source] = 0
    queue[0] = source
    head, tail = 0, 1
    while head < tail:
        u = queue[head]
        head += 1
        for e in range(offsets[u], offsets[u + 1]):
            v = targets[e]
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue[tail] = v
                tail += 1
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


def evaluate(graph, scorers: dict, cfg: NavEvalConfig, show_progress: bool = False,
             target_mask=None) -> list[dict]:
    """One row per (pair kind, k, budget, method, mode): success rate, Wilson 95% CI, mean steps on
    success, with the BFS oracle's mean path length on the same pairs. The progress bar counts
    navigation episodes (pairs x methods x modes), all known before the first one runs."""
    from protege.core.progress import progress_bar
    rows = []
    pairs = eval_pairs(graph, cfg, target_mask)
    modes = ("greedy", "backtrack")
    total = sum(len(src) for src, _ in pairs.values()) * len(scorers) * len(modes)
    with progress_bar(show_progress) as bar:
        task = bar.add_task("navigation episodes", total=total)
        for (kind, k), (src, tgt) in pairs.items():
            oracle = oracle_lengths(graph, src, tgt)
            budgets = [budget_for(k, f) for f in cfg.budget_factors]
            for name, score in scorers.items():
                for mode in modes:
                    steps = navigate(graph, score, src, tgt, max(budgets), backtrack=mode == "backtrack")
                    for factor, budget in zip(cfg.budget_factors, budgets):
                        within = np.where(steps <= budget, steps, -1)
                        rows.append({**_row(kind, k, name, mode, budget, within, oracle),
                                     "budget_factor": factor})
                    bar.advance(task, len(src))
    return rows


def _row(kind, k, method, mode, budget, steps, oracle) -> dict:
    ok = steps >= 0
    lo, hi = wilson_interval(int(ok.sum()), len(ok))
    return {"pairs": kind, "k": k, "method": method, "mode": mode, "budget": budget, "n": len(ok),
            "success": float(ok.mean()), "ci_low": lo, "ci_high": hi,
            "mean_steps": float(steps[ok].mean()) if ok.any() else None,
            "oracle_mean_length": float(oracle.mean()),
            "oracle_within_budget": float(((oracle >= 0) & (oracle <= budget)).mean())}


def evaluate_policy(policy_dir, cfg: NavEvalConfig, out_json, show_progress: bool = False,
                    held_out: bool = False) -> list[dict]:
    """Evaluate a trained policy and the baselines on its graph; rows are also written to `out_json`.
    `held_out`: only targets among the pages the run held out of training."""
    import torch

    from protege.core.errors import UserError
    from protege.core.runs import write_json_atomic
    from protege.systems.wikinav.experiment import load_policy
    from protege.systems.wikinav.navigate import (
        policy_scorer,
        random_scorer,
        similarity_scorer,
    )
    from protege.systems.wikinav.selection import load_held_out
    torch.set_num_threads(1)
    model, graph = load_policy(policy_dir)
    mask = None
    if held_out:
        ids = load_held_out(policy_dir)
        if ids is None:
            raise UserError(f"{policy_dir}: the run held no pages out (train with --held-out FRACTION)")
        mask = np.zeros(graph.num_nodes, bool)
        mask[ids] = True
    scorers = {"policy": policy_scorer(model), "similarity": similarity_scorer(model.embeddings),
               "random": random_scorer(cfg.seed)}
    rows = evaluate(graph, scorers, cfg, show_progress, target_mask=mask)
    write_json_atomic(out_json, {"config": cfg.__dict__, "graph": str(graph.folder), "held_out": held_out,
                                 "nonhub_below_in_degree": non_hubs(graph)[1], "rows": rows})
    return rows


def json_encoder(policy_dir) -> str:
    import json
    from pathlib import Path
    return json.loads((Path(policy_dir) / "policy.json").read_text())["encoder"]


_SHORT = {("policy", "greedy"): "policy", ("policy", "backtrack"): "policy+bt",
          ("similarity", "greedy"): "sim", ("similarity", "backtrack"): "sim+bt",
          ("random", "greedy"): "random", ("random", "backtrack"): "random+bt"}


def headline_rows(rows: list[dict]) -> list[dict]:
    """One line per (pair kind, k, budget): success % [Wilson 95% CI] per method ("+bt": backtracking)."""
    table: dict = {}
    for r in rows:
        line = table.setdefault((r["pairs"], r["k"], r["budget"]), {
            "pairs": r["pairs"], "k": r["k"], "n": r["n"], "budget": r["budget"],
            "factor": r.get("budget_factor", r["budget"] / r["k"])})
        name = _SHORT.get((r["method"], r["mode"]), f"{r['method']}/{r['mode']}")
        line[name] = f"{100 * r['success']:.0f} [{100 * r['ci_low']:.0f},{100 * r['ci_high']:.0f}]"
    for r in rows:
        table[(r["pairs"], r["k"], r["budget"])]["bfs len"] = round(r["oracle_mean_length"], 2)
    return list(table.values())


def markdown_tables(rows: list[dict]) -> str:
    """The headline rows as one Markdown table per pair kind and budget factor (success % [Wilson
    95% CI])."""
    out = []
    lines_all = headline_rows(rows)
    factors = sorted({r["factor"] for r in lines_all})
    for kind in PAIR_KINDS:
        for factor in factors:
            lines = [r for r in lines_all if r["pairs"] == kind and r["factor"] == factor]
            if not lines:
                continue
            cols = [c for c in lines[0] if c not in ("pairs", "factor")]
            out.append(f"Pairs: **{kind}**, budget {factor:g}k\n")
            out.append("| " + " | ".join(cols) + " |")
            out.append("|" + "---|" * len(cols))
            out.extend("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in lines)
            out.append("")
    return "\n".join(out)
