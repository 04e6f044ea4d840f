"""Generative adversarial imitation learning (GAIL, Ho & Ermon 2016, arXiv:1606.03476).

The discriminator D(s, a) = sigmoid(d(s, a)) tells expert steps (label 1) from the policy's (label 0):

    L_D = -E_expert[log D(s, a)] - E_policy[log(1 - D(s, a))]

(the paper writes D for the policy's class: same objective with the labels swapped). The policy is
trained by RL on a reward derived from D; the paper's cost log D_policy gives

    r_gail(s, a)  = -log(1 - D(s, a)) = softplus(d)       (always > 0)
    r_logit(s, a) =  log D - log(1 - D) = d               (AIRL's form, arXiv:1710.11248)

The positive GAIL reward pays the agent for staying alive, which in BabyAI (episodes end on
success) works against finishing; the logit reward has no such sign bias, hence the default.
Shapes: discriminator logits [N] (flat transitions) with optional masks [N] bool.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from protege.losses.mle import masked_mean


def gail_discriminator_loss(expert_logits: Tensor, policy_logits: Tensor,
                            expert_mask: Tensor | None = None, policy_mask: Tensor | None = None):
    """Binary cross-entropy with expert = 1, policy = 0; returns (loss, metrics)."""
    expert_mask = torch.ones_like(expert_logits, dtype=torch.bool) if expert_mask is None else expert_mask
    policy_mask = torch.ones_like(policy_logits, dtype=torch.bool) if policy_mask is None else policy_mask
    expert_term = masked_mean(F.softplus(-expert_logits.float()), expert_mask)  # -log D
    policy_term = masked_mean(F.softplus(policy_logits.float()), policy_mask)  # -log(1 - D)
    loss = expert_term + policy_term
    metrics = {"gail/disc_loss": loss.detach(),
               "gail/expert_acc": masked_mean((expert_logits > 0).float(), expert_mask).detach(),
               "gail/policy_acc": masked_mean((policy_logits < 0).float(), policy_mask).detach(),
               "gail/expert_d": masked_mean(torch.sigmoid(expert_logits.float()), expert_mask).detach(),
               "gail/policy_d": masked_mean(torch.sigmoid(policy_logits.float()), policy_mask).detach()}
    return loss, metrics


def gail_reward(logits: Tensor, kind: str = "logit") -> Tensor:
    """Per-step reward from discriminator logits: "gail" = -log(1 - D), "logit" = log D - log(1 - D)."""
    if kind == "gail":
        return F.softplus(logits.float())
    if kind == "logit":
        return logits.float()
    raise ValueError(f"unknown GAIL reward kind {kind!r} (valid: gail, logit)")
