"""The language-model objectives, picked by name; each calls one pure loss from `protege.losses`."""

from dataclasses import dataclass
from typing import Literal

from protege.core.config_help import check_fields
from protege.data.tokens import TokenBatch, step_logits
from protege.losses.iqlearn import iqlearn_loss, iqlearn_online_loss
from protege.losses.mle import mle_loss
from protege.nn.gpt2_plain import train_logits, trains_plain


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


def batch_logits(model, batch: TokenBatch, plain: bool = False):
    """Q(s_t, .) [B, T-1, V] wherever the loss counts. plain: the built-in GPT-2 through
    `train_logits` (real tokens only; 0 at the steps the loss does not count) when `trains_plain`
    allows it; otherwise, or for any other model, the model's own forward at every step."""
    if plain and trains_plain(model):
        return train_logits(model, batch.input_ids, batch.attention_mask, batch.loss_mask)
    return step_logits(model, batch)


def objective_loss(cfg: ObjectiveConfig, model, batch: TokenBatch, plain: bool = False):
    """(loss, metrics) of one batch; every completion weighs the same (per-sequence reduction). Each
    objective reads the logits only where `batch.loss_mask` is true (IQLearn's V(s') too: the step
    after a counted non-terminal step is counted), so `plain` changes no value (see batch_logits)."""
    actions = batch.input_ids[:, 1:]
    logits = batch_logits(model, batch, plain)
    if cfg.method == "mle":
        return mle_loss(logits, actions, batch.loss_mask, cfg.entropy_coef, per_sequence=True)
    if cfg.method == "iqlearn":
        return iqlearn_loss(logits, actions, batch.loss_mask, batch.terminal, cfg.lam, cfg.gamma,
                            per_sequence=True)
    return iqlearn_online_loss(logits, actions, batch.loss_mask, batch.terminal, batch.is_expert,
                               cfg.lam, cfg.gamma, per_sequence=True)
