"""Adversarial imitation for continuous control: GAIL (Ho & Ermon, arXiv:1606.03476) with a
state-action discriminator D(s, a), and its state-only variant GAIfO (Torabi et al.,
arXiv:1807.06158) with D(s, s'). Both are the same functions of discriminator logits, so they are
written once over logits; which inputs the discriminator saw is the learner's business.
(Named `_continuous` to sit beside the discrete-action `gail.py` of the BabyAI learner.)
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(expert_logits: Tensor, agent_logits: Tensor):
    """Binary cross-entropy of the discriminator, expert labelled 1 and agent 0 (arXiv:1606.03476 Eq. 3,
    with D = sigmoid(logit) the probability of "expert"):

        L = -E_expert[ log D(x) ] - E_agent[ log(1 - D(x)) ]

    expert_logits [B_E], agent_logits [B_A]. Returns (loss, metrics).
    """
    loss_e = F.softplus(-expert_logits).mean()  # -log sigmoid(l)
    loss_a = F.softplus(agent_logits).mean()    # -log(1 - sigmoid(l))
    loss = loss_e + loss_a
    acc = 0.5 * ((expert_logits > 0).float().mean() + (agent_logits < 0).float().mean())
    return loss, {"gail/disc_loss": loss.detach(), "gail/disc_accuracy": acc.detach(),
                  "gail/expert_prob": torch.sigmoid(expert_logits).mean().detach(),
                  "gail/agent_prob": torch.sigmoid(agent_logits).mean().detach()}


def gradient_penalty_loss(grad_norms: Tensor, target: float = 1.0):
    """Gradient penalty on inputs interpolated between expert and agent samples (WGAN-GP,
    arXiv:1704.00028, as used for off-policy GAIL in DAC, arXiv:1809.02925):

        L_gp = E_x~interp[ (||grad_x logit(x)|| - target)^2 ]

    grad_norms [B]: per-sample norms of the logit's input gradient (computed with create_graph).
    """
    penalty = (grad_norms - target).pow(2).mean()
    return penalty, {"gail/grad_penalty": penalty.detach()}


def gail_reward(agent_logits: Tensor, kind: str = "gail"):
    """The policy's reward from discriminator logits l = log D - log(1 - D), without gradient:

        gail:  r = -log(1 - D) = softplus(l)        (arXiv:1606.03476; always positive)
        airl:  r = log D - log(1 - D) = l           (arXiv:1710.11248; unbiased in sign)

    agent_logits [B]. Returns (reward [B], metrics).
    """
    logits = agent_logits.detach()
    if kind == "gail":
        reward = F.softplus(logits)
    elif kind == "airl":
        reward = logits
    else:
        raise ValueError(f"unknown GAIL reward kind {kind!r} (gail, airl)")
    return reward, {"gail/reward": reward.mean()}
