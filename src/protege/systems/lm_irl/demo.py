"""`protege demo`: MLE against offline IQLearn when data is scarce, paired over seeds.

Both methods train on the same 500 arithmetic word problems for 800 steps of 32 (51 epochs): the
setting of docs/results/lm_irl.md where MLE overfits and IQLearn's TD term held up better on every
seed (held-out greedy accuracy 0.337 against 0.423, paired +0.087 +- 0.057 over seeds 0, 1, 2). Each seed fixes the
training set and the initial weights, so MLE and IQLearn of one seed are a pair; the report shows
each method's held-out accuracy and the per-seed difference, with 95% t-intervals. How far apart the
two are depends on float rounding as much as on the method here: after 51 epochs a change of 1e-7 in
the learning rate moves one run's accuracy by up to ~0.1, and the faster training step (nn/gpt2_plain)
gave -0.027 +- 0.205; at 3 seeds the demo shows the comparison, not a resolved difference.

The runs go `jobs` at a time, one thread each (the demo's budget is 2 CPU cores); the parent shows
their progress from their metrics files. A finished run is reused and a killed one resumes, so
running the demo again costs nothing and loses nothing.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protege.core.errors import UserError
from protege.core.progress import progress_bar
from protege.core.runs import read_metrics
from protege.eval.report import paired_plot, run_summary, write_report
from protege.eval.stats import mean_interval

METHODS = {"mle": "lm_arithmetic_mle", "iqlearn": "lm_arithmetic_iqlearn"}
SEEDS = (0, 1, 2)
# small data: 500 examples, 800 steps of 32 = 51 epochs (the results file's setting); 25 sampled
# prompts instead of 50 keep six evaluations short (greedy accuracy still on 200 held-out prompts)
SMALL_DATA = ["task.train_size=500", "trainer.steps=800", "eval.sample_prompts=25"]
QUICK = ["trainer.steps=20", "task.train_size=500", "task.eval_size=20", "eval.prompts=10",
         "eval.sample_prompts=5", "eval.samples=4", "trainer.checkpoint_every=10"]
QUICK_SEEDS = (0, 1)
METRIC = ("eval/greedy_score", "accuracy")  # the paired comparison: held-out greedy accuracy
SECOND = ("eval/sampled_score", "sampled acc")
OLD_RUNS = {"mle", "iqlearn"}  # an earlier demo's single-seed runs: left alone, not reported


def run_name(method: str, seed: int) -> str:
    return f"{method}-s{seed}"


def _command(recipe: str, name: str, seed: int, out: Path, quick: bool) -> list[str]:
    overrides = [f"name={name}", f"runs_dir={out}", f"seed={seed}", "threads=1",
                 *(QUICK if quick else SMALL_DATA)]
    resume = ["--resume"] if (out / name / "config.yaml").exists() else []
    return [sys.executable, "-m", "protege", "run", recipe, *overrides, *resume]


def run_demo(out: Path, quick: bool = False, jobs: int = 2) -> tuple[list[dict], Path]:
    out = Path(out)
    seeds = QUICK_SEEDS if quick else SEEDS
    check_demo_folder(out)
    commands = {run_name(m, s): _command(r, run_name(m, s), s, out, quick)
                for s in seeds for m, r in METHODS.items()}
    check_same_settings(out, list(commands), quick)
    todo = {n: c for n, c in commands.items() if not (out / n / "summary.json").exists()}
    failed = _run_all(todo, out, jobs)
    if failed:
        name, last = next(iter(failed.items()))
        raise UserError(f"demo run {name} failed: {last}")
    summaries = {n: run_summary(out / n) for n in commands}
    report, _ = write_report([out / n for n in commands], out / "report",
                             preface=lambda folder: paired_section(folder, summaries, seeds))
    return summary_rows(summaries, seeds), report


def check_same_settings(out: Path, names: list[str], quick: bool) -> None:
    """Refuse to reuse or resume a run of the other mode (a --quick run in a full demo, or the
    reverse): its numbers would be reported as this demo's."""
    wanted = int(next(o for o in (QUICK if quick else SMALL_DATA) if o.startswith("trainer.steps="))
                 .split("=")[1])
    for name in names:
        steps = _total_steps(out / name)
        if steps is not None and steps != wanted:
            raise UserError(f"--out {out}: run {name} has trainer.steps={steps}, this demo "
                            f"{'--quick ' if quick else ''}trains {wanted}; choose another --out")


def check_demo_folder(out: Path) -> None:
    """Refuse, before any work, an --out that is a file or a folder holding anything but the demo's
    own earlier output (its runs and report), so a typo never mixes the demo into other work."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; the demo writes a folder (runs and a report)")
    own = {run_name(m, s) for m in METHODS for s in (*SEEDS, *QUICK_SEEDS)} | OLD_RUNS | {"report"}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in own) if out.exists() else []
    if foreign:
        raise UserError(f"--out {out} holds other files ({', '.join(foreign[:3])}); choose an empty or "
                        f"new folder, or one an earlier demo wrote")


def _pairs(summaries: dict, seeds, key: str) -> dict[str, list[float]]:
    return {m: [summaries[run_name(m, s)][key] for s in seeds] for m in METHODS}


def _interval(values: list[float], signed: bool = False) -> str:
    mean, _, high = mean_interval(values)
    return f"{mean:+.3f} ± {high - mean:.3f}" if signed else f"{mean:.3f} ± {high - mean:.3f}"


def summary_rows(summaries: dict, seeds) -> list[dict]:
    """One row per seed and a last row of means with 95% t half-widths; IQLearn - MLE is paired."""
    columns = {}
    for key, label in (METRIC, SECOND):
        pairs = _pairs(summaries, seeds, key)
        diffs = [b - a for a, b in zip(pairs["mle"], pairs["iqlearn"])]
        columns.update({f"MLE {label}": pairs["mle"], f"IQLearn {label}": pairs["iqlearn"],
                        f"IQLearn - MLE {label}": diffs})
    rows = [{"seed": str(s), **{c: v[i] for c, v in columns.items()}} for i, s in enumerate(seeds)]
    rows.append({"seed": "mean ± 95% (t)",
                 **{c: _interval(v, signed=c.startswith("IQLearn - ")) for c, v in columns.items()}})
    return rows


def paired_section(folder: Path, summaries: dict, seeds) -> list[str]:
    """The report's headline: the paired plot and its table (markdown lines)."""
    key, label = METRIC
    mean, low, high = paired_plot(folder / "paired_accuracy.png", {
        "MLE": _pairs(summaries, seeds, key)["mle"], "IQLearn": _pairs(summaries, seeds, key)["iqlearn"]},
        list(seeds), f"held-out {label}")
    rows = summary_rows(summaries, seeds)
    header = list(rows[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(fmt(row[c]) for c in header) + " |" for row in rows]
    examples = summaries[run_name("mle", seeds[0])]["train_examples"]
    return [f"## MLE against IQLearn, {len(seeds)} paired seeds, {examples} training examples", "",
            f"IQLearn - MLE, held-out {label}: {mean:+.3f} (95% t-interval {low:+.3f} to {high:+.3f}).",
            "", "![paired held-out accuracy](paired_accuracy.png)", "", *table, ""]


def _run_all(todo: dict[str, list[str]], out: Path, jobs: int) -> dict[str, str]:
    """Run the commands `jobs` at a time with a progress bar each; {name: last stderr line} of those
    that failed (after a failure no new run starts)."""
    waiting, running, failed = list(todo), {}, {}
    with progress_bar() as progress:
        tasks = {name: progress.add_task(name, total=None) for name in todo}
        while running or (waiting and not failed):
            while waiting and not failed and len(running) < jobs:
                name = waiting.pop(0)
                # a file, not a pipe: a chatty run never blocks; closed when the run ends, below
                log = tempfile.TemporaryFile("w+")  # noqa: SIM115
                running[name] = (subprocess.Popen(todo[name], stdout=subprocess.DEVNULL, stderr=log,
                                                  text=True), log)
            for name, (proc, log) in list(running.items()):
                rows, steps = read_metrics(out / name), _total_steps(out / name)
                if rows:
                    progress.update(tasks[name], completed=rows[-1]["step"], total=steps)
                if proc.poll() is not None:
                    if proc.returncode != 0:
                        log.seek(0)
                        failed[name] = (log.read().strip().splitlines() or ["(no output)"])[-1]
                    log.close()
                    del running[name]
            time.sleep(1.0)
    return failed


def _total_steps(run_dir: Path) -> int | None:
    import yaml
    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text())["trainer"]["steps"] if path.exists() else None
