"""One episode schema for every domain.

An episode is a sequence of T steps: T+1 observations (the last one is where the episode ended), T
actions and rewards, how it ended, the language in play, and optional per-step annotations (a
subgoal, a progress/regress mark, a success label). Text data is the special case where the
observation is the token prefix and each action is a token (see `TextExample.to_episode`).
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Episode:
    observations: dict[str, np.ndarray] | np.ndarray
    """[T+1, ...] per key (or one array): observation before each step, and the final one."""
    actions: np.ndarray
    """[T, ...] the action taken at each step"""
    rewards: np.ndarray
    """[T] float: reward after each step"""
    terminated: bool
    """the episode reached a terminal state (V = 0 after the last step)"""
    truncated: bool = False
    """the episode was cut (time limit); the last state is not terminal"""
    instruction: str | None = None
    """the language instruction or prompt in play"""
    annotations: dict[str, list[Any]] = field(default_factory=dict)
    """per-step annotations, each a list of length T (e.g. "subgoal")"""
    env_id: str | None = None
    seed: int | None = None

    def __post_init__(self):
        steps = len(self.actions)
        if len(self.rewards) != steps:
            raise ValueError(f"rewards has length {len(self.rewards)}, actions {steps}")
        observations = self.observations if isinstance(self.observations, dict) \
            else {"observation": self.observations}
        for key, value in observations.items():
            if len(value) != steps + 1:
                raise ValueError(f"observations[{key!r}] has length {len(value)}, expected T+1 = "
                                 f"{steps + 1} for {steps} actions")
        for key, value in self.annotations.items():
            if len(value) != steps:
                raise ValueError(f"annotation {key!r} has length {len(value)}, expected {steps}")
        if self.terminated and self.truncated:
            raise ValueError("an episode cannot be both terminated and truncated")

    def __len__(self) -> int:
        return len(self.actions)
