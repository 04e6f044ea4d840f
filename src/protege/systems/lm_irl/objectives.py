"""The language-model objectives, picked by name; each calls one pure loss from `protege.losses`."""

from dataclasses import dataclass
from typing import Literal

from protege.data.tokens import TokenBatch, step_logits
from protege.losses.iqlearn import (
    check_hyperparameters,
    iqlearn_loss,
    iqlearn_online_loss,
)
from protege.losses.mle import mle_loss


@dataclass
class ObjectiveConfig:
    method: Literal["mle", "iqlearn", "iqlearn_online"] = "mle"
    lam: float = 0.0
    """IQLearn's TD-regulariser weight lambda (0 = MLE)"""
    gamma: float = 1.0
    """discount of the token-level MDP"""
    entropy_coef: float = 0.0
    """MLE's entropy bonus beta"""
    mixin: float = 0.1
    """online IQLearn: fraction of each batch replaced by the model's own samples"""

    def __post_init__(self):
        check_hyperparameters(self.lam, self.gamma)
        if not 0.0 <= self.mixin < 1.0:
            raise ValueError(f"mixin must be in [0, 1), got {self.mixin}")


def objective_loss(cfg: ObjectiveConfig, model, batch: TokenBatch):
    """(loss, metrics) of one batch; every completion weighs the same (per-sequence reduction)."""
    actions = batch.input_ids[:, 1:]
    logits = step_logits(model, batch)
    if cfg.method == "mle":
        return mle_loss(logits, actions, batch.loss_mask, cfg.entropy_coef, per_sequence=True)
    if cfg.method == "iqlearn":
        return iqlearn_loss(logits, actions, batch.loss_mask, batch.terminal, cfg.lam, cfg.gamma,
                            per_sequence=True)
    return iqlearn_online_loss(logits, actions, batch.loss_mask, batch.terminal, batch.is_expert,
                               cfg.lam, cfg.gamma, per_sequence=True)
