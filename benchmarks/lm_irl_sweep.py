"""Sweeps for docs/results/lm_irl.md: IQLearn's lambda, MLE's entropy bonus, online IQLearn and the
training-set size, over seeds; one `protege run` subprocess per setting (`--jobs` at a time, one
thread each). Finished runs are reused, so an interrupted sweep continues where it stopped.

    python benchmarks/lm_irl_sweep.py --task arithmetic --seeds 0 1 2 --out runs/sweep --table docs/results/lm_irl_arithmetic.md

Prints one JSON line last: every setting's mean metrics.
"""

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SETTINGS = {  # name -> overrides
    "mle": ["objective.method=mle"],
    "mle_ent0.01": ["objective.method=mle", "objective.entropy_coef=0.01"],
    "mle_ent0.1": ["objective.method=mle", "objective.entropy_coef=0.1"],
    "iq_lam0.001": ["objective.method=iqlearn", "objective.lam=0.001"],
    "iq_lam0.01": ["objective.method=iqlearn", "objective.lam=0.01"],
    "iq_lam0.1": ["objective.method=iqlearn", "objective.lam=0.1"],
    "iq_lam1": ["objective.method=iqlearn", "objective.lam=1.0"],
    "iq_online_lam0.01": ["objective.method=iqlearn_online", "objective.lam=0.01", "objective.mixin=0.1"],
    "mle_n2000": ["objective.method=mle", "task.train_size=2000"],
    "iq_lam0.01_n2000": ["objective.method=iqlearn", "objective.lam=0.01", "task.train_size=2000"],
    "mle_n500": ["objective.method=mle", "task.train_size=500"],
    "iq_lam0.01_n500": ["objective.method=iqlearn", "objective.lam=0.01", "task.train_size=500"],
}
METRICS = ["eval/greedy_score", "eval/sampled_score", "eval/self_bleu", "eval/distinct_2",
           "eval/token_entropy", "eval/reward_spearman"]


def run_one(recipe: str, name: str, seed: int, overrides: list[str], out: Path, extra: list[str]):
    run_dir = out / f"{name}-s{seed}"
    if (run_dir / "summary.json").exists():
        return name, seed, json.loads((run_dir / "summary.json").read_text())
    cmd = [sys.executable, "-m", "protege", "run", recipe, f"name={run_dir.name}", f"runs_dir={out}",
           f"seed={seed}", "threads=1", *overrides, *extra]
    if (run_dir / "config.yaml").exists():
        cmd.append("--resume")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{run_dir.name} failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return name, seed, None
    return name, seed, json.loads((run_dir / "summary.json").read_text())


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of a t-based 95% interval over the non-NaN values (0 for one seed)."""
    from protege.eval.stats import mean_interval
    mean, _, high = mean_interval([v for v in values if v == v])
    return mean, high - mean


def table(results: dict, command: str) -> str:
    header = "| setting | seeds | " + " | ".join(m.split("/")[1] for m in METRICS) + " |"
    lines = [f"Command: `{command}`", "", header, "|" + "---|" * (len(METRICS) + 2)]
    for name, runs in results.items():
        cells = []
        for metric in METRICS:
            mean, half = ci95([r[metric] for r in runs])
            cells.append(f"{mean:.3f} ± {half:.3f}")
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_table(done: list, baseline: str) -> str:
    """Each setting minus the baseline, seed by seed: a run's seed fixes its training data and its
    initial weights, so the per-seed difference removes that shared noise (paired 95% t-interval)."""
    by_seed = {(name, seed): summary for name, seed, summary in done if summary is not None}
    header = "| setting - " + baseline + " | seeds | " + " | ".join(m.split("/")[1] for m in METRICS) + " |"
    lines = [header, "|" + "---|" * (len(METRICS) + 2)]
    for name in dict.fromkeys(name for name, _, _ in done):
        seeds = [s for (n, s) in by_seed if n == name and (baseline, s) in by_seed]
        if name == baseline or not seeds:
            continue
        cells = []
        for metric in METRICS:
            mean, half = ci95([by_seed[name, s][metric] - by_seed[baseline, s][metric] for s in seeds])
            cells.append(f"{mean:+.3f} ± {half:.3f}")
        lines.append(f"| {name} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_tradeoff(results: dict, path: Path, x: str = "eval/self_bleu", y: str = "eval/sampled_score"):
    """Task score against diversity, one point per setting with 95% intervals on both axes: the
    picture behind "more diverse at equal task score" (Self-BLEU falls to the left = more diverse)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for name, runs in results.items():
        (mx, hx), (my, hy) = ci95([r[x] for r in runs]), ci95([r[y] for r in runs])
        style = "o" if name.startswith("mle") else "s"
        ax.errorbar(mx, my, xerr=hx, yerr=hy, fmt=style, capsize=3, label=f"{name} ({len(runs)} seeds)")
    ax.set_xlabel(f"{x.split('/')[1]} (lower = more diverse)")
    ax.set_ylabel(y.split("/")[1])
    ax.invert_xaxis()
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["arithmetic", "foldoc"], default="arithmetic")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"))
    parser.add_argument("--table", type=Path, default=None)
    parser.add_argument("--paired", default=None, help="also tabulate per-seed differences to this setting")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of sampled score vs Self-BLEU")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides applied to every run")
    args = parser.parse_args()
    recipe = f"lm_{args.task}_mle"
    jobs = [(s, seed) for s in args.settings for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda j: run_one(recipe, j[0], j[1], SETTINGS[j[0]], args.out / args.task,
                                               args.extra), jobs))
    results: dict = {}
    for name, _, summary in done:
        if summary is not None:
            results.setdefault(name, []).append(summary)
    command = "python " + " ".join(sys.argv)
    text = table(results, command) + ("\n" + paired_table(done, args.paired) if args.paired else "")
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(text)
    if args.plot:
        plot_tradeoff(results, args.plot)
    print(text)
    from protege.core.precision import machine_info
    # where it ran; each run's config.yaml records the precision it resolved to
    print(json.dumps({name: {m: ci95([r[m] for r in runs])[0] for m in METRICS} | {"seeds": len(runs)}
                      for name, runs in results.items()} | {"machine": machine_info()}))


if __name__ == "__main__":
    main()
