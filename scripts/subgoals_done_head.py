"""How often a hierarchical agent's done head fires: teacher forced on held-out bot episodes
(seeds from 10^9, as `protege eval subgoals`' agreement), and, with `--thresholds` or
`--switch-costs`, the agent's success when the head must be surer than p to fire, or when the
pursued phrase gets a bonus at a firing (`HierarchicalAgent.switch_cost`), on validation layouts
(seeds from 1.5 x 10^9, neither training nor evaluation ones): where such a setting is chosen.

    PYTHONPATH=src .venv/bin/python scripts/subgoals_done_head.py runs/mb_hseq_s0 --episodes 100 \
        --thresholds 0.5 0.9 --replan done_keep --play 100
    PYTHONPATH=src .venv/bin/python scripts/subgoals_done_head.py runs/mb_hseq_s0 --episodes 0 \
        --switch-costs 0 1 2 4 --replan done_keep --play 100

Teacher forced: at every step s of a bot episode, the head reads (view o_s, the bot's phrase at
s-1) and should fire exactly where the bot's subgoal changes (`batches.make_batch`'s labels):
precision, recall and the firing rate where the subgoal has not changed. Last line: JSON.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from protege.systems.subgoals.batches import make_batch
from protege.systems.subgoals.evaluate import bot_phrase_episodes, evaluate_agent, load_agent

VALIDATION_SEED_START = 1_500_000_000


@torch.no_grad()
def teacher_forced(run: Path, level: str | None, episodes: int) -> dict:
    agent, config = load_agent(run)
    data = bot_phrase_episodes(level or config["level"], episodes)
    index = {p: i for i, p in enumerate(agent.phrases)}
    batch = make_batch(data, np.arange(len(data)), index)
    fired = agent.done(batch.done_images, batch.done_directions, batch.done_tokens) > 0
    changed = batch.done_labels > 0.5
    tp, fp = int((fired & changed).sum()), int((fired & ~changed).sum())
    fn, tn = int((~fired & changed).sum()), int((~fired & ~changed).sum())
    return {"steps": tp + fp + fn + tn, "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "false_firing_rate": fp / max(fp + tn, 1), "changes": tp + fn}


def validation_play(run: Path, p: float, switch_cost: float, replan: str | None, episodes: int) -> dict:
    """Success when the head fires only at probability > p (its bias lowered by logit(p)) and the
    pursued phrase gets `switch_cost` at a firing."""
    agent, config = load_agent(run)
    agent.replan, agent.switch_cost = replan or agent.replan, switch_cost
    agent.done.head[-1].bias.data -= math.log(p / (1 - p))
    r = evaluate_agent(agent, config["level"], episodes, seed_start=VALIDATION_SEED_START)
    return {"p": p, "switch_cost": switch_cost, "replan": agent.replan,
            **{k: r[k] for k in ("success", "success_lo", "success_hi", "subgoals_per_episode", "length")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--level", default=None, help="default: the run's level")
    ap.add_argument("--episodes", type=int, default=100, help="held-out bot episodes, teacher forced (0 skips)")
    ap.add_argument("--thresholds", type=float, nargs="*", default=[], help="firing probabilities to play")
    ap.add_argument("--switch-costs", type=float, nargs="*", default=[], help="switch costs to play (p = 0.5)")
    ap.add_argument("--replan", default=None, help="the rule to play them by (default: the run's)")
    ap.add_argument("--play", type=int, default=100, help="validation episodes per threshold")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {"run": str(args.run), "played": []}
    if args.episodes:
        out["teacher_forced"] = teacher_forced(args.run, args.level, args.episodes)
        print("teacher forced:", {k: round(v, 3) for k, v in out["teacher_forced"].items()})
    for p, cost in [(p, 0.0) for p in args.thresholds] + [(0.5, c) for c in args.switch_costs]:
        out["played"].append(validation_play(args.run, p, cost, args.replan, args.play))
        print("played:", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out["played"][-1].items()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
