"""`protege demo`: MLE against offline IQLearn when data is scarce, paired over seeds: diversity at
equal task score.

Both methods train on the same 500 arithmetic word problems for 800 steps of 32 (51 epochs). Each
seed fixes the training set and the initial weights, so MLE and IQLearn of one seed are a pair. The
headline is two paired differences, IQLearn - MLE over the seeds with 95% t-intervals: the token
entropy of the sampled answers (how much the policy still varies its wording) and held-out greedy
accuracy (the task score). In every demo run measured so far (docs/results/lm_irl.md) IQLearn's
samples kept more entropy on every seed while accuracy was equal within its interval; the entropy
interval cleared zero in both runs at this setting (+0.040 [+0.015, +0.066] and +0.039 [+0.020,
+0.058]) but in neither run of the cheaper 400-example / 600-step setting (3 seeds), which is why the
demo keeps this one though it costs more (~17 CPU-minutes against ~14). Accuracy alone moves with float rounding here (1e-7 in the
learning rate moves a run by up to ~0.1). Each verdict is read off its interval: a method is called
higher only when the interval clears zero. Self-BLEU, distinct-2 and sampled accuracy come beside.

The runs go `jobs` at a time, one thread each (the demo's budget is 2 CPU cores); the parent shows
their progress from their metrics files. A finished run is reused and a killed one resumes, so
running the demo again costs nothing and loses nothing.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from protege.core.errors import UserError
from protege.core.progress import progress_bar
from protege.core.runs import read_metrics
from protege.eval.report import (
    markdown_table,
    paired_plots,
    paired_verdict,
    run_summary,
    write_report,
)
from protege.eval.stats import mean_interval

METHODS = {"mle": "lm_arithmetic_mle", "iqlearn": "lm_arithmetic_iqlearn"}
SEEDS = (0, 1, 2)
# small data: 500 examples, 800 steps of 32 = 51 epochs, where MLE overfits and the entropy gap
# resolved at 3 seeds (docs/results/lm_irl.md); 25 sampled prompts instead of 50 keep six evaluations
# short (greedy accuracy still on 200 prompts)
SMALL_DATA = ["task.train_size=500", "trainer.steps=800", "eval.sample_prompts=25"]
QUICK = ["trainer.steps=20", "task.train_size=500", "task.eval_size=20", "eval.prompts=10",
         "eval.sample_prompts=5", "eval.samples=4", "trainer.checkpoint_every=10"]
QUICK_SEEDS = (0, 1)
# the headline, paired over seeds: task score and the diversity of the samples at that score
ACCURACY = ("eval/greedy_score", "accuracy")
ENTROPY = ("eval/token_entropy", "token entropy")
HEADLINE = (ACCURACY, ENTROPY)
# beside the headline: other diversity measures (lower self-BLEU, higher distinct-2 = more diverse)
BESIDE = (("eval/self_bleu", "self-BLEU"), ("eval/distinct_2", "distinct-2"),
          ("eval/sampled_score", "sampled acc"))
PLOT = "paired_accuracy_entropy.png"
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
    """Refuse to reuse or resume a run made with other training settings (a --quick run in a full
    demo, the reverse, or an older demo's steps, data or evaluation size): its numbers would be reported as
    this demo's."""
    wanted = dict(o.split("=") for o in (QUICK if quick else SMALL_DATA))
    for name in names:
        path = out / name / "config.yaml"
        if not path.exists():
            continue
        config = yaml.safe_load(path.read_text())
        had = {key: config.get(key.split(".")[0], {}).get(key.split(".")[1]) for key in wanted}
        differ = [key for key, value in wanted.items() if str(had[key]) != value]
        if differ:
            raise UserError(f"--out {out}: run {name} has "
                            f"{', '.join(f'{k}={had[k]}' for k in differ)}, this demo "
                            f"{'--quick ' if quick else ''}uses {', '.join(wanted[k] for k in differ)}; "
                            f"choose another --out")


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


def _diffs(pairs: dict[str, list[float]]) -> list[float]:
    """IQLearn - MLE per seed, from `_pairs`."""
    return [b - a for a, b in zip(pairs["mle"], pairs["iqlearn"])]


def _interval(values: list[float], signed: bool = False) -> str:
    mean, _, high = mean_interval(values)
    return f"{mean:+.3f} ± {high - mean:.3f}" if signed else f"{mean:.3f} ± {high - mean:.3f}"


def summary_rows(summaries: dict, seeds, metrics=HEADLINE) -> list[dict]:
    """One row per seed and a last row of means with 95% t half-widths; IQLearn - MLE is paired."""
    columns = {}
    for key, label in metrics:
        pairs = _pairs(summaries, seeds, key)
        columns.update({f"MLE {label}": pairs["mle"], f"IQLearn {label}": pairs["iqlearn"],
                        f"IQLearn - MLE {label}": _diffs(pairs)})
    rows = [{"seed": str(s), **{c: v[i] for c, v in columns.items()}} for i, s in enumerate(seeds)]
    rows.append({"seed": "mean ± 95% (t)",
                 **{c: _interval(v, signed=c.startswith("IQLearn - ")) for c, v in columns.items()}})
    return rows


def paired_verdicts(summaries: dict, seeds, metrics) -> list[dict]:
    """Per metric: IQLearn - MLE paired over the seeds, its 95% t-interval, on how many seeds
    IQLearn was higher and the verdict read off the interval ("IQLearn higher" only when it clears
    zero)."""
    rows = []
    for key, label in metrics:
        diffs = _diffs(_pairs(summaries, seeds, key))
        mean, low, high = mean_interval(diffs)
        rows.append({"metric": label, "IQLearn - MLE": mean, "low": low, "high": high,
                     "IQLearn higher on": f"{sum(d > 0 for d in diffs)}/{len(diffs)} seeds",
                     "verdict": paired_verdict("MLE", "IQLearn", low, high)})
    return rows


def headline(verdicts: list[dict]) -> str:
    """One sentence from the headline's two verdicts (accuracy, token entropy)."""
    accuracy, entropy = verdicts
    if entropy["verdict"] == "IQLearn higher" and accuracy["verdict"] == "no resolved difference":
        return "IQLearn keeps more diversity at equal task score."
    return (f"Token entropy: {entropy['verdict']} (IQLearn higher on {entropy['IQLearn higher on']}); "
            f"accuracy: {accuracy['verdict']}.")


def _markdown(rows: list[dict]) -> list[str]:
    return markdown_table(rows, number="{:.3f}").splitlines()


def paired_section(folder: Path, summaries: dict, seeds) -> list[str]:
    """The report's headline: the verdicts, the two-panel paired plot and the per-seed table, then
    the other diversity measures (markdown lines)."""
    verdicts = paired_verdicts(summaries, seeds, HEADLINE)
    sentence = headline(verdicts)
    panels = {}
    for key, label in HEADLINE:
        pairs = _pairs(summaries, seeds, key)
        title = f"held-out {label}" if key == ACCURACY[0] else f"{label} of samples (nats)"
        panels[title] = {"MLE": pairs["mle"], "IQLearn": pairs["iqlearn"]}
    paired_plots(folder / PLOT, panels, list(seeds), title=sentence)
    said = [f"- IQLearn - MLE, {v['metric']}: {v['IQLearn - MLE']:+.3f} (95% t-interval "
            f"{v['low']:+.3f} to {v['high']:+.3f}; IQLearn higher on {v['IQLearn higher on']}): "
            f"{v['verdict']}." for v in verdicts]
    examples = summaries[run_name("mle", seeds[0])]["train_examples"]
    return [f"## MLE against IQLearn, {len(seeds)} paired seeds, {examples} training examples", "",
            sentence, "", *said, "", f"![paired accuracy and token entropy]({PLOT})", "",
            *_markdown(summary_rows(summaries, seeds)), "",
            "Beside (lower self-BLEU and higher distinct-2 = more diverse samples):", "",
            *_markdown(paired_verdicts(summaries, seeds, BESIDE)), ""]


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
    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text())["trainer"]["steps"] if path.exists() else None
