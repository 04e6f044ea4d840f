"""Maximum likelihood (behavioural cloning) with an optional entropy bonus."""

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor, per_sequence: bool = False) -> Tensor:
    """Mean of `x` [B, T] over positions where `mask` is true; 0 when the mask is empty.

    per_sequence=True averages each row first, then the rows with any counted step: every sequence
    weighs the same whatever its length, which makes the loss of a batch the exact mean of the losses
    of its parts (gradient accumulation and data parallelism then reproduce a single large batch).
    """
    mask = mask.to(x.dtype)
    if not per_sequence:
        return (x * mask).sum() / mask.sum().clamp_min(1.0)
    counts = mask.sum(-1)
    rows = (x * mask).sum(-1) / counts.clamp_min(1.0)
    return rows.sum() / (counts > 0).sum().clamp_min(1)


def mle_loss(logits: Tensor, actions: Tensor, mask: Tensor, entropy_coef: float = 0.0,
             per_sequence: bool = False):
    """Negative log-likelihood of the demonstrated actions, minus an optional entropy bonus.

        L = E_D[ -log pi(a|s) ] - beta * E_D[ H(pi(.|s)) ]

    logits [B, T, A]; actions [B, T] (long); mask [B, T] (bool, true where the step counts).
    """
    log_probs = F.log_softmax(logits.float(), dim=-1)
    nll = -log_probs.gather(-1, actions.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    with torch.set_grad_enabled(torch.is_grad_enabled() and bool(entropy_coef)):
        entropy = -(log_probs.exp() * log_probs).sum(-1)  # a metric only, unless it is in the loss
    nll_mean = masked_mean(nll, mask, per_sequence)
    entropy_mean = masked_mean(entropy, mask, per_sequence)
    loss = nll_mean - entropy_coef * entropy_mean if entropy_coef else nll_mean
    metrics = {"mle/nll": nll_mean.detach(), "mle/entropy": entropy_mean.detach()}
    return loss, metrics
