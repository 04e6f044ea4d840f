"""One episode schema for every domain, and one flat transition type built from it.

An episode is a sequence of T steps: T+1 observations (the last one is where the episode ended), T
actions and rewards, how it ended, the language in play, and optional per-step annotations (a
subgoal, a progress/regress mark, a success label). Text data is the special case where the
observation is the token prefix and each action is a token (see `TextExample.to_episode`).

`Transitions` are the same steps flattened over episodes, (obs, acts, next_obs, dones, ...) as
`imitation.data.types.Transitions`; `flatten` is the one way from one to the other. Learners build
their tensor layouts (padded sequences, replay batches) from these two types.
"""

import hashlib
import json
from collections.abc import Sequence
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


@dataclass(frozen=True, kw_only=True)
class Transitions:
    """N steps flattened over episodes; row i is one step (s_i, a_i, r_i, s'_i)."""
    obs: dict[str, np.ndarray]
    """[N, ...] per key: the observation before each step"""
    acts: np.ndarray
    """[N, ...] the action taken"""
    next_obs: dict[str, np.ndarray]
    """[N, ...] per key: the observation after each step"""
    rewards: np.ndarray
    """[N] float32: the reward after each step"""
    dones: np.ndarray
    """[N] bool: the step ended its episode in a terminal state (V(s') = 0); false on truncation"""
    episode: np.ndarray
    """[N] int64: index of the step's episode in the flattened sequence"""
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    """[N] per key: per-step annotations (e.g. "subgoal")"""

    def __post_init__(self):
        n = len(self.acts)
        columns = {"rewards": self.rewards, "dones": self.dones, "episode": self.episode,
                   **{f"obs[{k!r}]": v for k, v in self.obs.items()},
                   **{f"next_obs[{k!r}]": v for k, v in self.next_obs.items()},
                   **{f"infos[{k!r}]": v for k, v in self.infos.items()}}
        for name, value in columns.items():
            if len(value) != n:
                raise ValueError(f"Transitions.{name} has {len(value)} rows, acts has {n}")
        if set(self.obs) != set(self.next_obs):
            raise ValueError(f"obs keys {sorted(self.obs)} differ from next_obs keys {sorted(self.next_obs)}")
        if self.dones.dtype != np.bool_:
            raise ValueError(f"Transitions.dones must be bool, got {self.dones.dtype}")

    def __len__(self) -> int:
        return len(self.acts)

    def episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts [E], lengths [E]) of each episode's rows, in order."""
        change = np.flatnonzero(np.diff(self.episode)) + 1
        starts = np.concatenate([[0], change]).astype(np.int64) if len(self) else np.zeros(0, np.int64)
        return starts, np.diff(np.concatenate([starts, [len(self)]])).astype(np.int64)


def flatten(episodes: Sequence[Episode]) -> Transitions:
    """Concatenate episodes into `Transitions`: step t of an episode becomes the row (o_t, a_t, r_t,
    o_{t+1}), done only on the last step of a terminated episode."""
    if not episodes:
        raise ValueError("cannot flatten an empty list of episodes")
    as_dict = [e.observations if isinstance(e.observations, dict) else {"observation": e.observations}
               for e in episodes]
    keys = list(as_dict[0])
    dones = []
    for e in episodes:
        done = np.zeros(len(e), np.bool_)
        if len(e) and e.terminated:
            done[-1] = True
        dones.append(done)
    annotation_keys = [k for k in episodes[0].annotations if all(k in e.annotations for e in episodes)]
    return Transitions(
        obs={k: np.concatenate([o[k][:-1] for o in as_dict]) for k in keys},
        acts=np.concatenate([e.actions for e in episodes]),
        next_obs={k: np.concatenate([o[k][1:] for o in as_dict]) for k in keys},
        rewards=np.concatenate([np.asarray(e.rewards, np.float32) for e in episodes]),
        dones=np.concatenate(dones),
        episode=np.concatenate([np.full(len(e), i, np.int64) for i, e in enumerate(episodes)]),
        infos={k: np.concatenate([np.asarray(e.annotations[k], dtype=object) for e in episodes])
               for k in annotation_keys})


def replay_id(level: str, seed: int, actions) -> str:
    """The identity of an episode that replays from (level, seed, actions): the SHA-256 of their
    canonical JSON. The studio stores episodes under it and the test suite finds people's labels
    by it, so both must compute it here, once."""
    identity = json.dumps({"level": level, "seed": int(seed), "actions": [int(a) for a in actions]},
                          separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()
