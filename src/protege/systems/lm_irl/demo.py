"""`protege demo`: MLE against offline IQLearn on the built-in arithmetic word problems.

The two methods train at the same time in two processes of one thread each (the demo's budget is
2 CPU cores); the parent shows their progress from their metrics files. A finished run is reused
and a killed one resumes, so running the demo again costs nothing and loses nothing.
"""

import subprocess
import sys
import time
from pathlib import Path

from protege.core.errors import UserError
from protege.core.progress import progress_bar
from protege.core.runs import read_metrics
from protege.eval.report import run_summary, write_report

METHODS = {"mle": "lm_arithmetic_mle", "iqlearn": "lm_arithmetic_iqlearn"}
QUICK = ["trainer.steps=20", "task.train_size=500", "task.eval_size=20", "eval.prompts=10",
         "eval.sample_prompts=5", "eval.samples=4", "trainer.checkpoint_every=10"]
COLUMNS = {"eval/greedy_score": "accuracy", "eval/sampled_score": "sampled acc",
           "eval/self_bleu": "Self-BLEU", "eval/distinct_2": "distinct-2",
           "eval/token_entropy": "entropy", "eval/reward_spearman": "reward-acc Spearman"}


def _command(recipe: str, method: str, out: Path, quick: bool) -> list[str]:
    overrides = [f"name={method}", f"runs_dir={out}", "threads=1"] + (QUICK if quick else [])
    resume = ["--resume"] if (out / method / "config.yaml").exists() else []
    return [sys.executable, "-m", "protege", "run", recipe, *overrides, *resume]


def run_demo(out: Path, quick: bool = False) -> tuple[list[dict], Path]:
    out = Path(out)
    check_demo_folder(out)
    todo = {m: r for m, r in METHODS.items() if not (out / m / "summary.json").exists()}
    procs = {m: subprocess.Popen(_command(r, m, out, quick), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True) for m, r in todo.items()}
    _watch(procs, out)
    for method, proc in procs.items():
        if proc.returncode != 0:
            last = (proc.stderr.read().strip().splitlines() or ["(no output)"])[-1]
            raise UserError(f"demo run {method} failed: {last}")
    run_dirs = [out / m for m in METHODS]
    report, _ = write_report(run_dirs, out / "report")
    rows = []
    for run_dir in run_dirs:
        summary = run_summary(run_dir)
        rows.append({"method": run_dir.name, "lambda": summary.get("lam"),
                     **{label: summary.get(key) for key, label in COLUMNS.items()}})
    return rows, report


def check_demo_folder(out: Path) -> None:
    """Refuse, before any work, an --out that is a file or a folder holding anything but the demo's
    own earlier output (its runs and report), so a typo never mixes the demo into other work."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; the demo writes a folder (runs and a report)")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in {*METHODS, "report"}) if out.exists() else []
    if foreign:
        raise UserError(f"--out {out} holds other files ({', '.join(foreign[:3])}); choose an empty or "
                        f"new folder, or one an earlier demo wrote")


def _watch(procs: dict, out: Path) -> None:
    """A progress bar per run, read from the step of its last metrics row."""
    with progress_bar() as progress:
        tasks = {m: progress.add_task(m, total=None) for m in procs}
        while any(p.poll() is None for p in procs.values()):
            for method, task in tasks.items():
                rows = read_metrics(out / method)
                steps = _total_steps(out / method)
                if rows:
                    progress.update(task, completed=rows[-1]["step"], total=steps)
            time.sleep(1.0)


def _total_steps(run_dir: Path) -> int | None:
    import yaml
    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text())["trainer"]["steps"] if path.exists() else None
