"""DeepMind Control Suite tasks behind the gymnasium API, plus task-irrelevant distractor features.

    env = make_control_env("cartpole-swingup", seed=0, distractors=DistractorConfig("ou", 8))
    obs, info = env.reset(seed=0)               # obs: float32 [obs_dim (+ distractor dims)]

dm-control returns a dict of float64 arrays per step; `ControlEnv` flattens them in the suite's own
key order into one float32 vector, maps `TimeStep.last()` at the time limit to `truncated` (the suite's
tasks never terminate: discount stays 1) and a zero discount to `terminated`. No rendering is used,
so no GL backend is needed. A non-finite observation raises `NonFiniteObservation` naming the task,
step and coordinates, instead of flowing into a reward model as NaN.

`DistractorWrapper` appends dimensions with their own dynamics that never read the action
(the FORM paper's robustness setting, arXiv:2107.03851 Sec. 5): an Ornstein-Uhlenbeck process,
sinusoid oscillators with random frequencies, or balls bouncing in a box (an unrelated moving body).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

# No rendering is used: without this, importing dm-control probes GLFW and warns on a machine without a
# display (a user's own MUJOCO_GL setting wins)
os.environ.setdefault("MUJOCO_GL", "disabled")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from dm_control.rl.control import PhysicsError  # noqa: E402

from protege.core.errors import UserError, unknown_name  # noqa: E402
from protege.core.seeds import stream_seed  # noqa: E402


class NonFiniteObservation(RuntimeError):
    """The simulator produced NaN/inf in an observation (diverged physics or a broken wrapper)."""


def task_names() -> list[str]:
    from dm_control import suite
    return [f"{d}-{t}" for d, t in suite.ALL_TASKS]


def parse_task(name: str) -> tuple[str, str]:
    valid = task_names()
    if name not in valid:
        raise unknown_name("control task", name, valid)
    domain, task = name.split("-", 1)
    return domain, task


def check_finite(obs: np.ndarray, where: str) -> np.ndarray:
    if not np.isfinite(obs).all():
        bad = np.flatnonzero(~np.isfinite(obs))[:8].tolist()
        raise NonFiniteObservation(f"{where}: non-finite observation at coordinates {bad} "
                                   f"(values {obs.reshape(-1)[bad].tolist()})")
    return obs


class ControlEnv(gym.Env):
    """One dm-control suite task as a gymnasium Env with a flat float32 observation and Box actions."""

    metadata = {"render_modes": []}

    def __init__(self, task: str, seed: int | None = None, action_repeat: int = 1,
                 time_limit: float | None = None):
        from dm_control import suite
        domain, name = parse_task(task)
        if action_repeat < 1:
            raise UserError(f"action_repeat must be >= 1, got {action_repeat}")
        self.task_name, self.action_repeat = task, action_repeat
        task_kwargs = {"random": seed} | ({"time_limit": time_limit} if time_limit else {})
        self._env = suite.load(domain, name, task_kwargs=task_kwargs)
        self._keys = list(self._env.observation_spec())
        dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        spec = self._env.action_spec()
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Box(spec.minimum.astype(np.float32),
                                           spec.maximum.astype(np.float32), dtype=np.float32)
        self._steps = 0

    @property
    def physics(self):
        return self._env.physics

    @property
    def obs_keys(self) -> list[str]:
        return self._keys

    def _flat(self, observation: dict) -> np.ndarray:
        obs = np.concatenate([np.asarray(observation[k], np.float32).reshape(-1) for k in self._keys])
        return check_finite(obs, f"{self.task_name} step {self._steps}")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:  # reseed the suite's own RandomState, which draws the initial state
            self._env.task._random = np.random.RandomState(seed)
        self._steps = 0
        return self._flat(self._env.reset().observation), {}

    def rng_state(self) -> dict:
        """The random state that decides the next episodes: the suite task's RandomState (initial
        states, reacher's target) and gymnasium's `np_random`, as tensors and numbers. Taken between
        episodes (see `protege.rl.online`): the simulator's mid-episode state is not part of it."""
        task = self._env.task._random.get_state(legacy=False)  # MT19937: key [624] uint32 and a position
        state = {"task": {**task, "state": {"key": torch.from_numpy(task["state"]["key"].astype(np.int64)),
                                            "pos": task["state"]["pos"]}}}
        if self._np_random is not None:
            state["np_random"] = self._np_random.bit_generator.state
        return state

    def set_rng_state(self, state: dict) -> None:
        task = state["task"]
        random = np.random.RandomState()
        random.set_state({**task, "state": {"key": task["state"]["key"].numpy().astype(np.uint32),
                                            "pos": task["state"]["pos"]}})
        self._env.task._random = random
        if "np_random" in state:
            self._np_random = np.random.default_rng()
            self._np_random.bit_generator.state = state["np_random"]

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64), self.action_space.low, self.action_space.high)
        reward, terminated, truncated = 0.0, False, False
        for _ in range(self.action_repeat):
            try:
                ts = self._env.step(action)
            except PhysicsError as e:  # dm-control's own check of a diverged simulator
                raise NonFiniteObservation(f"{self.task_name} step {self._steps}: {e}") from None
            reward += ts.reward or 0.0
            if ts.last():
                terminated, truncated = ts.discount == 0.0, ts.discount != 0.0
                break
        self._steps += 1
        return self._flat(ts.observation), float(reward), bool(terminated), bool(truncated), {}


@dataclass(frozen=True)
class DistractorConfig:
    """Task-irrelevant features appended to each observation.

    kind: "ou" (Ornstein-Uhlenbeck noise, 1 dim per unit), "sine" (oscillator with a random frequency
      and phase, 1 dim per unit) or "body" (a ball bouncing in the unit box: x, y, vx, vy per unit).
    count: number of units (0 disables the wrapper).
    """
    kind: Literal["ou", "sine", "body"] = "ou"
    count: int = 0
    scale: float = 1.0

    def __post_init__(self):
        if self.kind not in ("ou", "sine", "body"):
            raise UserError(f"distractor kind must be one of ou, sine, body; got {self.kind!r}")
        if self.count < 0:
            raise UserError(f"distractor count must be >= 0, got {self.count}")

    @property
    def dims(self) -> int:
        return self.count * (4 if self.kind == "body" else 1)


class DistractorProcess:
    """The distractor dynamics alone: a state advanced by its own RNG and clock, never by actions."""

    DT = 0.05  # time step of the distractor dynamics (independent of the simulator's)

    def __init__(self, cfg: DistractorConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        n = cfg.count
        self.t = 0
        if cfg.kind == "ou":
            self.state = rng.normal(0.0, 1.0, n)
        elif cfg.kind == "sine":
            self.freq, self.phase = rng.uniform(0.5, 3.0, n), rng.uniform(0, 2 * np.pi, n)
            self.state = np.sin(self.phase)
        else:
            pos, vel = rng.uniform(-1, 1, (n, 2)), rng.normal(0, 1.0, (n, 2))
            self.state = np.concatenate([pos, vel], 1).reshape(-1)

    def advance(self) -> np.ndarray:
        dt, rng, kind = self.DT, self.rng, self.cfg.kind
        self.t += 1
        if kind == "ou":  # dx = -theta x dt + sigma dW with theta = 1, sigma = sqrt 2: stationary std 1
            self.state = self.state - self.state * dt + np.sqrt(2 * dt) * rng.normal(size=self.state.shape)
        elif kind == "sine":
            self.state = np.sin(2 * np.pi * self.freq * self.t * dt + self.phase)
        else:  # ballistic motion with elastic bounces off the walls of [-1, 1]^2
            s = self.state.reshape(-1, 4)
            pos, vel = s[:, :2] + s[:, 2:] * dt, s[:, 2:].copy()
            vel[np.abs(pos) > 1] *= -1
            self.state = np.concatenate([np.clip(pos, -1, 1), vel], 1).reshape(-1)
        return self.features()

    def features(self) -> np.ndarray:
        return (self.cfg.scale * self.state).astype(np.float32)


def distractor_features(cfg: DistractorConfig, length: int, rng: np.random.Generator) -> np.ndarray:
    """[length, cfg.dims] features of one episode, as `DistractorWrapper` would append them."""
    proc = DistractorProcess(cfg, rng)
    rows = [proc.features()] + [proc.advance() for _ in range(length - 1)]
    return np.stack(rows) if rows else np.zeros((0, cfg.dims), np.float32)


class DistractorWrapper(gym.Wrapper):
    """Append `cfg.dims` features whose dynamics depend only on their own seeded RNG and time."""

    def __init__(self, env: gym.Env, cfg: DistractorConfig, seed: int | None = None):
        super().__init__(env)
        self.cfg = cfg
        low = np.concatenate([env.observation_space.low, np.full(cfg.dims, -np.inf, np.float32)])
        self.observation_space = gym.spaces.Box(low, -low, dtype=np.float32)
        self._rng = np.random.default_rng(None if seed is None else stream_seed(seed, "distractors"))
        self._proc = DistractorProcess(cfg, self._rng)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(stream_seed(seed, "distractors"))
        obs, info = self.env.reset(seed=seed, options=options)
        self._proc = DistractorProcess(self.cfg, self._rng)
        return np.concatenate([obs, self._proc.features()]), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return np.concatenate([obs, self._proc.advance()]), reward, terminated, truncated, info

    def rng_state(self) -> dict:
        """The wrapped environment's `rng_state` and the distractors' generator (their process is redrawn
        from it at every reset)."""
        return {"env": self.env.rng_state(), "distractors": self._rng.bit_generator.state}

    def set_rng_state(self, state: dict) -> None:
        self.env.set_rng_state(state["env"])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["distractors"]


def make_control_env(task: str, seed: int | None = None, distractors: DistractorConfig | None = None,
                     action_repeat: int = 1, time_limit: float | None = None) -> gym.Env:
    """`time_limit` in simulated seconds (None: the suite's default, 1000 control steps)."""
    env: gym.Env = ControlEnv(task, seed=seed, action_repeat=action_repeat, time_limit=time_limit)
    if distractors is not None and distractors.count > 0:
        env = DistractorWrapper(env, distractors, seed=seed)
    return env
