"""FORM: Future Observation Reward Model (Jaegle et al., "Imitation by Predicting Observations",
arXiv:2107.03851).

Imitation from observations alone. Two generative models of observation transitions are fitted by
maximum likelihood, the expert's p_E(o'|o) offline on demonstrations and the agent's p_A(o'|o) online
on its own replay, and the policy is trained by RL on

    r(o, o') = log p_E(o'|o) - log p_A(o'|o)

whose expectation under the agent's transitions is -KL(p_A || p_E) of the next-observation
distributions. Features that the policy cannot influence (distractors) have the same conditional
density under both models, so they cancel in r; this is the paper's argument for its robustness.
"""

import torch
from torch import Tensor

from protege.nn.distributions import gaussian_mixture_log_prob


def density_nll_loss(log_prob: Tensor):
    """Maximum-likelihood loss of a transition density model (Eq. 3 of arXiv:2107.03851):

        L = -E_(o,o')~D [ log p(o'|o) ]

    log_prob [B]: log p(o'|o) of each transition in the batch under the model being trained.
    """
    nll = -log_prob.mean()
    return nll, {"form/nll": nll.detach()}


def form_reward(log_p_expert: Tensor, log_p_agent: Tensor, clip: float | None = None):
    """FORM's reward (Eq. 2 of arXiv:2107.03851), per transition:

        r = log p_E(o'|o) - log p_A(o'|o)

    log_p_expert, log_p_agent [B] (treated as constants: no gradient flows to either model).
    `clip` bounds |r| (a guard against a diverging density; the clipped fraction is reported).
    Returns (reward [B], metrics).
    """
    reward = (log_p_expert - log_p_agent).detach()
    if not torch.isfinite(reward).all():
        bad = (~torch.isfinite(reward)).sum().item()
        raise FloatingPointError(f"FORM reward: {bad} non-finite values (log p_E or log p_A diverged)")
    metrics = {"form/reward": reward.mean(), "form/log_p_expert": log_p_expert.detach().mean(),
               "form/log_p_agent": log_p_agent.detach().mean()}
    if clip is not None:
        metrics["form/reward_clipped_frac"] = (reward.abs() > clip).float().mean()
        reward = reward.clamp(-clip, clip)
    return reward, metrics


def mixture_nll_loss(logits: Tensor, mean: Tensor, log_std: Tensor, x: Tensor):
    """Maximum-likelihood loss of a Gaussian-mixture transition model, L = -E[log p(x)] with p as in
    `protege.nn.distributions.gaussian_mixture_log_prob` (shapes there). Returns (loss, metrics)."""
    return density_nll_loss(gaussian_mixture_log_prob(logits, mean, log_std, x))
