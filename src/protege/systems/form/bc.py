"""Behavioural cloning on continuous-control demonstrations: the baseline that sees the expert's actions.

Trains through the shared offline loop `protege.rl.fit.fit` (optimiser, deterministic epoch
order, logging, checkpoints and resume); this module only supplies the policy, the batch and the loss.
"""

from __future__ import annotations

import torch

from protege.losses.bc_gaussian import gaussian_nll_loss
from protege.nn.distributions import standard_stats
from protege.nn.heads import GaussianPolicy
from protege.rl.fit import TrainerConfig, fit
from protege.worlds.control.demos import ControlDemos


def bc_loss(policy: GaussianPolicy, batch: tuple[torch.Tensor, torch.Tensor]):
    """Gaussian NLL of the expert's actions; batch = (obs [B, obs_dim], actions [B, act_dim])."""
    obs, act = batch
    mean, log_std = policy(obs)
    return gaussian_nll_loss(mean, log_std, act)


def train_bc(demos: ControlDemos, cfg, seed: int, run):
    """Fit pi(a|s) by maximum likelihood on (obs, action) pairs; returns (policy, final metrics).

    `cfg` is the experiment's BCConfig (steps, batch_size, lr, hidden, checkpoint_every, precision); Adam at a
    constant rate without gradient clipping. `fit` restores a killed run (`run.restore()`)."""
    obs, act = torch.from_numpy(demos.obs), torch.from_numpy(demos.actions)
    torch.manual_seed(seed)  # the policy's initial weights
    mean, std = standard_stats(demos.obs)
    policy = GaussianPolicy(obs.shape[1], act.shape[1], cfg.hidden, mean=mean, std=std)
    trainer = TrainerConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, schedule="constant",
                            grad_clip=0.0, log_every=500, checkpoint_every=cfg.checkpoint_every,
                            precision=cfg.precision)
    metrics = fit(policy, bc_loss, len(obs), lambda idx: (obs[idx], act[idx]), trainer, run, seed)
    keep = {k: round(float(v), 4) for k, v in metrics.items() if k.startswith("bc/")}
    return policy, keep
