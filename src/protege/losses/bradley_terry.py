"""Bradley-Terry preference losses: one comparison, three ways to build what is compared.

Bradley-Terry says the better of two items wins with probability sigma(s_better - s_worse), s a
learned score. Minimising the negative log-likelihood of observed comparisons is

    L = E_pairs[ -log sigma(s_better - s_worse) ] = E_pairs[ softplus(s_worse - s_better) ]

What a score is decides the method:

    inter-temporal (IBT)   s = U(x_{<=t}), a utility of an episode's prefix; a progress mark between
                           t1 < t2 says U(x_{<=t2}) > U(x_{<=t1}), a regress mark the reverse;
                           the per-step reward is r_t = U(x_{<=t+1}) - U(x_{<=t})     arXiv:2211.11602
    per-step               s = r(x_t), the score of one step; a marked-progress step beats a
                           marked-regress one (the per-step baseline of arXiv:2211.11602)
    episode preference     s = sum_t r(x_t), an episode's return; the preferred episode wins
                           (Christiano et al. 2017, arXiv:1706.03741, Eq. 1)

All three are `bradley_terry_loss` over the right pair of score vectors; `prefix_pair_scores`
gathers the IBT pair from a batch of prefix utilities, `step_rewards` turns utilities into rewards.
Shapes: B episodes padded to T+1 prefixes (prefix 0 is the empty history: the first observation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bradley_terry_loss(better: Tensor, worse: Tensor, weight: Tensor | None = None) -> tuple[Tensor, dict]:
    """Negative log-likelihood of "better beats worse" under Bradley-Terry (arXiv:1706.03741 Eq. 1,
    arXiv:2211.11602 Eq. 1 for prefixes):

        L = sum_i w_i * softplus(s_worse_i - s_better_i) / sum_i w_i

    better, worse: [N] scores of each pair's winner and loser; weight: [N] non-negative pair weights
    (default 1; a label-smoothing or confidence weight from the annotator goes here).
    Returns (loss, metrics): bt/loss, bt/accuracy (fraction of pairs ordered right; ties count half),
    bt/margin (mean s_better - s_worse).
    """
    diff = better.float() - worse.float()
    w = torch.ones_like(diff) if weight is None else weight.float()
    loss = (w * F.softplus(-diff)).sum() / w.sum().clamp_min(1e-12)
    with torch.no_grad():
        right = (diff > 0).float() + 0.5 * (diff == 0).float()
        metrics = {"bt/loss": loss.detach(),
                   "bt/accuracy": (w * right).sum() / w.sum().clamp_min(1e-12),
                   "bt/margin": (w * diff).sum() / w.sum().clamp_min(1e-12)}
    return loss, metrics


def prefix_pair_scores(utility: Tensor, episode: Tensor, earlier: Tensor, later: Tensor,
                       progress: Tensor) -> tuple[Tensor, Tensor]:
    """The (better, worse) utilities of inter-temporal pairs (arXiv:2211.11602 Sec. 3):

        progress:  U(x_{<=later}) beats U(x_{<=earlier})
        regress:   U(x_{<=earlier}) beats U(x_{<=later})

    utility [B, T+1] prefix utilities; episode, earlier, later [N] long indices (earlier < later);
    progress [N] bool (false: regress). Returns two [N] tensors for `bradley_terry_loss`.
    """
    if bool((earlier >= later).any()):
        raise ValueError("every inter-temporal pair needs earlier < later")
    u_early, u_late = utility[episode, earlier], utility[episode, later]
    better = torch.where(progress, u_late, u_early)
    worse = torch.where(progress, u_early, u_late)
    return better, worse


def step_rewards(utility: Tensor) -> Tensor:
    """r_t = U(x_{<=t+1}) - U(x_{<=t}) (arXiv:2211.11602 Eq. 2): [B, T+1] utilities -> [B, T] rewards.
    Their sum over an episode telescopes to U(end) - U(start)."""
    return utility[..., 1:] - utility[..., :-1]
