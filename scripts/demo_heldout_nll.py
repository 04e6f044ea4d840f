"""Held-out NLL and entropy of finished `protege demo` folders, paired over seeds (IQLearn - MLE, 95% t).

For every run `<method>-s<seed>` of each folder: the policy's teacher-forced negative log-likelihood
of the reference completions and its entropy along them (`evaluate.reference_fit`, each a mean per
completion token), on its task's held-out prompts (the same `eval.prompts` prompts its accuracy
used) and on its own training examples, next to the held-out greedy accuracy and the token entropy
of the samples from the run's summary.json. Runs that already log `eval/heldout_nll` are measured
again (it is deterministic, so the two agree up to float rounding). Several folders of one setting (e.g. seeds 0-2 and extra seeds
3, 4) can be pooled with `--pool NAME=DIR,DIR`. The last line printed is one JSON object.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python scripts/demo_heldout_nll.py DIR [DIR ...] \
        [--pool NAME=DIR,DIR ...]
"""
import argparse
import json
import re
import time
from pathlib import Path

from protege.eval.report import run_summary
from protege.eval.stats import mean_interval
from protege.systems.lm_irl.evaluate import load_trained, reference_fit
from protege.worlds.text.tasks import TaskConfig, load_task

METHODS = ("mle", "iqlearn")
SUMMARY = {"accuracy": "eval/greedy_score", "token entropy": "eval/token_entropy"}


def measure(run_dir: Path) -> dict:
    """{heldout nll, train nll, accuracy, token entropy} of one finished run."""
    model, tokenizer, config = load_trained(run_dir, inference_only=True)
    task_fields = {k: v for k, v in config["task"].items() if k in TaskConfig.__dataclass_fields__}
    task = load_task(TaskConfig(**task_fields), config["seed"])
    context = config["model"]["context"]
    summary = run_summary(run_dir)
    heldout_nll, heldout_entropy = reference_fit(model, tokenizer, task.eval[:config["eval"]["prompts"]], context)
    train_nll, train_entropy = reference_fit(model, tokenizer, task.train, context)
    return {"heldout nll": heldout_nll, "heldout entropy": heldout_entropy, "train nll": train_nll,
            "train entropy": train_entropy,
            **{label: summary[key] for label, key in SUMMARY.items()}}


def seeds_of(folder: Path) -> list[int]:
    found = {int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(r"mle-s(\d+)", p.name))}
    return sorted(s for s in found if (folder / f"iqlearn-s{s}" / "summary.json").exists())


def paired(per_seed: dict[int, dict[str, dict]], metric: str) -> dict:
    diffs = [runs["iqlearn"][metric] - runs["mle"][metric] for runs in per_seed.values()]
    mean, low, high = mean_interval(diffs)
    return {"mean": mean, "low": low, "high": high, "iqlearn_higher": sum(d > 0 for d in diffs),
            "seeds": len(diffs)}


def report(name: str, per_seed: dict[int, dict[str, dict]]) -> dict:
    metrics = list(next(iter(per_seed.values()))["mle"])
    print(f"\n## {name}")
    print("| seed | " + " | ".join(f"MLE {m} | IQLearn {m} | IQ - MLE" for m in metrics) + " |")
    print("|---|" + "---|---|---|" * len(metrics))
    for seed, runs in per_seed.items():
        cells = [f"{runs['mle'][m]:.4f} | {runs['iqlearn'][m]:.4f} | {runs['iqlearn'][m] - runs['mle'][m]:+.4f}"
                 for m in metrics]
        print(f"| {seed} | " + " | ".join(cells) + " |")
    result = {m: paired(per_seed, m) for m in metrics}
    for m, r in result.items():
        print(f"- IQLearn - MLE {m}: {r['mean']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}] "
              f"(IQLearn higher on {r['iqlearn_higher']}/{r['seeds']} seeds)")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--pool", action="append", default=[], help="NAME=DIR,DIR: seeds of several folders")
    args = parser.parse_args()
    measured: dict[Path, dict[int, dict[str, dict]]] = {}
    started = time.process_time()

    def of(folder: Path) -> dict[int, dict[str, dict]]:
        if folder not in measured:
            measured[folder] = {s: {m: measure(folder / f"{m}-s{s}") for m in METHODS}
                                for s in seeds_of(folder)}
        return measured[folder]

    results = {str(folder): report(str(folder), of(folder)) for folder in args.folders}
    for pool in args.pool:
        name, dirs = pool.split("=", 1)
        per_seed = {s: runs for d in dirs.split(",") for s, runs in of(Path(d)).items()}
        results[name] = report(f"{name} ({dirs})", dict(sorted(per_seed.items())))
    print(json.dumps({"cpu_s": round(time.process_time() - started, 1), "results": results}))


if __name__ == "__main__":
    main()
