"""Best-of-N on arithmetic with a process reward (IBT on step marks), an outcome reward and IQLearn's
extracted reward: trains what is missing, reranks, and prints the table of docs/results/ibt_text.md.

Per seed, one process at a time (a killed step resumes when the script is run again):
  1. the policy:        protege run lm_arithmetic_<policy> (trainer.steps=--lm-steps)
  2. process reward:    protege run prm_arithmetic          init_from=<the iqlearn policy of the seed>
  3. outcome reward:    protege run prm_arithmetic_outcome  init_from=<the same>
  4. reranking:         protege lm rerank <policy> --reward process=... --reward outcome=...
                        --reward iqlearn=<the iqlearn run of the seed>
The last line printed is one JSON object (every cell: mean and 95% t interval over the seeds).
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from protege.core.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from protege.eval.stats import mean_interval  # noqa: E402
from protege.systems import start  # noqa: E402
from protege.systems.lm_irl.best_of_n import rerank  # noqa: E402


def train(recipe: str, name: str, out: Path, overrides: list[str]) -> Path:
    """`protege run recipe name=... runs_dir=out overrides [--resume]`, in this process."""
    run_dir = out / name
    if (run_dir / "summary.json").exists():
        return run_dir
    resume = (run_dir / "config.yaml").exists()
    print(f"$ protege run {recipe} name={name} runs_dir={out} {' '.join(overrides)}"
          f"{' --resume' if resume else ''}", flush=True)
    start(recipe, [f"name={name}", f"runs_dir={out}", *overrides], resume=resume)
    return run_dir


def one_seed(args, seed: int) -> dict[str, dict]:
    common = [f"seed={seed}", "threads=1"]
    lms = {p: train(f"lm_arithmetic_{p}", f"lm-{p}-s{seed}", args.out,
                    common + [f"trainer.steps={args.lm_steps}"]) for p in args.policies}
    init = f"init_from={lms['iqlearn']}"
    steps = f"trainer.steps={args.prm_steps}"
    rewards = {"process": train("prm_arithmetic", f"prm-process-s{seed}", args.out, common + [init, steps]),
               "outcome": train("prm_arithmetic_outcome", f"prm-outcome-s{seed}", args.out,
                                common + [init, steps]),
               "iqlearn": lms["iqlearn"]}
    results = {}
    for policy, run_dir in lms.items():
        path = args.out / f"rerank-{policy}-s{seed}.json"
        if not path.exists():  # what `protege lm rerank RUN --reward k=v ... --out path` writes
            print(f"$ protege lm rerank {run_dir} " + " ".join(f"--reward {k}={v}" for k, v in rewards.items())
                  + f" --prompts {args.prompts} --samples {args.samples} --seed {seed} "
                  + " ".join(f"--n {n}" for n in args.n) + f" --out {path}", flush=True)
            summary, rows = rerank(run_dir, rewards, args.prompts, args.samples, sorted(args.n), seed)
            write_text_atomic(path.with_suffix(".samples.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
            write_json_atomic(path, {"policy": str(run_dir), "rewards": {k: str(v) for k, v in rewards.items()},
                                     **summary})
        results[policy] = json.loads(path.read_text())
    return results


def table(per_seed: list[dict], policy: str, ns: list[int]) -> tuple[str, dict]:
    rows = [("greedy (no reranking)", "greedy", False), ("majority vote", "majority", True),
            ("outcome reward (BT on final answers)", "outcome", True),
            ("IQLearn extracted reward", "iqlearn", True),
            ("process reward (IBT on step marks)", "process", True), ("pass@N (oracle)", "pass", True)]
    lines = ["| reranker | " + " | ".join(f"N = {n}" for n in ns) + " |",
             "|---|" + "---|" * len(ns)]
    cells = {}
    for label, key, by_n in rows:
        out = []
        for n in ns:
            name = f"{key}@{n}" if by_n else key
            mean, low, high = mean_interval([r[policy][name] for r in per_seed])
            cells[f"{policy}/{name}"] = [round(mean, 4), round(low, 4), round(high, 4)]
            out.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        lines.append(f"| {label} | " + " | ".join(out) + " |")
    return "\n".join(lines), cells


def paired_table(per_seed: list[dict], policy: str, ns: list[int]) -> tuple[str, dict]:
    """Seed-by-seed differences (a seed's policy, marks and samples are shared by all rerankers)."""
    pairs = [("process", "outcome"), ("process", "iqlearn"), ("outcome", "iqlearn"), ("process", "majority"),
             ("outcome", "majority"), ("iqlearn", "majority"), ("process", "greedy")]
    shown = [n for n in ns if n > 1]
    lines = ["| difference | " + " | ".join(f"N = {n}" for n in shown) + " |", "|---|" + "---|" * len(shown)]
    cells = {}
    for a, b in pairs:
        out = []
        for n in shown:
            key_b = b if b == "greedy" else f"{b}@{n}"
            mean, low, high = mean_interval([r[policy][f"{a}@{n}"] - r[policy][key_b] for r in per_seed])
            cells[f"{policy}/{a}-{b}@{n}"] = [round(mean, 4), round(low, 4), round(high, 4)]
            out.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append(f"| {a} - {b} | " + " | ".join(out) + " |")
    return "\n".join(lines), cells


def within_prompt_auc(samples: Path, reward: str) -> float:
    """Mean over prompts with right and wrong samples of P(score(right) > score(wrong)) (ties half):
    how well a reward orders the samples it has to choose between."""
    from collections import defaultdict

    import numpy as np
    by_prompt = defaultdict(list)
    for line in samples.read_text().splitlines():
        row = json.loads(line)
        by_prompt[row["prompt"]].append((row[reward], row["correct"]))
    aucs = []
    for rows in by_prompt.values():
        right = np.array([s for s, c in rows if c])
        wrong = np.array([s for s, c in rows if not c])
        if len(right) and len(wrong):
            diff = right[:, None] - wrong[None, :]
            aucs.append(float((diff > 0).mean() + 0.5 * (diff == 0).mean()))
    return float(np.mean(aucs))


def auc_table(args, policy: str) -> tuple[str, dict]:
    lines = ["| reward | within-prompt AUC | per seed |", "|---|---|---|"]
    cells = {}
    for reward in ("outcome", "iqlearn", "process"):
        values = [within_prompt_auc(args.out / f"rerank-{policy}-s{seed}.samples.jsonl", reward)
                  for seed in args.seeds]
        mean, low, high = mean_interval(values)
        cells[f"{policy}/auc/{reward}"] = [round(mean, 4), round(low, 4), round(high, 4)]
        lines.append(f"| {reward} | {mean:.3f} [{low:.3f}, {high:.3f}] | "
                     + " / ".join(f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines), cells


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--policies", nargs="+", default=["iqlearn"], choices=["iqlearn", "mle"])
    parser.add_argument("--out", type=Path, default=Path("runs/ibt_text"))
    parser.add_argument("--lm-steps", type=int, default=800)
    parser.add_argument("--prm-steps", type=int, default=150)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    if "iqlearn" not in args.policies:
        parser.error("--policies must include iqlearn (its run gives the extracted reward and the "
                     "reward models' initial weights)")
    args.out = (ROOT / args.out) if not args.out.is_absolute() else args.out
    per_seed = [one_seed(args, seed) for seed in args.seeds]
    cells = {}
    for policy in args.policies:
        text, c = table(per_seed, policy, args.n)
        cells.update(c)
        print(f"\npolicy {policy}, seeds {args.seeds}, mean [95% t interval]:\n{text}\n")
        text, c = paired_table(per_seed, policy, args.n)
        cells.update(c)
        print(f"policy {policy}: paired differences, seed by seed, mean [95% t interval]:\n{text}\n")
        text, c = auc_table(args, policy)
        cells.update(c)
        print(f"policy {policy}: how each reward orders right above wrong samples of one prompt:\n{text}\n")
    print(json.dumps({"seeds": args.seeds, **cells}))


if __name__ == "__main__":
    main()
