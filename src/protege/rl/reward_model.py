"""The reward-model protocol every online learner accepts (SAC in `rl/sac.py`, PPO in `rl/ppo.py`).

A learned reward (FORM's densities, a GAIL/AIRL discriminator, a Bradley-Terry utility) trains
alongside the policy from the learner's own batches and rewards the steps of those batches:

    loss, reward, metrics = model.loss_and_reward(batch)

`loss` is what the model minimises for itself, `reward` is one value per step of `batch` (no
gradient), `metrics` are namespaced scalars. SAC calls it on every sampled replay batch, its
parameters joining SAC's optimiser; PPO calls `train_and_reward` once per rollout. State the model
keeps beyond its `state_dict` (generators, counters, caches) goes through `training_state`, so a
killed run resumes exactly.
"""

from typing import Protocol

import torch
from torch import Tensor


class RewardModel(Protocol):
    def parameters(self): ...

    def loss_and_reward(self, batch) -> tuple[Tensor, Tensor, dict]:
        """(loss to minimise for the model itself, reward per step without gradient, metrics)."""

    def training_state(self) -> dict:
        """What its state_dict does not hold (generators, counters, caches): tensors, numbers, dicts."""

    def load_training_state(self, state: dict) -> None:
        """Restore what `training_state` returned."""


def train_and_reward(model: RewardModel, optimizer: torch.optim.Optimizer, batch,
                     updates: int) -> tuple[Tensor, dict]:
    """`updates` optimiser steps on the model's loss over one rollout, then the reward of every step
    of that rollout by the updated model; returns (reward, metrics of the last update)."""
    metrics: dict = {}
    for _ in range(updates):
        loss, _, metrics = model.loss_and_reward(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        _, reward, _ = model.loss_and_reward(batch)
    return reward, metrics
