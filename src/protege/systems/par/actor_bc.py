"""Experiment `par_actor`: the Actor of the Planner-Actor-Reporter, a BabyAI policy told one
instruction ("go to / examine / pick up the <colour> <type>"), trained by BC on the examine world's
scripted expert (the low level of arXiv:2309.11564's hierarchy, with the Planner's phrases as its
instructions; "examine" is not a BabyAI word, so the policy reads it as <unk>).

Demonstrations: per episode seed, the expert follows a random instruction list (1-3 go-to/examine
instructions on random objects, then a pick up), each a segment that ends with `done` (or with the
pickup). Loss: `protege.losses.mle.mle_loss` on the expert's actions of B segments, the policy's
memory fresh at each segment (as when acting). Then held-out: the Planner-Actor-Reporter success
with the rule Planner and the oracle Reporter, and the single-instruction success.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from minigrid.core.actions import Actions

from protege.core.atomic import write_json_atomic
from protege.core.config_help import check_fields
from protege.core.runs import Run
from protege.core.seeds import seed_everything
from protege.losses.mle import mle_loss
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig, tokenize
from protege.rl.fit import TrainerConfig, fit
from protege.systems.par.dialogue import NoReporter, OracleReporter
from protege.systems.par.episode import ACTOR_FILE, PolicyActor, evaluate
from protege.systems.par.planners import RulePlanner
from protege.worlds.babyai.examine import (
    check_world,
    expert_action,
    make_examine_env,
    scene,
)


@dataclass
class Config:
    name: str = "par_actor"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds initialisation, the demonstrations' instruction lists and the data order"""
    size: int = 6
    """room side, walls included"""
    n_objects: int = 3
    """objects in the room (2-4)"""
    demo_episodes: int = 2000
    """expert episodes (seeds 0..n-1), each 2-4 instruction segments"""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """the BabyAI policy's sizes"""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """the offline loop: steps, batch (segments), learning rate, logging, checkpoints"""
    eval_episodes: int = 200
    """held-out Planner-Actor-Reporter episodes (seeds from 10^9) per Reporter; 0 skips"""

    def __post_init__(self):
        check_fields(self, demo_episodes=">=1", eval_episodes=">=0")
        check_world(self.size, self.n_objects)


def demo_segments(n_episodes: int, size: int, n_objects: int, seed: int) -> list[dict]:
    """The expert's segments: instruction, images [T, 7, 7, 3], directions [T], actions [T]."""
    env, rng = make_examine_env(size, n_objects), random.Random(seed)
    segments = []
    for ep in range(n_episodes):
        obs, _ = env.reset(seed=ep)
        names = scene(env)
        plan = [f"{rng.choice(['go to', 'examine'])} the {rng.choice(names)}" for _ in range(rng.randint(1, 3))]
        plan.append(f"pick up the {rng.choice(names)}")
        ended = False
        for instruction in plan:
            images, directions, actions = [], [], []
            while len(actions) < 40:
                action = expert_action(env, instruction)
                images.append(obs["image"])
                directions.append(int(obs["direction"]))
                actions.append(action)
                if action == Actions.done:
                    break
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    ended = True
                    break
            segments.append({"instruction": instruction, "images": np.stack(images),
                             "directions": np.array(directions), "actions": np.array(actions)})
            if ended:
                break
    return segments


def make_batch(segments: list[dict], idx) -> dict:
    chosen = [segments[i] for i in idx]
    T = max(len(s["actions"]) for s in chosen)
    B = len(chosen)
    images = torch.zeros(B, T, 7, 7, 3, dtype=torch.uint8)
    directions = torch.zeros(B, T, dtype=torch.long)
    actions = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, s in enumerate(chosen):
        n = len(s["actions"])
        images[b, :n] = torch.from_numpy(s["images"])
        directions[b, :n] = torch.from_numpy(s["directions"])
        actions[b, :n] = torch.from_numpy(s["actions"])
        mask[b, :n] = True
    return {"images": images, "directions": directions, "actions": actions, "mask": mask,
            "tokens": tokenize([s["instruction"] for s in chosen])}


def bc_loss(policy: BabyAIPolicy, batch: dict):
    logits, _, _ = policy(batch["images"], batch["directions"], batch["tokens"], mask=batch["mask"])
    loss, _ = mle_loss(logits, batch["actions"], batch["mask"])
    accuracy = ((logits.argmax(-1) == batch["actions"]) & batch["mask"]).sum() / batch["mask"].sum()
    return loss, {"train/nll": loss.detach(), "train/accuracy": accuracy}


def run(config: Config, run: Run) -> dict:
    seed_everything(config.seed)
    torch.set_num_threads(1)
    segments = demo_segments(config.demo_episodes, config.size, config.n_objects, config.seed)
    policy = BabyAIPolicy(config.policy)
    if run.is_main:
        write_json_atomic(Path(run.dir) / ACTOR_FILE, {"policy": {"dim": config.policy.dim,
                                                                  "n_film": config.policy.n_film}})
    last = fit(policy, bc_loss, len(segments), lambda idx: make_batch(segments, idx), config.trainer,
               run, config.seed)
    summary = {"segments": len(segments), "steps": int(sum(len(s["actions"]) for s in segments)),
               **{k: float(v) for k, v in last.items() if k.startswith("train/")}}
    if config.eval_episodes:
        actor = PolicyActor(policy.eval(), f"policy:{config.name}")
        for key, reporter in (("none", NoReporter()), ("oracle", OracleReporter())):
            out = Path(run.dir) / f"eval_{key}.jsonl" if run.is_main else None
            result = evaluate(RulePlanner(), actor, reporter, config.eval_episodes, config.size,
                              config.n_objects, out=out)
            summary.update({f"eval/{key}/{k}": v for k, v in result.items()})
        run.log(config.trainer.steps, {k: v for k, v in summary.items() if k.startswith("eval/")})
    return summary
