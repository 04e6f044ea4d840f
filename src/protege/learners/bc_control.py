"""Behavioural cloning on continuous-control demonstrations: the baseline that sees the expert's actions.

A small own loop (Adam, uniform minibatches) rather than `protege.learners.loop.fit`, which had not
landed when this was written; it should move onto `fit` once it does.
"""

from __future__ import annotations

import numpy as np
import torch

from protege.data.control_demos import ControlDemos
from protege.losses.bc_gaussian import gaussian_nll_loss
from protege.models.control_nets import GaussianPolicy


def train_bc(demos: ControlDemos, cfg, seed: int, run=None, log_every: int = 500):
    """Fit pi(a|s) by maximum likelihood on (obs, action) pairs; returns (policy, final metrics)."""
    gen = torch.Generator().manual_seed(seed)
    obs, act = torch.from_numpy(demos.obs), torch.from_numpy(demos.actions)
    policy = GaussianPolicy(obs.shape[1], act.shape[1], cfg.hidden, mean=demos.obs.mean(0),
                            std=np.maximum(demos.obs.std(0), 1e-3))
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    metrics = {}
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, len(obs), (cfg.batch_size,), generator=gen)
        mean, log_std = policy(obs[idx])
        loss, metrics = gaussian_nll_loss(mean, log_std, act[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if run is not None and step % log_every == 0:
            run.log(step, {k: float(v) for k, v in metrics.items()})
    return policy, {k: round(float(v), 4) for k, v in metrics.items()}
