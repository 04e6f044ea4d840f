"""A BabyAI episode rebuilt from (level, seed, actions): its observations, rewards and how it
ended, and optionally the frames of minigrid's own renderer (the full grid seen from above).

BabyAI is deterministic given the reset seed, so an episode stored as (level, seed, actions) is
complete: the studio keeps episodes in that form, renders frames from it and rebuilds `Episode`s
with observations on export. A replay that ends before its actions run out (the episode terminated
early) is an error: the stored actions do not belong to that layout.
"""

import contextlib
import io
from dataclasses import dataclass

import numpy as np

from protege.data.episodes import Episode
from protege.worlds.babyai.levels import episode_ending, make_env

TILE_SIZE = 32
"""pixels per grid cell of rendered frames (minigrid's default)"""


@dataclass(frozen=True)
class Replay:
    """T steps: images [T+1, 7, 7, 3] uint8, directions [T+1], rewards [T]; frames [T+1] RGB
    arrays (empty unless rendered)."""
    mission: str
    images: np.ndarray
    directions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    frames: list


def replay(level: str, seed: int, actions, render: bool = False, tile_size: int = TILE_SIZE,
           env=None) -> Replay:
    """Reset `level` with `seed` and take `actions`; `env` reuses an environment of that level."""
    env = env or make_env(level)
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints rejected layouts
        obs, _ = env.reset(seed=int(seed))
    images, directions, rewards, frames = [obs["image"]], [obs["direction"]], [], []
    if render:
        frames.append(render_frame(env, tile_size))
    terminated = truncated = False
    for t, action in enumerate(actions):
        if terminated or truncated:
            raise ValueError(f"{level} seed {seed}: the episode ended after {t} of {len(actions)} "
                             f"actions; the actions do not belong to this layout")
        obs, reward, terminated, truncated, _ = env.step(int(action))
        images.append(obs["image"]); directions.append(obs["direction"]); rewards.append(float(reward))
        if render:
            frames.append(render_frame(env, tile_size))
    terminated, truncated = episode_ending(terminated, truncated)
    return Replay(mission=str(obs["mission"]), images=np.stack(images).astype(np.uint8),
                  directions=np.asarray(directions, np.int64), rewards=np.asarray(rewards, np.float32),
                  terminated=terminated, truncated=truncated, frames=frames)


def render_frame(env, tile_size: int = TILE_SIZE) -> np.ndarray:
    """The whole grid as an RGB array [H, W, 3] (the agent's field of view highlighted)."""
    return env.unwrapped.get_frame(highlight=True, tile_size=tile_size)


def png_bytes(frame: np.ndarray) -> bytes:
    """PNG encoding of an RGB frame; deterministic (same pixels, same bytes), so the bytes' hash
    names the frame."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, np.uint8)).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def replay_episode(level: str, seed: int, actions, annotations: dict | None = None,
                   env=None) -> Episode:
    """The `Episode` (observations, rewards, ending) of a stored (level, seed, actions)."""
    r = replay(level, seed, actions, env=env)
    return Episode(observations={"image": r.images, "direction": r.directions},
                   actions=np.asarray(actions, np.int64).reshape(-1), rewards=r.rewards,
                   terminated=r.terminated, truncated=r.truncated, instruction=r.mission,
                   env_id=level, seed=int(seed), annotations=dict(annotations or {}))
