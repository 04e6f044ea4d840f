"""Hyperlink-navigation evaluation: success within a step budget on source-target pairs k apart.

Pairs are drawn two ways for each k:
  walk:     the target ends a k-step uniform random walk from the source (arXiv:2211.00177's
            "k steps apart", matching how training walks are drawn); the target is within k links.
  distance: the target is at shortest-path distance exactly k (BFS); stricter, and rare for large k.
Every rate comes with a Wilson 95% interval; k with fewer than `min_pairs` pairs is not reported.
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
    budget_factor: float = 2.0
    """step budget for pairs k apart = ceil(budget_factor * k)"""
    bfs_sources: int = 2000
    """sources searched (BFS) for distance pairs"""
    seed: int = 1234

    def __post_init__(self):
        from protege.core.config_help import check_fields
        check_fields(self, ks="nonempty", pairs=">=1", min_pairs=">=1", budget_factor=">0",
                     bfs_sources=">=1", seed=">=0")
        if self.min_pairs > self.pairs:  # no k could ever be reported: an empty table, silently
            raise ValueError(f"min_pairs ({self.min_pairs}) is more than pairs ({self.pairs}); "
                             f"lower --min-pairs or raise --pairs")


def budget_for(k: int, cfg: NavEvalConfig) -> int:
    return int(np.ceil(cfg.budget_factor * k))


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


def walk_pairs(graph, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to `n` (source, target) pairs where target ends a k-step random walk (no dead-end stop,
    target != source); sources uniform over pages with links."""
    rng = np.random.default_rng([seed, k])
    pages = np.flatnonzero(graph.out_degree() > 0)
    starts = rng.choice(pages, size=4 * n)
    walks = random_walks(graph, starts, k, "stop", seed=seed * 1000 + k)
    end = walks.nodes[:, -1]
    ok = (end >= 0) & (end != walks.nodes[:, 0])
    return walks.nodes[ok, 0][:n].astype(np.int64), end[ok][:n].astype(np.int64)


def distance_pairs(graph, ks, n: int, sources: int, seed: int) -> dict:
    """k -> (sources, targets) at shortest-path distance exactly k, at most one pair per source."""
    rng = np.random.default_rng(seed)
    pages = np.flatnonzero(graph.out_degree() > 0)
    chosen = rng.choice(pages, size=min(sources, len(pages)), replace=False)
    found = {k: ([], []) for k in ks}
    offsets, targets = np.asarray(graph.offsets), np.asarray(graph.targets)
    for s in chosen:
        dist = bfs_distances(offsets, targets, s)
        for k in ks:
            at_k = np.flatnonzero(dist == k)
            if len(at_k) and len(found[k][0]) < n:
                found[k][0].append(s)
                found[k][1].append(rng.choice(at_k))
    return {k: (np.array(a, np.int64), np.array(b, np.int64)) for k, (a, b) in found.items()}


def oracle_lengths(graph, sources: np.ndarray, goals: np.ndarray) -> np.ndarray:
    offsets, targets = np.asarray(graph.offsets), np.asarray(graph.targets)
    return np.array([bfs_distances(offsets, targets, s)[g] for s, g in zip(sources, goals)])


def eval_pairs(graph, cfg: NavEvalConfig) -> dict:
    """(pair kind, k) -> (sources, targets) for every k with at least `min_pairs` pairs."""
    dist_pairs = distance_pairs(graph, cfg.ks, cfg.pairs, cfg.bfs_sources, cfg.seed)
    pairs = {}
    for kind in ("walk", "distance"):
        for k in cfg.ks:
            src, tgt = walk_pairs(graph, k, cfg.pairs, cfg.seed) if kind == "walk" else dist_pairs[k]
            if len(src) >= cfg.min_pairs:
                pairs[kind, k] = (src, tgt)
    return pairs


def evaluate(graph, scorers: dict, cfg: NavEvalConfig, show_progress: bool = False) -> list[dict]:
    """One row per (pair kind, k, method, mode): success rate, Wilson 95% CI, mean steps on success,
    with the BFS oracle's mean path length on the same pairs. The progress bar counts navigation
    episodes (pairs x methods x modes), all known before the first one runs."""
    from protege.core.progress import progress_bar
    rows = []
    pairs = eval_pairs(graph, cfg)
    modes = ("greedy", "backtrack")
    total = sum(len(src) for src, _ in pairs.values()) * len(scorers) * len(modes)
    with progress_bar(show_progress) as bar:
        task = bar.add_task("navigation episodes", total=total)
        for (kind, k), (src, tgt) in pairs.items():
            oracle = oracle_lengths(graph, src, tgt)
            budget = budget_for(k, cfg)
            for name, score in scorers.items():
                for mode in modes:
                    steps = navigate(graph, score, src, tgt, budget, backtrack=mode == "backtrack")
                    rows.append(_row(kind, k, name, mode, budget, steps, oracle))
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


def evaluate_policy(policy_dir, cfg: NavEvalConfig, out_json, show_progress: bool = False) -> list[dict]:
    """Evaluate a trained policy and the baselines on its graph; rows are also written to `out_json`."""
    import torch

    from protege.core.runs import write_json_atomic
    from protege.nn.text_encoders import load_or_encode
    from protege.systems.wikinav.experiment import load_policy
    from protege.systems.wikinav.navigate import (
        policy_scorer,
        random_scorer,
        similarity_scorer,
    )
    torch.set_num_threads(1)
    model, graph = load_policy(policy_dir)
    emb = load_or_encode(graph, json_encoder(policy_dir), show_progress=show_progress)
    scorers = {"policy": policy_scorer(model), "similarity": similarity_scorer(emb),
               "random": random_scorer(cfg.seed)}
    rows = evaluate(graph, scorers, cfg, show_progress)
    write_json_atomic(out_json, {"config": cfg.__dict__, "graph": str(graph.folder), "rows": rows})
    return rows


def json_encoder(policy_dir) -> str:
    import json
    from pathlib import Path
    return json.loads((Path(policy_dir) / "policy.json").read_text())["encoder"]


_SHORT = {("policy", "greedy"): "policy", ("policy", "backtrack"): "policy+bt",
          ("similarity", "greedy"): "sim", ("similarity", "backtrack"): "sim+bt",
          ("random", "greedy"): "random", ("random", "backtrack"): "random+bt"}


def headline_rows(rows: list[dict]) -> list[dict]:
    """One line per (pair kind, k): success % [Wilson 95% CI] per method ("+bt": backtracking)."""
    table: dict = {}
    for r in rows:
        line = table.setdefault((r["pairs"], r["k"]), {"pairs": r["pairs"], "k": r["k"], "n": r["n"],
                                                         "budget": r["budget"]})
        name = _SHORT.get((r["method"], r["mode"]), f"{r['method']}/{r['mode']}")
        line[name] = f"{100 * r['success']:.0f} [{100 * r['ci_low']:.0f},{100 * r['ci_high']:.0f}]"
    for r in rows:
        table[(r["pairs"], r["k"])]["bfs len"] = round(r["oracle_mean_length"], 2)
    return list(table.values())


def markdown_tables(rows: list[dict]) -> str:
    """The headline rows as one Markdown table per pair kind (success % [Wilson 95% CI])."""
    out = []
    for kind in ("walk", "distance"):
        lines = [r for r in headline_rows(rows) if r["pairs"] == kind]
        if not lines:
            continue
        cols = [c for c in lines[0] if c != "pairs"]
        out.append(f"Pairs: **{kind}**\n")
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        out.extend("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in lines)
        out.append("")
    return "\n".join(out)
