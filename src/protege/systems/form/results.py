"""Tables of expert-normalised returns from finished `control_imitation` runs.

Each run directory's `summary.json` holds `method`, `distractors`, `seed`, `normalised_return`
((R - R_random) / (R_expert - R_random)); rows group runs by (method, distractors) and report the mean
with a 95% Student-t interval over seeds (scipy), so three seeds give a wide, honest interval.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from protege.eval.stats import mean_interval

METHOD_NAMES = {"form": "FORM (obs only)", "gaifo": "GAIfO (state-only GAIL)", "gail": "GAIL (state-action)",
                "bc": "BC (actions)", "sac": "SAC (env reward)"}


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval (NaN half-width for a single value)."""
    values = list(values)
    mean, _, high = mean_interval(values)
    return mean, (high - mean) if len(values) > 1 else float("nan")


def collect(root: Path) -> list[dict]:
    rows = []
    for path in sorted(Path(root).glob("*/summary.json")):
        rows.append(json.loads(path.read_text()) | {"run": path.parent.name})
    return rows


def table(summaries: list[dict]) -> tuple[str, list[dict]]:
    """Markdown table and its rows: one row per (task, method, distractors), tasks in name order."""
    groups: dict[tuple, list[dict]] = {}
    for s in summaries:
        groups.setdefault((s.get("task", ""), s["method"], s["distractors"]), []).append(s)
    order = list(METHOD_NAMES)
    rows = []
    for (task, method, dims), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], order.index(kv[0][1]))):
        mean, half = mean_ci95([r["normalised_return"] for r in runs])
        rows.append({"task": task, "method": METHOD_NAMES.get(method, method), "distractor_dims": dims, "seeds": len(runs),
                     "normalised_return": round(mean, 3), "ci95": round(half, 3),
                     "raw_return": round(float(np.mean([r["return"] for r in runs])), 1),
                     "env_steps": runs[0].get("env_steps", 0),
                     "per_seed": [round(r["normalised_return"], 3) for r in sorted(runs, key=lambda r: r["seed"])]})
    lines = ["| task | method | distractor dims | seeds | expert-normalised return (mean ± 95% CI) | raw return | env steps | per seed |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['method']} | {r['distractor_dims']} | {r['seeds']} | {r['normalised_return']:.3f} ± "
                     f"{r['ci95']:.3f} | {r['raw_return']} | {r['env_steps']} | {r['per_seed']} |")
    return "\n".join(lines), rows
