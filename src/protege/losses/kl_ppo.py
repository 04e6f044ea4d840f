"""PPO's clipped objective with a KL penalty towards a fixed prior policy.

Used to improve the subgoal chooser of a hierarchical agent by RL while keeping it close to the
chooser cloned from human(-like) subgoal language, as arXiv:2309.11564 keeps its high level near the
language prior. Decisions are categorical (one of K phrases), so the KL is exact.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from protege.losses.mle import masked_mean


def kl_regularised_ppo_loss(logits: Tensor, prior_logits: Tensor, actions: Tensor, old_log_probs: Tensor,
                            advantages: Tensor, values: Tensor, returns: Tensor, mask: Tensor,
                            clip: float = 0.2, kl_coef: float = 0.1, vf_coef: float = 0.5,
                            ent_coef: float = 0.0):
    """PPO (arXiv:1707.06347, eq. 7) plus a value loss, an entropy bonus and a KL to a prior:

        rho = pi(a|s) / pi_old(a|s)
        L = -E[ min(rho A, clip(rho, 1 - eps, 1 + eps) A) ] + c_v E[(V(s) - G)^2]
            - c_e E[ H(pi(.|s)) ] + beta E[ KL(pi(.|s) || pi_prior(.|s)) ]

    logits, prior_logits [..., K]; actions, old_log_probs, advantages, values, returns, mask [...]
    (mask: true where a decision was taken). Returns (loss, metrics)."""
    log_probs = F.log_softmax(logits.float(), -1)
    prior = F.log_softmax(prior_logits.float(), -1)
    taken = log_probs.gather(-1, actions.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    ratio = (taken - old_log_probs).exp()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    probs = log_probs.exp()
    kl = (probs * (log_probs - prior)).sum(-1)
    entropy = -(probs * log_probs).sum(-1)
    policy_loss = -masked_mean(surrogate, mask)
    value_loss = masked_mean((values - returns) ** 2, mask)
    kl_mean, entropy_mean = masked_mean(kl, mask), masked_mean(entropy, mask)
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_mean + kl_coef * kl_mean
    clipped = ((ratio - 1).abs() > clip).float()
    return loss, {"ppo/policy_loss": policy_loss.detach(), "ppo/value_loss": value_loss.detach(),
                  "ppo/kl_to_prior": kl_mean.detach(), "ppo/entropy": entropy_mean.detach(),
                  "ppo/clip_fraction": masked_mean(clipped, mask).detach()}
