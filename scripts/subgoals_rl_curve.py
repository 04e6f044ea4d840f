"""The subgoals RL stage's learning curve (docs/results/subgoals.md): per run, the success of its
training episodes (the chooser's phrases sampled) pooled over blocks of N iterations with a 95%
Wilson interval, the environment steps at each block's end and the KL to the BC chooser there.

    PYTHONPATH=src .venv/bin/python scripts/subgoals_rl_curve.py --block 30 runs/mb_hgr_rl120_s0 ...

Last line: JSON.
"""

import argparse
import json
from pathlib import Path

import yaml

from protege.core.runs import read_metrics
from protege.eval.stats import wilson_interval


def blocks(run: Path, block: int) -> list[dict]:
    """Training success, environment steps so far and KL to the prior, per `block` iterations."""
    episodes = int(yaml.safe_load((run / "config.yaml").read_text())["episodes"])
    rows = [r for r in read_metrics(run, wall_clock=False) if "charts/success_rate" in r]
    out, steps = [], 0.0
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        wins = round(sum(r["charts/success_rate"] for r in part) * episodes)
        n = len(part) * episodes
        steps += sum(r["charts/episodic_length"] for r in part) * episodes
        lo, hi = wilson_interval(wins, n)
        out.append({"first": start + 1, "iterations": start + len(part), "env_steps": round(steps),
                    "success": wins / n, "lo": lo, "hi": hi, "kl_to_prior": part[-1]["ppo/kl_to_prior"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=30)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    table = {str(run): blocks(run, args.block) for run in args.runs}
    longest = max(table.values(), key=len)
    print("| run | " + " | ".join(f"iterations {b['first']}-{b['iterations']}"
                                  for b in longest) + " |")
    print("|---|" + "---|" * len(longest))
    for run, cells in table.items():
        print(f"| {Path(run).name} | " + " | ".join(
            f"{b['success']:.3f} [{b['lo']:.2f}, {b['hi']:.2f}], KL {b['kl_to_prior']:.3f}, "
            f"{b['env_steps']:,} steps" for b in cells) + " |")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
