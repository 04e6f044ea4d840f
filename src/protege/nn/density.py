"""Conditional density models of observation transitions p(o'|o), for FORM (arXiv:2107.03851).

`ConditionalGaussian` predicts the change o' - o with a diagonal Gaussian whose mean and log-std
come from an MLP of o. Inputs and outputs are standardised with statistics of the expert's data
(fixed buffers, so p_E and p_A live in the same coordinates and their log-ratio is well defined).

Guards against a diverging likelihood: the log-std is squashed smoothly into [log_std_min,
log_std_max] (a collapsing variance is the usual way a Gaussian's log-likelihood runs to +inf on
near-deterministic dimensions), and `log_prob` raises `DensityDivergence` on NaN/inf instead of
returning them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from protege.nn.distributions import (
    bounded_log_std,
    diag_gaussian_log_prob,
    gaussian_mixture_log_prob,
    standard_stats,
    standardise,
    stats_buffer,
)
from protege.nn.precision import bf16_hidden


class DensityDivergence(FloatingPointError):
    """A density model produced a non-finite log-likelihood."""


class ConditionalGaussian(nn.Module):
    """p(o'|o) = N(o' - o; mu(o), diag sigma(o)^2), computed on standardised o and o' - o."""

    def __init__(self, obs_dim: int, hidden: int = 256, log_std_min: float = -5.0, log_std_max: float = 2.0,
                 obs_mean=None, obs_std=None, delta_std=None, name: str = "density", bf16: bool = False):
        super().__init__()
        self.bf16 = bf16  # hidden layers in bfloat16, output layer fp32 (protege.nn.precision)
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * obs_dim))
        self.log_std_min, self.log_std_max, self.name = log_std_min, log_std_max, name
        self.register_buffer("obs_mean", stats_buffer(obs_mean, obs_dim, 0.0))
        self.register_buffer("obs_std", stats_buffer(obs_std, obs_dim, 1.0))
        self.register_buffer("delta_std", stats_buffer(delta_std, obs_dim, 1.0))

    @staticmethod
    def stats(obs: np.ndarray, next_obs: np.ndarray, floor: float = 1e-3) -> dict:
        """Standardisation statistics from data (call with the expert's transitions)."""
        obs_mean, obs_std = standard_stats(obs, floor)
        return {"obs_mean": obs_mean, "obs_std": obs_std, "delta_std": standard_stats(next_obs - obs, floor)[1]}

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-std [B, obs_dim] of the standardised change given o."""
        mean, log_std = bf16_hidden(self.net, self._standardised_obs(obs), self.bf16).chunk(2, -1)
        return mean, self._squash(log_std)

    def _standardised_obs(self, obs: Tensor) -> Tensor:
        return standardise(obs, self.obs_mean, self.obs_std)

    def _squash(self, log_std: Tensor) -> Tensor:
        """log-std mapped smoothly into [log_std_min, log_std_max] (keeps gradients, unlike a clip)."""
        return bounded_log_std(log_std, self.log_std_min, self.log_std_max)

    def _standardised_log_prob(self, obs: Tensor, delta: Tensor) -> Tensor:
        """log-density [B] of the standardised change `delta` given o."""
        return diag_gaussian_log_prob(delta, *self(obs))

    def log_prob(self, obs: Tensor, next_obs: Tensor) -> Tensor:
        """log p(o'|o) [B] in original coordinates (standardisation's Jacobian included)."""
        log_p = self._standardised_log_prob(obs, (next_obs - obs) / self.delta_std) - self.delta_std.log().sum()
        if not torch.isfinite(log_p).all():
            raise DensityDivergence(f"{self.name}: non-finite log-likelihood in "
                                    f"{(~torch.isfinite(log_p)).sum().item()} of {len(log_p)} transitions")
        return log_p

    def sample(self, obs: Tensor) -> Tensor:
        mean, log_std = self(obs)
        return obs + (mean + log_std.exp() * torch.randn_like(mean)) * self.delta_std


class ConditionalMixture(ConditionalGaussian):
    """p(o'|o) = sum_k pi_k(o) N(o' - o; mu_k(o), diag sigma_k(o)^2) on standardised coordinates: K Gaussian
    components (a mixture density network), for transitions with several distinct outcomes (a contact or
    not, a pole falling either way) that one Gaussian would cover with a broad, low-density blur."""

    def __init__(self, obs_dim: int, hidden: int = 256, log_std_min: float = -5.0, log_std_max: float = 2.0,
                 obs_mean=None, obs_std=None, delta_std=None, name: str = "density", bf16: bool = False,
                 components: int = 3):
        super().__init__(obs_dim, hidden, log_std_min, log_std_max, obs_mean, obs_std, delta_std, name, bf16)
        self.components = components
        self.net[-1] = nn.Linear(hidden, components * (1 + 2 * obs_dim))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture logits [B, K], means and log-stds [B, K, obs_dim] of the standardised change given o."""
        out = bf16_hidden(self.net, self._standardised_obs(obs), self.bf16)
        k, d = self.components, obs.shape[-1]
        logits, mean, log_std = out[:, :k], out[:, k:k + k * d].unflatten(1, (k, d)), out[:, k + k * d:].unflatten(1, (k, d))
        return logits, mean, self._squash(log_std)

    def _standardised_log_prob(self, obs: Tensor, delta: Tensor) -> Tensor:
        return gaussian_mixture_log_prob(*self(obs), delta)

    def sample(self, obs: Tensor) -> Tensor:
        logits, mean, log_std = self(obs)
        k = torch.distributions.Categorical(logits=logits).sample()
        pick = torch.arange(len(obs))
        return obs + (mean[pick, k] + log_std[pick, k].exp() * torch.randn_like(mean[:, 0])) * self.delta_std
