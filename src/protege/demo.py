"""`protege demo`: MLE against offline IQLearn on the built-in arithmetic word problems.

Each method trains in its own run directory under `out`; a finished run is reused and a killed one
resumes, so running the demo again costs nothing and loses nothing. The report compares the runs.
"""

from pathlib import Path

from protege.evaluation.report import run_summary, write_report
from protege.experiments import start

METHODS = {
    "mle": ("lm_arithmetic_mle", []),
    "iqlearn": ("lm_arithmetic_iqlearn", []),
}
QUICK = ["trainer.steps=20", "task.train_size=500", "task.eval_size=20", "eval.prompts=10",
         "eval.sample_prompts=5", "eval.samples=4", "trainer.checkpoint_every=10"]
COLUMNS = {"eval/greedy_score": "accuracy", "eval/sampled_score": "sampled acc",
           "eval/self_bleu": "Self-BLEU", "eval/distinct_2": "distinct-2",
           "eval/token_entropy": "entropy", "eval/reward_spearman": "reward-acc Spearman"}


def run_demo(out: Path, quick: bool = False) -> tuple[list[dict], Path]:
    out = Path(out)
    run_dirs = []
    for method, (recipe, overrides) in METHODS.items():
        run_dir = out / method
        overrides = overrides + (QUICK if quick else []) + [f"name={method}", f"runs_dir={out}"]
        if not (run_dir / "summary.json").exists():
            start(recipe, overrides, resume=(run_dir / "config.yaml").exists())
        run_dirs.append(run_dir)
    report, _ = write_report(run_dirs, out / "report")
    rows = []
    for run_dir in run_dirs:
        summary = run_summary(run_dir)
        rows.append({"method": run_dir.name, "lambda": summary.get("lam"),
                     **{label: summary.get(key) for key, label in COLUMNS.items()}})
    return rows, report
