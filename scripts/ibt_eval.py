"""Evaluate ibt_rl runs' final policies (greedy and sampled success on the held-out seeds), for runs
made before `ibt_rl`'s evaluation reported the sampled success; writes RUN/eval/ibt_eval.json.

    .venv/bin/python scripts/ibt_eval.py RUN... [--episodes 300]
The last line printed is one JSON object.
"""

import argparse
import json
from pathlib import Path

import torch

from protege.core.runs import read_run_config, save_eval
from protege.rl.babyai_rollout import load_policy
from protege.systems.feedback.ibt_rl import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--episodes", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for run in map(Path, args.runs):
        config = read_run_config(run)
        source = run if (run / "checkpoints" / "latest").exists() else Path(config["init_from"])
        policy, _, _ = load_policy(source)
        result = evaluate(policy, config["level"], args.episodes)
        save_eval(run, "ibt_eval", {"episodes": args.episodes, "policy": str(source)}, result)
        rows[run.name] = result
        print(run.name, json.dumps(result))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
