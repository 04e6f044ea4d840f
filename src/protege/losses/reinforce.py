"""REINFORCE with a baseline, the Reporter's objective in the Planner-Actor-Reporter
(arXiv:2302.00763): the Reporter's report choices are rewarded by the episode success the Planner
reaches with them."""

import torch.nn.functional as F
from torch import Tensor


def reinforce_loss(logits: Tensor, choices: Tensor, returns: Tensor, baseline: Tensor | float,
                   episode: Tensor, ent_coef: float = 0.0):
    """The score-function estimator (Williams 1992, "Simple statistical gradient-following
    algorithms"; as the Reporter's RL in arXiv:2302.00763) over N decisions of E episodes:

        L = -(1/E) sum_i (G_e(i) - b) log pi(c_i | s_i)  -  c_e (1/N) sum_i H(pi(. | s_i))

    logits [N, K] at each decision, choices [N] the sampled report indices, returns [E] each
    episode's return G_e, baseline b (a number or [E]), episode [N] the episode index e(i) of each
    decision. Every decision of an episode shares its return (the reward comes at the end).
    Returns (loss, metrics)."""
    log_probs = F.log_softmax(logits.float(), -1)
    taken = log_probs.gather(-1, choices.unsqueeze(-1)).squeeze(-1)
    advantage = (returns.float() - baseline)[episode]
    policy_loss = -(advantage.detach() * taken).sum() / returns.numel()
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    loss = policy_loss - ent_coef * entropy
    return loss, {"reinforce/policy_loss": policy_loss.detach(), "reinforce/entropy": entropy.detach()}
