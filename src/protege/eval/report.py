"""`protege report`: compare runs in a markdown table and PNG plots of their metrics."""

import json
from collections.abc import Callable
from pathlib import Path

from protege.core.atomic import write_text_atomic
from protege.core.errors import UserError
from protege.core.runs import read_metrics
from protege.data.manifest import check_output_folder, write_manifest

REPORT_KIND = "protege.report"


def run_summary(run_dir: Path) -> dict:
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return {}
    try:
        summary = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{path}: not valid JSON (file corrupted?)") from None
    if not isinstance(summary, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    return summary


def write_report(run_dirs: list[Path], out: Path | None = None,
                 preface: Callable[[Path], list[str]] | None = None) -> tuple[Path, list[dict]]:
    """report.md with the final summary of each run, a learning-curve PNG per metric and, where runs
    report both, a task-score-against-diversity scatter. `preface(out)` may draw more plots into the
    report folder (e.g. `paired_plot`); the markdown lines it returns go before the runs' table."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = []
    for run_dir in map(Path, run_dirs):
        metrics = read_metrics(run_dir)
        if not metrics:
            raise UserError(f"{run_dir}: no metrics.jsonl (not a run directory, or the run has not "
                            f"logged yet)")
        runs.append((run_dir, metrics, run_summary(run_dir)))
    out = Path(out or runs[0][0].parent / "report")
    check_output_folder(out, REPORT_KIND, run_dirs)  # never into a run or someone else's folder
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    keys = sorted({k for _, metrics, _ in runs for row in metrics for k, v in row.items()
                   if k != "step" and isinstance(v, (int, float))})
    for key in keys:
        series = [(d.name, [(r["step"], r[key]) for r in m if key in r]) for d, m, _ in runs]
        if max(len(points) for _, points in series) < 2:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, points in series:
            if points:
                ax.plot(*zip(*points), label=name)
        ax.set(xlabel="step", ylabel=key, title=key)
        ax.legend(fontsize=7)
        fig.tight_layout()
        file = out / f"{key.replace('/', '_')}.png"
        fig.savefig(file, dpi=100)
        plt.close(fig)
        plots.append(file.name)
    rows = [{"run": d.name, **{k: v for k, v in s.items() if not isinstance(v, (dict, list))}}
            for d, _, s in runs]
    scatter = _score_vs_diversity(runs, out, plt)
    lines = ["# Report", "", *(preface(out) if preface else []),
             "Runs: " + ", ".join(f"`{d}`" for d, _, _ in runs), "", markdown_table(rows), ""]
    if scatter:
        lines += [f"![task score against diversity]({scatter})", ""]
    lines += [f"![{p}]({p})" for p in plots]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    write_manifest(out, {"kind": REPORT_KIND})  # marks the folder as a report a rerun may update
    return path, rows


def paired_verdict(a: str, b: str, low: float, high: float, lower_better: bool = False) -> str:
    """What a paired difference (b - a) with 95% interval [low, high] shows: a method is called
    higher only when the interval clears zero. `lower_better` (a loss, an NLL): the verdict names the
    method that is lower instead."""
    if lower_better:
        return f"{b} lower" if high < 0 else f"{a} lower" if low > 0 else "no resolved difference"
    return f"{b} higher" if low > 0 else f"{a} higher" if high < 0 else "no resolved difference"


def paired_plot(path: Path, scores: dict[str, list[float]], seeds: list,
                metric: str) -> tuple[float, float, float]:
    """Two methods' `metric` over the same seeds (scores = {name: [one value per seed]}, the first
    name is the reference): left, each seed's pair joined by a line and each method's mean with its
    95% t-interval; right, the per-seed differences (second - first) with their mean and interval
    against zero. Returns the difference's (mean, low, high)."""
    return paired_plots(path, {metric: scores}, seeds)[metric]


def paired_plots(path: Path, panels: dict[str, dict[str, list[float]]], seeds: list,
                 title: str | None = None, lower_better: tuple[str, ...] = ()) -> dict[str, tuple[float, float, float]]:
    """`paired_plot` for several metrics of the same two methods, one row of panels each
    (panels = {metric: scores}) under an optional figure title; the metrics named in `lower_better`
    get the verdict of `paired_verdict(..., lower_better=True)`. Returns {metric: the difference's
    (mean, low, high)}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 2, figsize=(9, 3.6 * len(panels)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    results = {metric: _paired_panel(left, right, scores, seeds, metric, metric in lower_better)
               for (metric, scores), (left, right) in zip(panels.items(), axes)}
    if title:
        import textwrap
        fig.suptitle(textwrap.fill(title, 75), fontweight="bold")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return results


def _paired_panel(left, right, scores: dict[str, list[float]], seeds: list, metric: str,
                  lower_better: bool = False) -> tuple[float, float, float]:
    from protege.eval.stats import mean_interval
    (a, a_values), (b, b_values) = scores.items()
    diffs = [y - x for x, y in zip(a_values, b_values)]
    for x, y in zip(a_values, b_values):
        left.plot([0, 1], [x, y], color="0.7", marker=".", zorder=1)
    for y, names in _labels_apart(list(zip(b_values, seeds)), span=max(a_values + b_values) - min(a_values + b_values)):
        left.annotate(f"seed{'s' if len(names) > 1 else ''} {', '.join(map(str, names))}", (1.08, y),
                      fontsize=7, va="center")
    for i, values in enumerate((a_values, b_values)):
        mean, low, high = mean_interval(values)
        left.errorbar([i], [mean], yerr=[[mean - low], [high - mean]], fmt="o", color=f"C{i}", capsize=6,
                      markersize=8, zorder=2)
    left.set(xticks=[0, 1], xticklabels=[a, b], xlim=(-0.4, 1.5),
             title=f"{metric}\n{len(seeds)} seeds (mean, 95% t)")
    mean, low, high = mean_interval(diffs)
    verdict = paired_verdict(a, b, low, high, lower_better)
    resolved = verdict != "no resolved difference"
    right.axhline(0, color="k", linewidth=0.8)
    right.scatter([0] * len(diffs), diffs, color="0.5", zorder=1)
    right.errorbar([0], [mean], yerr=[[mean - low], [high - mean]], fmt="o", color="C1", capsize=6,
                   markersize=8, zorder=2)
    right.set(xticks=[0], xticklabels=[f"{b} - {a}"], xlim=(-1, 1))
    # a resolved verdict stands out (bold, green) so the figure says which difference is real
    right.set_title(f"{verdict}\npaired: {mean:+.3f} [{low:+.3f}, {high:+.3f}]",
                    fontweight="bold" if resolved else "normal", color="darkgreen" if resolved else "0.3")
    return mean, low, high


def _labels_apart(points: list[tuple[float, object]], span: float) -> list[tuple[float, list]]:
    """(y, names) labels for points at heights y: points closer than 4% of the axis span share one
    label at their mean height, so seed labels never print over each other."""
    groups: list[list[tuple[float, object]]] = []
    for y, name in sorted(points, key=lambda p: p[0]):
        if groups and y - groups[-1][-1][0] <= 0.04 * span:
            groups[-1].append((y, name))
        else:
            groups.append([(y, name)])
    return [(sum(y for y, _ in g) / len(g), sorted(name for _, name in g)) for g in groups]


def _score_vs_diversity(runs, out: Path, plt) -> str | None:
    points = [(d.name, s["eval/greedy_score"], s["eval/sampled_score"], s["eval/self_bleu"])
              for d, _, s in runs if {"eval/greedy_score", "eval/self_bleu"} <= set(s)]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, (name, greedy, sampled, bleu) in enumerate(points):
        ax.scatter([100 - bleu], [greedy], marker="o", color=f"C{i}")
        ax.scatter([100 - bleu], [sampled], marker="x", color=f"C{i}")
        ax.annotate(name, (100 - bleu, greedy), fontsize=7)
    ax.set(xlabel="diversity (100 - Self-BLEU)", ylabel="task score (o greedy, x sampled)",
           title="task score against diversity")
    fig.tight_layout()
    fig.savefig(out / "score_vs_diversity.png", dpi=100)
    plt.close(fig)
    return "score_vs_diversity.png"


def markdown_table(rows: list[dict], number: str = "{:.4g}", missing: str = "") -> str:
    """A markdown table with a column per key (in first-seen order) and a line per row; floats
    formatted with `number`, absent or None cells shown as `missing`."""
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    fmt = lambda v: number.format(v) if isinstance(v, float) else (missing if v is None else str(v))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
