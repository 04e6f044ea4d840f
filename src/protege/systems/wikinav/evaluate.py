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

import numpy as np

from protege.eval.stats import wilson_interval
from protege.systems.wikinav.navigate import navigate
from protege.systems.wikinav.pairs import (
    PAIR_KINDS,
    NavEvalConfig,
    budget_for,
    eval_pairs,
    non_hubs,
    oracle_lengths,
)


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

    from protege.core.atomic import write_json_atomic
    from protege.core.errors import UserError
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
