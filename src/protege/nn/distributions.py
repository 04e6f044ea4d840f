"""The Gaussian maths of the continuous-control networks, written once.

    diag_gaussian_log_prob   log N(x; mean, diag exp(log_std)^2)            BC policy, FORM densities
    gaussian_mixture_log_prob  log sum_k pi_k N(x; mean_k, ...)              FORM's mixture density
    tanh_gaussian_sample     a = tanh(u), u ~ N(mean, std^2), and log pi(a)  SAC's actor
    bounded_log_std          a network's raw log-std mapped into [low, high]
    standardise, standard_stats, stats_buffer   fixed input standardisation from (expert) data

Shapes: the last axis is the event (summed in a log-density); all leading axes are batch axes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def diag_gaussian_log_prob(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log N(x; mean, diag sigma^2) with sigma = exp(log_std), summed over the last axis:

        log p(x) = sum_d [ -(x_d - mu_d)^2 / (2 sigma_d^2) - log sigma_d - log(2 pi) / 2 ]

    x, mean, log_std broadcastable to [..., D] -> [...].
    """
    z = (x - mean) * (-log_std).exp()
    return (-0.5 * z.pow(2) - log_std - HALF_LOG_2PI).sum(-1)


def gaussian_mixture_log_prob(logits: Tensor, mean: Tensor, log_std: Tensor, x: Tensor) -> Tensor:
    """log-density of x under a mixture of K diagonal Gaussians (a mixture density network's output,
    Bishop 1994; one of the transition models FORM's paper names, arXiv:2107.03851 Sec. 3):

        log p(x) = logsumexp_k [ log softmax(logits)_k + log N(x; mean_k, diag exp(log_std_k)^2) ]

    logits [B, K], mean and log_std [B, K, D], x [B, D] -> [B].
    """
    log_n = diag_gaussian_log_prob(x.unsqueeze(1), mean, log_std)  # [B, K]
    return torch.logsumexp(torch.log_softmax(logits, -1) + log_n, -1)


def tanh_gaussian_sample(mean: Tensor, log_std: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """A tanh-squashed Gaussian draw and its log-density (SAC, arXiv:1801.01290 Appendix C):

        u = mean + exp(log_std) * eps,  eps ~ N(0, I);   a = tanh(u)
        log pi(a) = log N(u; mean, diag exp(log_std)^2) - sum_d log(1 - tanh(u_d)^2)

    log(1 - tanh(u)^2) is written stably as 2 (log 2 - u - softplus(-2u)), and since (u - mean) / std = eps
    exactly, the Gaussian term is read from eps; the constants are summed once. mean, log_std [B, D];
    eps defaults to a fresh standard normal draw. Returns (a [B, D], log pi(a) [B]).
    """
    eps = torch.randn_like(mean) if eps is None else eps
    u = torch.addcmul(mean, log_std.exp(), eps)
    # sum_d [2(u + softplus(-2u)) - log_std - eps^2 / 2] - D (log(2 pi) / 2 + 2 log 2)
    per_dim = torch.addcmul(2 * (u + F.softplus(-2 * u)) - log_std, eps, eps, value=-0.5)
    log_prob = per_dim.sum(-1) - mean.shape[-1] * (HALF_LOG_2PI + 2 * math.log(2))
    return torch.tanh(u), log_prob


def bounded_log_std(raw: Tensor, low: float, high: float, smooth: bool = True) -> Tensor:
    """A network's raw log-std output mapped into [low, high].

    smooth=True:  low + (high - low) / 2 * (tanh(raw) + 1), the whole real line onto the interval with a
                  gradient everywhere (CleanRL/DrQ; SAC's actor and the FORM densities, where a collapsing
                  variance would run the likelihood to +inf). Evaluated as one fused add.
    smooth=False: clamp(raw, low, high), the identity inside the bounds (the BC policy's: its log-std is
                  the network's output as trained by likelihood, only cut at the extremes). The two are
                  different maps, not two roundings of one, hence the switch.
    """
    if not smooth:
        return raw.clamp(low, high)
    half_range = 0.5 * (high - low)
    return torch.add(low + half_range, torch.tanh(raw), alpha=half_range)


def standard_stats(x: np.ndarray, floor: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) over the first axis of data x [N, D], the std floored so a constant feature does not
    divide by zero."""
    return x.mean(0), np.maximum(x.std(0), floor)


def stats_buffer(value, dim: int, fill: float) -> Tensor:
    """A float32 statistic [dim] from an array, or filled with `fill` (0 for a mean, 1 for a std) if None."""
    return torch.full((dim,), fill) if value is None else torch.tensor(np.asarray(value), dtype=torch.float32)


def standardise(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(x - mean) / std with fixed statistics [D] (from `standard_stats` of the expert's data)."""
    return (x - mean) / std
