"""Experiment `babyai_offline`: BC or offline IQ-Learn from bot demonstrations, then held-out evaluation.

Recipes: `babyai_bc` (lam = 0) and `babyai_iqlearn` (lam > 0). The demonstrations folder must have
been made for the same level (`protege data demos --env LEVEL ...`); the first `n_demos` episodes
are used, so one 10k dataset serves the 1k and 10k rows of a learning curve.
"""

from dataclasses import dataclass, field

import torch

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import Run, read_metrics
from protege.core.seeds import seed_everything
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
from protege.rl.fit import TrainerConfig, fit
from protege.systems.agent_imitation.offline import make_batch, sequence_loss
from protege.worlds.babyai.demos import load_demos
from protege.worlds.babyai.levels import check_level


@dataclass
class Config:
    name: str = "babyai_bc"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds initialisation and the data order"""
    level: str = "BabyAI-GoToRedBall-v0"
    """BabyAI level id; the demonstrations must be of this level"""
    demos: str = "data/babyai/GoToRedBall"
    """folder written by `protege data demos`"""
    n_demos: int = 0
    """use the first n episodes (0: all)"""
    lam: float = 0.0
    """IQ-Learn TD-regulariser weight; 0 is behavioural cloning"""
    gamma: float = 0.99
    """discount factor of IQ-Learn's soft values"""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """sizes of the policy"""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """the offline loop: steps, batch, learning-rate schedule, logging and checkpoint intervals"""
    eval_episodes: int = 500
    """held-out episodes (seeds from 10^9) evaluated at the end; 0 skips"""
    eval_workers: int = 2
    """evaluation processes"""

    def __post_init__(self):
        check_fields(self, demos="nonempty", n_demos=">=0", lam=">=0", gamma="[0,1]",
                     eval_episodes=">=0", eval_workers=">=1")
        check_level_field(self.level)


def check_level_field(level: str) -> None:
    """A config's `level` must be a registered BabyAI level (close matches in the message)."""
    try:
        check_level(level)
    except UserError as e:
        raise ValueError(f"level: {e}") from None


def run(config: Config, run: Run) -> dict:
    seed_everything(config.seed)
    torch.set_num_threads(1)
    demos = load_demos(config.demos, level=config.level)
    if config.n_demos:
        demos = demos.subset(config.n_demos)
    model = BabyAIPolicy(config.policy)
    fit(model, lambda m, b: sequence_loss(m, b, config.lam, config.gamma), len(demos),
        lambda idx: make_batch(demos, idx), config.trainer, run, config.seed)
    # the last logged training row, not fit's return value: a run resumed after its final
    # checkpoint trains no further step but reports the same numbers
    last = next((row for row in reversed(read_metrics(run.dir)) if "train/loss" in row), {})
    summary = {"demos": len(demos), "demo_steps": int(demos.lengths.sum()),
               "train/loss": last.get("train/loss"), "train/accuracy": last.get("train/accuracy")}
    if config.eval_episodes:
        from protege.systems.agent_imitation.evaluate import evaluate_policy
        result = evaluate_policy(model, config.policy, config.level, config.eval_episodes,
                                 config.eval_workers)
        run.log(config.trainer.steps, {f"eval/{k}": v for k, v in result.items()
                                       if isinstance(v, (int, float))})
        summary.update({f"eval/{k}": v for k, v in result.items()})
    return summary
