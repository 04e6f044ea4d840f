"""Small networks for continuous-control imitation: a discriminator for GAIL/GAIfO and a Gaussian
policy for behavioural cloning. Inputs are standardised with fixed statistics of the expert data."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from protege.nn.distributions import bounded_log_std, standardise, stats_buffer
from protege.nn.precision import bf16_hidden


class Discriminator(nn.Module):
    """logit(x) = log D(x) - log(1 - D(x)) for x = (s, a) (GAIL) or (s, s') (GAIfO): x [B, in] -> [B]."""

    def __init__(self, in_dim: int, hidden: int = 128, mean=None, std=None, bf16: bool = False):
        super().__init__()
        self.bf16 = bf16  # hidden layers in bfloat16, output layer fp32 (protege.nn.precision)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 1))
        self.register_buffer("mean", stats_buffer(mean, in_dim, 0.0))
        self.register_buffer("std", stats_buffer(std, in_dim, 1.0))

    def standardise(self, x: Tensor) -> Tensor:
        return standardise(x, self.mean, self.std)

    def logits_of_standardised(self, z: Tensor) -> Tensor:
        return bf16_hidden(self.net, z, self.bf16).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_of_standardised(self.standardise(x))


class GaussianPolicy(nn.Module):
    """pi(a|s) = N(mu(s), diag sigma(s)^2); acts with the mean clipped to [-1, 1]."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, mean=None, std=None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * act_dim))
        self.register_buffer("mean", stats_buffer(mean, obs_dim, 0.0))
        self.register_buffer("std", stats_buffer(std, obs_dim, 1.0))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-std [B, act_dim]; the log-std is the network's own, clipped at the extremes."""
        mean, log_std = self.net(standardise(obs, self.mean, self.std)).chunk(2, -1)
        return mean, bounded_log_std(log_std, self.LOG_STD_MIN, self.LOG_STD_MAX, smooth=False)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        mean, _ = self(torch.from_numpy(obs).unsqueeze(0))
        return mean[0].clamp(-1, 1).numpy()
