"""BabyAI levels (Farama minigrid) with the instruction as text and the symbolic egocentric view.

Observation (one step), declared as a gymnasium `Dict` that serialises (Minari stores it):
    image      uint8 [7, 7, 3]   (object index, colour index, state index) of the 7x7 cells in view
    direction  int in [0, 4)     the agent's heading
    mission    str               the instruction, e.g. "go to the red ball"
minigrid declares `mission` with its `MissionSpace`, which holds a Python function and cannot be
serialised (Minari, `gym.spaces.to_jsonable`); `TextMission` re-declares it as a gymnasium `Text`.
Actions: Discrete(7) (left, right, forward, pickup, drop, toggle, done). Reward: 1 - 0.9 t/T on
success, else 0, as in minigrid; `episode_success` is the one success rule every learner and
evaluator uses.

Episode seeds partition by use: demonstrations from 0, held-out evaluation from `EVAL_SEED_START`,
online training episodes (GAIL's PPO) from `TRAIN_SEED_START`, so no training or demonstration
layout is ever an evaluation layout.
"""

import string

import gymnasium as gym
import numpy as np
from minigrid.core.actions import Actions

from protege.core.errors import UserError, unknown_name

# Instructions use lowercase words, spaces and commas; the charset leaves room for other levels.
MISSION_CHARSET = string.ascii_letters + string.digits + " ,.'-"
MISSION_MAX_LENGTH = 256
VIEW_SHAPE = (7, 7, 3)
N_ACTIONS = len(Actions)  # MiniGrid's action set


def observation_space() -> gym.spaces.Dict:
    return gym.spaces.Dict({
        "image": gym.spaces.Box(0, 255, VIEW_SHAPE, np.uint8),
        "direction": gym.spaces.Discrete(4),
        "mission": gym.spaces.Text(MISSION_MAX_LENGTH, min_length=1, charset=MISSION_CHARSET),
    })


def observation_spec() -> dict:
    """A JSON description of the observation recorded with every dataset (checked on load)."""
    return {"image": {"shape": list(VIEW_SHAPE), "dtype": "uint8", "channels": "object,colour,state"},
            "direction": {"n": 4}, "mission": "text", "actions": N_ACTIONS}


class TextMission(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Keep the observation unchanged but declare `mission` as a serialisable `Text` space.
    Recording its (empty) constructor arguments lets the env spec stored with a dataset rebuild the
    wrapper: `minari.MinariDataset.recover_environment()` works with plain Minari."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = observation_space()

    def observation(self, obs):
        return {"image": obs["image"], "direction": int(obs["direction"]), "mission": obs["mission"]}


def babyai_levels() -> list[str]:
    import minigrid  # noqa: F401  (registers the BabyAI-* ids with gymnasium)
    return sorted(k for k in gym.registry if k.startswith("BabyAI-"))


def check_level(level: str) -> str:
    levels = babyai_levels()
    if level not in levels:
        raise unknown_name("BabyAI level", level, levels)
    return level


def make_env(level: str, max_steps: int | None = None) -> gym.Env:
    """A BabyAI level with a text mission; `max_steps` overrides the level's episode limit."""
    check_level(level)
    kwargs = {"max_steps": max_steps} if max_steps else {}
    try:
        env = gym.make(level, **kwargs)
    except TypeError as e:
        raise UserError(f"BabyAI level {level}: cannot be made with {kwargs} ({e})") from None
    return TextMission(env)


def episode_success(terminated: bool, reward: float) -> bool:
    """BabyAI's success rule, for the step that ends an episode: it terminated (was not cut by the
    time limit) with a positive reward. minigrid pays 1 - 0.9 t/T > 0 for completing the
    instruction and ends a failed one (its verifier's "failure", e.g. a wrong object picked up
    in strict mode) with reward 0."""
    return bool(terminated and reward > 0)


def episode_ending(terminated: bool, truncated: bool) -> tuple[bool, bool]:
    """(terminated, truncated) of an episode's last step as an Episode records them: minigrid
    reports both flags when the mission ends on the time limit's last step; the episode reached a
    terminal state, so it is terminated, not cut off (an Episode is never both)."""
    return bool(terminated), bool(truncated) and not bool(terminated)


def seed_range(start: int, count: int) -> range:
    """Seeds for episodes. Demonstrations use seeds from 0, evaluation from EVAL_SEED_START,
    so a policy is never evaluated on a layout it saw in its demonstrations."""
    return range(start, start + count)


EVAL_SEED_START = 10**9
"""first held-out evaluation seed (the evaluation protocol: never change it)"""
TRAIN_SEED_START = 2**32
"""online training episodes use seeds TRAIN_SEED_START + stream_seed(run seed, ...) + i: above
every demonstration (from 0) and evaluation (from 10^9) seed; gymnasium takes seeds of any size"""
