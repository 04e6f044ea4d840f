"""The language-model objectives, picked by name; each calls one pure loss from `protege.losses`."""

from dataclasses import dataclass
from typing import Literal

from protege.core.config_help import check_fields
from protege.data.tokens import TokenBatch, step_logits
from protege.losses.iqlearn import iqlearn_loss, iqlearn_online_loss
from protege.losses.mle import mle_loss


@dataclass
class ObjectiveConfig:
    method: Literal["mle", "iqlearn", "iqlearn_online"] = "mle"
    """mle: maximum likelihood; iqlearn: offline IQLearn (TD-regularised MLE, arXiv:2409.01369);
    iqlearn_online: IQLearn over batches that mix in the model's own samples"""
    lam: float = 0.0
    """IQLearn's TD-regulariser weight lambda (0 = MLE)"""
    gamma: float = 1.0
    """discount of the token-level MDP, in (0, 1]"""
    entropy_coef: float = 0.0
    """MLE's entropy bonus beta"""
    mixin: float = 0.1
    """online IQLearn: fraction of each batch replaced by the model's own samples"""

    def __post_init__(self):
        check_fields(self, lam=">=0", gamma="(0,1]", entropy_coef=">=0", mixin="[0,1)")


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
