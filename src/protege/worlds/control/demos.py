"""Expert demonstrations on Control Suite tasks, stored as Minari datasets (arrow format).

    out/data/...                    Minari storage (metadata.json + arrow episodes)
    out/protege-manifest.json       sizes and SHA-256 of every file, verified on load

Metadata records the task, the flat observation keys, and the expert's and a uniform random
policy's mean returns (Minari's `ref_max_score`/`ref_min_score`), which define the expert-normalised
return (return - random) / (expert - random) used in docs/results/form.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from protege.core.errors import UserError
from protege.data.episodes import Episode, flatten
from protege.data.manifest import (
    check_output_folder,
    output_folder,
    verify_manifest,
    write_manifest,
)

KIND = "protege.control.demos"
"""The manifest kind of a Control Suite demonstrations folder (`protege data control-demos`)."""


@dataclass(frozen=True)
class ControlDemos:
    """Flattened transitions of every episode of a demonstration dataset.

    obs, next_obs: float32 [N, obs_dim]; actions: float32 [N, act_dim]; episode: int64 [N];
    task: the suite task name; expert_return / random_return: mean episode returns.
    """
    obs: np.ndarray
    next_obs: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    task: str
    expert_return: float
    random_return: float

    def __post_init__(self):
        n = len(self.obs)
        if not (len(self.next_obs) == len(self.actions) == len(self.episode) == n):
            raise ValueError(f"demo arrays disagree in length: obs {n}, next_obs {len(self.next_obs)}, "
                             f"actions {len(self.actions)}, episode {len(self.episode)}")
        if not (np.isfinite(self.obs).all() and np.isfinite(self.next_obs).all()):
            raise UserError(f"demonstrations of {self.task}: non-finite observations")


def rollout(env: gym.Env, policy, seed: int) -> dict:
    """One episode; `policy(obs) -> action`, or None for uniform random actions."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, actions, rewards = [obs], [], []
    while True:
        action = env.action_space.sample() if policy is None else policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(np.asarray(action, np.float32))
        rewards.append(reward)
        if terminated or truncated:
            return {"observations": np.stack(observations), "actions": np.stack(actions),
                    "rewards": np.asarray(rewards), "terminated": terminated, "truncated": truncated}


def record_demos(task: str, episodes: int, out: Path, seed: int = 0, action_repeat: int = 1,
                 random_episodes: int = 20, progress=None, time_limit: float | None = None) -> dict:
    """Roll out the scripted expert for `episodes` episodes and write a Minari dataset to `out`."""
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    from protege.worlds.control.experts import scripted_expert
    from protege.worlds.control.suite import make_control_env

    expert = scripted_expert(task)
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    if action_repeat < 1:
        raise UserError(f"--action-repeat must be >= 1, got {action_repeat}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    out = Path(out).resolve()  # minari joins relative paths twice
    if out.is_dir() and any(out.iterdir()):  # recorded demonstrations are never replaced
        raise UserError(f"--out {out} already exists and is not empty; choose another path")
    check_output_folder(out, KIND)  # before the rollouts: a file, or an overlap
    env = make_control_env(task, seed=seed, action_repeat=action_repeat, time_limit=time_limit)
    buffers, returns = [], []
    for i in range(episodes):
        ep = rollout(env, expert, seed + i)
        returns.append(float(ep["rewards"].sum()))
        buffers.append(EpisodeBuffer(
            id=i, seed=seed + i, observations=list(ep["observations"]), actions=list(ep["actions"]),
            rewards=list(ep["rewards"]), terminations=[False] * (len(ep["rewards"]) - 1) + [ep["terminated"]],
            truncations=[False] * (len(ep["rewards"]) - 1) + [ep["truncated"]], infos={}))
        if progress is not None:
            progress(i + 1, episodes)
    random_returns = [float(rollout(env, None, 10_000 + seed + i)["rewards"].sum())
                      for i in range(random_episodes)]
    meta = {"protege_task": task, "protege_obs_keys": ",".join(env.obs_keys),
            "protege_action_repeat": action_repeat,
            "protege_time_limit": time_limit or 0.0, "ref_max_score": float(np.mean(returns)),
            "ref_min_score": float(np.mean(random_returns)), "algorithm_name": f"scripted-{task}",
            "dataset_id": minari_dataset_id(task)}
    with output_folder(out, KIND) as tmp:
        storage = MinariStorage.new(tmp / "data", observation_space=env.observation_space,
                                    action_space=env.action_space, data_format="arrow")
        storage.update_metadata(meta)
        storage.update_episodes(buffers)
        write_manifest(tmp, {"kind": KIND, "task": task, "episodes": episodes})
    return {"task": task, "episodes": episodes, "expert_return": float(np.mean(returns)),
            "expert_return_std": float(np.std(returns)), "random_return": meta["ref_min_score"],
            "steps": int(sum(len(b.rewards) for b in buffers)), "out": str(out),
            "minari_dataset_id": meta["dataset_id"]}


def minari_dataset_id(task: str) -> str:
    """The Minari id of a task's scripted demonstrations (see `minari_io.minari_load_hint`)."""
    return f"dm_control/{task}/scripted-v0"


def load_demos(folder: Path, task: str | None = None, obs_dim: int | None = None,
               max_episodes: int | None = None, action_repeat: int | None = None) -> ControlDemos:
    """Verify the manifest and read every transition; a task or observation-size mismatch with what
    the caller will train on raises `UserError` (a dataset recorded on another task)."""
    from minari.dataset.minari_storage import MinariStorage

    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"demonstrations folder {folder} does not exist "
                        f"(record some with `protege data control-demos`)")
    verify_manifest(folder)
    try:
        storage = MinariStorage.read(folder / "data")
    except Exception as e:  # checksums matched, so a foreign or hand-made folder
        raise UserError(f"{folder / 'data'}: unreadable Minari dataset ({type(e).__name__}: "
                        f"{str(e)[:120]})") from None
    meta = storage.metadata
    recorded_task, shape = meta.get("protege_task"), storage.observation_space.shape
    if task is not None and recorded_task != task:
        raise UserError(f"{folder}: demonstrations were recorded on {recorded_task!r}, not {task!r}")
    if obs_dim is not None and shape != (obs_dim,):
        raise UserError(f"{folder}: observation spec {shape} does not match the environment's ({obs_dim},) "
                        f"(keys {meta.get('protege_obs_keys')})")
    recorded_repeat = int(meta.get("protege_action_repeat", 1))
    if action_repeat is not None and recorded_repeat != action_repeat:
        raise UserError(f"{folder}: demonstrations were recorded with action_repeat={recorded_repeat}, "
                        f"the environment uses {action_repeat}")
    ids = range(storage.total_episodes if max_episodes is None else min(max_episodes, storage.total_episodes))
    episodes = [Episode(observations=np.asarray(ep["observations"], np.float32),
                        actions=np.asarray(ep["actions"], np.float32),
                        rewards=np.asarray(ep["rewards"], np.float32),
                        terminated=bool(ep["terminations"][-1]), truncated=bool(ep["truncations"][-1]),
                        env_id=recorded_task) for ep in storage.get_episodes(list(ids))]
    steps = flatten(episodes)
    return ControlDemos(steps.obs["observation"], steps.next_obs["observation"], steps.acts, steps.episode,
                        recorded_task, float(meta["ref_max_score"]), float(meta["ref_min_score"]))


def describe(folder: Path) -> tuple[str, dict]:
    """Check a demonstrations folder record by record (`protege data validate`); a summary row."""
    demos = load_demos(folder)
    return "Control Suite demonstrations", {"task": demos.task, "transitions": len(demos.obs),
                                            "episodes": len(set(demos.episode.tolist()))}
