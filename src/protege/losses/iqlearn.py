"""Inverse soft-Q learning (IQ-Learn, arXiv:2106.12142) as TD-regularised MLE (arXiv:2409.01369).

One objective for language models and for discrete-action agents. The logits are soft Q-values:

    Q(s, .) = logits,   V(s) = logsumexp_a Q(s, a),   log pi(a|s) = Q(s, a) - V(s),   V(terminal) = 0.

With the chi-squared regulariser, IQ-Learn's objective over expert data telescopes
(E_D[V(s) - gamma V(s')] replaces the initial-state term) into

    L = E_D[ -log pi(a|s) + lambda * (Q(s, a) - gamma * V(s'))^2 ]            (offline)

so lambda = 0 is exactly MLE. Online, the value and regulariser terms run over expert and policy
states (rows with `is_expert` false), while the reward term stays on expert data:

    L = -E_D[Q(s,a) - gamma V(s')] + E_mix[V(s) - gamma V(s')] + lambda E_mix[(Q(s,a) - gamma V(s'))^2]

which equals the offline loss when every row is expert. The implicit reward is
r(s, a) = Q(s, a) - gamma * V(s').

Shapes: logits [B, T, A]; actions [B, T] long; mask [B, T] bool (true where a step counts: prompt
and padding excluded); terminal [B, T] bool (true where s_{t+1} is terminal, so V(s_{t+1}) = 0).
The state after step t is step t+1 of the same row; the last counted step of a row must be terminal.
"""

import torch
from torch import Tensor

from protege.losses.mle import masked_mean


def soft_values(logits: Tensor) -> Tensor:
    """V(s) = logsumexp_a Q(s, a), shape [B, T]."""
    return torch.logsumexp(logits.float(), dim=-1)


def next_values(values: Tensor, terminal: Tensor) -> Tensor:
    """V(s_{t+1}) for every step t: the next step's value, or 0 where s_{t+1} is terminal."""
    shifted = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    return torch.where(terminal, torch.zeros_like(shifted), shifted)


def _q_v(logits: Tensor, actions: Tensor, terminal: Tensor, gamma: float):
    values = soft_values(logits)
    q = logits.float().gather(-1, actions.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return q, values, next_values(values, terminal)


def check_hyperparameters(lam: float, gamma: float) -> None:
    if lam < 0:
        raise ValueError(f"iqlearn lambda must be >= 0, got {lam}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"iqlearn gamma must be in [0, 1], got {gamma}")


def iqlearn_loss(logits: Tensor, actions: Tensor, mask: Tensor, terminal: Tensor,
                 lam: float, gamma: float = 1.0, per_sequence: bool = False):
    """Offline IQ-Learn: E_D[-log pi(a|s) + lambda (Q(s,a) - gamma V(s'))^2]; returns (loss, metrics)."""
    check_hyperparameters(lam, gamma)
    q, values, values_next = _q_v(logits, actions, terminal, gamma)
    td = q - gamma * values_next  # the implicit reward r(s, a)
    nll = masked_mean(values - q, mask, per_sequence)
    td_penalty = masked_mean(td.pow(2), mask, per_sequence)
    loss = nll + lam * td_penalty if lam else nll
    metrics = {"iqlearn/nll": nll.detach(), "iqlearn/td_penalty": td_penalty.detach(),
               "iqlearn/value": masked_mean(values, mask, per_sequence).detach(),
               "iqlearn/reward": masked_mean(td, mask, per_sequence).detach()}
    return loss, metrics


def iqlearn_online_loss(logits: Tensor, actions: Tensor, mask: Tensor, terminal: Tensor,
                        is_expert: Tensor, lam: float, gamma: float = 1.0,
                        per_sequence: bool = False):
    """Online IQ-Learn over a batch mixing expert rows and the policy's own rows ([B] bool is_expert)."""
    check_hyperparameters(lam, gamma)
    q, values, values_next = _q_v(logits, actions, terminal, gamma)
    td = q - gamma * values_next
    expert_mask = mask & is_expert.unsqueeze(1)
    reward_term = masked_mean(td, expert_mask, per_sequence)
    value_term = masked_mean(values - gamma * values_next, mask, per_sequence)
    td_penalty = masked_mean(td.pow(2), mask, per_sequence)
    loss = -reward_term + value_term + lam * td_penalty
    metrics = {"iqlearn/expert_reward": reward_term.detach(), "iqlearn/value_gap": value_term.detach(),
               "iqlearn/td_penalty": td_penalty.detach(),
               "iqlearn/nll": masked_mean(values - q, expert_mask, per_sequence).detach()}
    return loss, metrics


def extracted_reward(logits: Tensor, actions: Tensor, terminal: Tensor, gamma: float = 1.0) -> Tensor:
    """Per-step implicit reward r_t = Q(s_t, a_t) - gamma V(s_{t+1}), shape [B, T]."""
    q, _, values_next = _q_v(logits, actions, terminal, gamma)
    return q - gamma * values_next
