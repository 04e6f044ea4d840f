"""Adversarial imitation: one discriminator loss, one gradient penalty, one family of rewards.

A discriminator outputs a logit l(x) = log D(x) - log(1 - D(x)), D the probability that x comes from
the expert. Which x it sees is the learner's business and changes nothing here:

    GAIL   x = (s, a), discrete actions (BabyAI) or continuous ones     arXiv:1606.03476
    GAIfO  x = (s, s'), state-only                                      arXiv:1807.06158

The discriminator minimises the binary cross-entropy with expert = 1, agent = 0 (the GAIL paper,
Eq. 3, writes D for the policy's class: the same objective with the labels swapped), optionally plus
a gradient penalty at interpolates (WGAN-GP arXiv:1704.00028; off-policy GAIL, DAC arXiv:1809.02925).
The agent is trained by RL on a reward that is a function of the logit (`REWARDS`):

    gail:  r = -log(1 - D) = softplus(l)   arXiv:1606.03476  always > 0 (a survival bonus)
    airl:  r = log D - log(1 - D) = l      arXiv:1710.11248  no sign bias

The positive GAIL reward pays the agent for staying alive, which works against finishing where an
episode ends on success (BabyAI); the AIRL reward has no such bias. As in Acme's `agents/jax/ail`,
the loss, the penalty and the rewards are separate pure functions over logits.
Shapes: logits [N] (flat transitions); optional masks [N] bool, true where the step counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from protege.losses.mle import masked_mean

RewardKind = Literal["gail", "airl"]


def _mean(x: Tensor, mask: Tensor | None) -> Tensor:
    # x.mean() and masked_mean(x, all-true) are the same float32 number (sum / N in both)
    return x.mean() if mask is None else masked_mean(x, mask)


def discriminator_loss(expert_logits: Tensor, agent_logits: Tensor, expert_mask: Tensor | None = None,
                       agent_mask: Tensor | None = None):
    """Binary cross-entropy of the discriminator, expert labelled 1 and agent 0 (arXiv:1606.03476 Eq. 3):

        L_D = -E_expert[ log D(x) ] - E_agent[ log(1 - D(x)) ]
            =  E_expert[ softplus(-l) ] + E_agent[ softplus(l) ]

    expert_logits [N_E], agent_logits [N_A]; masks (same shapes, bool) select the counted steps.
    Returns (loss, metrics): adversarial/disc_loss, adversarial/expert_acc and agent_acc (fraction of
    each side classified correctly), adversarial/accuracy (their average), adversarial/expert_d and
    agent_d (mean D on each side).
    """
    e, a = expert_logits.float(), agent_logits.float()
    loss = _mean(F.softplus(-e), expert_mask) + _mean(F.softplus(a), agent_mask)
    with torch.no_grad():
        expert_acc, agent_acc = _mean((e > 0).float(), expert_mask), _mean((a < 0).float(), agent_mask)
        metrics = {"adversarial/disc_loss": loss.detach(),
                   "adversarial/expert_acc": expert_acc,
                   "adversarial/agent_acc": agent_acc,
                   "adversarial/accuracy": 0.5 * (expert_acc + agent_acc),
                   "adversarial/expert_d": _mean(torch.sigmoid(e), expert_mask),
                   "adversarial/agent_d": _mean(torch.sigmoid(a), agent_mask)}
    return loss, metrics


def interpolate(expert_x: Tensor, agent_x: Tensor, eps: Tensor) -> Tensor:
    """Points on the segments between paired samples: eps * x_E + (1 - eps) * x_A; eps [N, 1] in [0, 1]."""
    return eps * expert_x + (1 - eps) * agent_x


def gradient_penalty(logit_fn: Callable[[Tensor], Tensor], x: Tensor, target: float = 1.0):
    """Gradient penalty at interpolates x (WGAN-GP arXiv:1704.00028 Eq. 3; DAC arXiv:1809.02925 Eq. 7):

        L_gp = E_x~interp[ (||grad_x l(x)||_2 - target)^2 ]

    x [N, d] (see `interpolate`); logit_fn maps [N, d] -> [N]. The input gradient keeps its graph, so
    the penalty trains the discriminator (a double backward). Returns (penalty, metrics); add it to
    the discriminator loss as `loss + coef * penalty`.
    """
    x = x.detach().requires_grad_(True)
    grad, = torch.autograd.grad(logit_fn(x).sum(), x, create_graph=True)
    penalty = (grad.norm(dim=1) - target).pow(2).mean()
    return penalty, {"adversarial/grad_penalty": penalty.detach()}


def gail_reward(logits: Tensor) -> Tensor:
    """r = -log(1 - D) = softplus(l) (arXiv:1606.03476): logits [N] -> reward [N], always positive."""
    return F.softplus(logits.detach().float())


def airl_reward(logits: Tensor) -> Tensor:
    """r = log D - log(1 - D) = l (arXiv:1710.11248): logits [N] -> reward [N], unbiased in sign."""
    return logits.detach().float()


REWARDS: dict[str, Callable[[Tensor], Tensor]] = {"gail": gail_reward, "airl": airl_reward}


def adversarial_reward(logits: Tensor, kind: RewardKind) -> Tensor:
    """The agent's reward from discriminator logits [N] -> [N], without gradient; kind in `REWARDS`."""
    if kind not in REWARDS:
        raise ValueError(f"unknown adversarial reward {kind!r} (valid: {', '.join(REWARDS)})")
    return REWARDS[kind](logits)
