"""`protege demo`: MLE against offline IQLearn when data is scarce, paired over seeds: does MLE
over-fit more, and how certain is each policy on answers it never saw, at equal task score.

Both methods train on the same 400 arithmetic word problems for 400 steps of 32 (32 epochs), and
both memorise them (training NLL a small fraction of held-out NLL). Each seed fixes the training set
and the initial weights, so MLE and IQLearn of one seed are a pair. The headline is three paired
differences, IQLearn - MLE over 5 seeds with 95% t-intervals, on the 200 held-out prompts: the NLL of
the reference answers (how much probability a policy keeps for answers it never saw: the over-fitting
measure), greedy accuracy (the task score) and the policy's entropy along the references (how peaked
it is); NLL and entropy are teacher forced, so free of sampling noise. What the runs measured so far
gave (docs/results/lm_irl.md): IQLearn's held-out entropy higher on every seed of every demo folder,
its interval clear of zero at 3 seeds at every setting tried; its held-out NLL lower on all 5 seeds
here (interval clear of zero at 5 seeds, not at 3, and not at the costlier settings); accuracy equal
within its interval everywhere. The entropy of sampled answers comes beside, with self-BLEU,
distinct-2 and sampled accuracy. Each verdict is read off its interval: a method is called higher
(or, for NLL, lower) only when the interval clears zero.

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
SEEDS = (0, 1, 2, 3, 4)
# small data: 400 examples, 400 steps of 32 = 32 epochs, where MLE over-fits; over these 5 seeds
# IQLearn's held-out NLL was lower and its held-out entropy higher, both intervals clear of zero
# (docs/results/lm_irl.md), in about the old demo's time; 25 sampled prompts instead of 50 keep ten
# evaluations short (greedy accuracy, NLL and entropy on 200 prompts)
SMALL_DATA = ["task.train_size=400", "trainer.steps=400", "eval.sample_prompts=25"]
QUICK = ["trainer.steps=20", "task.train_size=500", "task.eval_size=20", "eval.prompts=10",
         "eval.sample_prompts=5", "eval.samples=4", "trainer.checkpoint_every=10"]
QUICK_SEEDS = (0, 1)
# the headline, paired over seeds, on the held-out prompts: how much probability each policy keeps
# for answers it never saw (over-fitting raises it), the task score, how peaked the policy is there
HELDOUT_NLL = ("eval/heldout_nll", "held-out NLL")
ACCURACY = ("eval/greedy_score", "accuracy")
HELDOUT_ENTROPY = ("eval/heldout_entropy", "held-out entropy")
HEADLINE = (HELDOUT_NLL, ACCURACY, HELDOUT_ENTROPY)
LOWER_IS_BETTER = {HELDOUT_NLL[0]}
PANEL_TITLES = {HELDOUT_NLL[0]: "NLL of held-out answers (nats/token; lower = better)",
                ACCURACY[0]: "held-out greedy accuracy (200 prompts)",
                HELDOUT_ENTROPY[0]: "entropy along held-out answers (nats/token)"}
# beside the headline: the sampled answers' entropy and diversity (lower self-BLEU, higher
# distinct-2 = more diverse) and their accuracy
BESIDE = (("eval/token_entropy", "entropy of samples"), ("eval/self_bleu", "self-BLEU"),
          ("eval/distinct_2", "distinct-2"), ("eval/sampled_score", "sampled acc"))
PLOT = "paired_heldout.png"
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
    check_headline_measured(out, summaries)
    report, _ = write_report([out / n for n in commands], out / "report",
                             preface=lambda folder: paired_section(folder, summaries, seeds))
    return terminal_rows(summaries, seeds), report


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


def check_headline_measured(out: Path, summaries: dict[str, dict]) -> None:
    """Refuse finished runs whose summary lacks a headline metric (made before the evaluation
    measured it): the report would have gaps where its headline should be."""
    keys = [key for key, _ in (*HEADLINE, *BESIDE)]
    for name, summary in summaries.items():
        missing = [key for key in keys if key not in summary]
        if missing:
            raise UserError(f"--out {out}: run {name} has no {', '.join(missing)} in its summary.json (made "
                            f"before the evaluation measured it); choose another --out")


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


def terminal_rows(summaries: dict, seeds, metrics=HEADLINE) -> list[dict]:
    """The headline as the terminal prints it, one row per metric (narrow enough for a terminal;
    report.md has every seed): each method's mean, the paired difference with its 95% t-interval,
    on how many seeds IQLearn was higher and the verdict."""
    rows = []
    for (key, label), verdict in zip(metrics, paired_verdicts(summaries, seeds, metrics)):
        pairs = _pairs(summaries, seeds, key)
        rows.append({"metric": label, "MLE": _interval(pairs["mle"]), "IQLearn": _interval(pairs["iqlearn"]),
                     "IQLearn - MLE [95% t]": f"{verdict['IQLearn - MLE']:+.3f} [{verdict['low']:+.3f}, "
                                              f"{verdict['high']:+.3f}]",
                     "IQLearn higher on": verdict["IQLearn higher on"], "verdict": verdict["verdict"]})
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
                     "verdict": paired_verdict("MLE", "IQLearn", low, high, key in LOWER_IS_BETTER)})
    return rows


def headline(verdicts: list[dict]) -> str:
    """One sentence from the headline's three verdicts (held-out NLL, accuracy, held-out entropy)."""
    nll, accuracy, entropy = (v["verdict"] for v in verdicts)
    if accuracy == "no resolved difference" and entropy == "IQLearn higher":
        if nll == "IQLearn lower":
            return ("MLE over-fits more: IQLearn keeps a lower NLL on held-out answers and a less peaked "
                    "policy, at equal accuracy.")
        if nll == "no resolved difference":
            return "IQLearn's policy stays less peaked on held-out answers, at equal held-out NLL and accuracy."
    return f"Held-out NLL: {nll}; accuracy: {accuracy}; held-out entropy: {entropy}."


def _markdown(rows: list[dict]) -> list[str]:
    return markdown_table(rows, number="{:.3f}").splitlines()


def paired_section(folder: Path, summaries: dict, seeds) -> list[str]:
    """The report's headline: the verdicts, the paired plot (a row of panels per headline metric)
    and the per-seed table, then the sampled answers' entropy and diversity (markdown lines)."""
    verdicts = paired_verdicts(summaries, seeds, HEADLINE)
    sentence = headline(verdicts)
    panels = {}
    for key, _ in HEADLINE:
        pairs = _pairs(summaries, seeds, key)
        panels[PANEL_TITLES[key]] = {"MLE": pairs["mle"], "IQLearn": pairs["iqlearn"]}
    paired_plots(folder / PLOT, panels, list(seeds), title=sentence,
                 lower_better=tuple(PANEL_TITLES[key] for key in LOWER_IS_BETTER))
    said = [f"- IQLearn - MLE, {v['metric']}: {v['IQLearn - MLE']:+.3f} (95% t-interval "
            f"{v['low']:+.3f} to {v['high']:+.3f}; IQLearn higher on {v['IQLearn higher on']}): "
            f"{v['verdict']}." for v in verdicts]
    examples = summaries[run_name("mle", seeds[0])]["train_examples"]
    return [f"## MLE against IQLearn, {len(seeds)} paired seeds, {examples} training examples", "",
            sentence, "", *said, "", f"![paired held-out NLL, accuracy and entropy]({PLOT})", "",
            *_markdown(summary_rows(summaries, seeds)), "",
            "Beside, on the sampled answers (lower self-BLEU and higher distinct-2 = more diverse):", "",
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
