"""Experiment `babyai_offline`: BC or offline IQ-Learn from bot demonstrations, then held-out evaluation.

Recipes: `babyai_bc` (lam = 0) and `babyai_iqlearn` (lam > 0). The demonstrations folder must have
been made for the same level (`protege data demos --env LEVEL ...`); the first `n_demos` episodes
are used, so one 10k dataset serves the 1k and 10k rows of a learning curve.
"""

from dataclasses import dataclass, field

import torch

from protege.core.runs import Run, seed_everything
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
from protege.rl.fit import TrainerConfig, fit
from protege.systems.agent_imitation.offline import make_batch, sequence_loss
from protege.worlds.babyai.demos import load_demos


@dataclass
class Config:
    name: str = "babyai_bc"
    seed: int = 0
    level: str = "BabyAI-GoToRedBall-v0"
    """BabyAI level id; the demonstrations must be of this level"""
    demos: str = "data/babyai/GoToRedBall"
    """folder written by `protege data demos`"""
    n_demos: int = 0
    """use the first n episodes (0: all)"""
    lam: float = 0.0
    """IQ-Learn TD-regulariser weight; 0 is behavioural cloning"""
    gamma: float = 0.99
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval_episodes: int = 500
    """held-out episodes (seeds from 10^9) evaluated at the end; 0 skips"""
    eval_workers: int = 2


def run(config: Config, run: Run) -> dict:
    torch.set_num_threads(1)
    demos = load_demos(config.demos, level=config.level)
    if config.n_demos:
        demos = demos.subset(config.n_demos)
    seed_everything(config.seed)
    model = BabyAIPolicy(config.policy)
    last = fit(model, lambda m, b: sequence_loss(m, b, config.lam, config.gamma), len(demos),
               lambda idx: make_batch(demos, idx), config.trainer, run, config.seed)
    summary = {"demos": len(demos), "demo_steps": int(demos.lengths.sum()),
               "train/loss": last.get("train/loss"), "train/accuracy": last.get("train/accuracy")}
    if config.eval_episodes:
        from protege.systems.agent_imitation.evaluate import evaluate_policy
        result = evaluate_policy(model, config.policy, config.level, config.eval_episodes,
                                 config.eval_workers)
        run.log(config.trainer.steps, {f"eval/{k}": v for k, v in result.items()
                                       if isinstance(v, (int, float))})
        summary.update({f"eval/{k}": v for k, v in result.items()})
    run.finish(summary)
    return summary
