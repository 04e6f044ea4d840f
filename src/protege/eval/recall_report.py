"""Summaries of a recall evaluation: per-cell scores with 95% intervals, a markdown table and a
depth x length heatmap PNG per task."""

from collections import defaultdict
from pathlib import Path

from protege.eval.stats import mean_interval, wilson_interval


def cell_summary(rows: list[dict]) -> list[dict]:
    """One row per (task, length, depth) of the per-sample rows (`score` in [0, 1]): mean score in
    percent as RULER reports it, its 95% interval (Wilson where every score is 0 or 1, else t), and
    the rows' trivial-baseline score (`guess_score`) where they have one."""
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        cells[(row["task"], row["length"], row["depth"])].append(row)
    out = []
    for (task, length, depth), mine in cells.items():
        scores = [r["score"] for r in mine]
        low, high = _interval(scores)
        out.append({"task": task, "length": length, "depth": depth, "n": len(scores),
                    "score": round(100 * sum(scores) / len(scores), 2),
                    "ci95_low": round(100 * low, 2), "ci95_high": round(100 * high, 2)})
        if all("guess_score" in r for r in mine):  # the trivial baseline on the same samples
            out[-1]["guess"] = round(100 * sum(r["guess_score"] for r in mine) / len(mine), 2)
    return sorted(out, key=lambda r: (r["task"], r["length"], -1 if r["depth"] is None else r["depth"]))


def length_summary(rows: list[dict]) -> list[dict]:
    """One row per (task, length) over every depth: RULER's score at that length."""
    return cell_summary([{**r, "depth": None} for r in rows])


def _interval(scores: list[float]) -> tuple[float, float]:
    if all(s in (0.0, 1.0) for s in scores):
        return wilson_interval(int(sum(scores)), len(scores))
    _, low, high = mean_interval(scores)
    return (max(0.0, low), min(1.0, high)) if len(scores) > 1 else (0.0, 1.0)


def markdown_table(rows: list[dict]) -> str:
    """`protege.eval.report.markdown_table` with recall's formats: floats as `:g`, empty cells "-"."""
    from protege.eval.report import markdown_table as table
    return table(rows, number="{:g}", missing="-")


def heatmap(cells: list[dict], task: str, path: Path, title: str) -> Path:
    """Score (percent) by needle depth (rows) and prompt length (columns) for one task; tasks that
    place needles at random depths get a single row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    mine = [c for c in cells if c["task"] == task]
    lengths = sorted({c["length"] for c in mine})
    depths = sorted({c["depth"] for c in mine}, key=lambda d: -1 if d is None else d)
    grid = np.full((len(depths), len(lengths)), np.nan)
    for c in mine:
        grid[depths.index(c["depth"]), lengths.index(c["length"])] = c["score"]
    fig, ax = plt.subplots(figsize=(3.0 + 0.9 * len(lengths), 2.0 + 0.45 * len(depths)))
    image = ax.imshow(grid, vmin=0, vmax=100, cmap="RdYlGn", aspect="auto")
    for i in range(len(depths)):
        for j in range(len(lengths)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(lengths)), [str(n) for n in lengths])
    ax.set_yticks(range(len(depths)), ["random" if d is None else f"{d:g}" for d in depths])
    ax.set(xlabel="prompt length (tokens)", ylabel="needle depth", title=title)
    fig.colorbar(image, ax=ax, label="score (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
