"""The environment-interaction loop for SAC with an environment or learned reward (FORM, GAIL).

    step loop:  act (random before learning_starts) -> env.step -> replay.add -> reset on episode end
                -> one fused SAC update per environment step -> log / evaluate every N steps

`true return` in the logs is always the environment's reward, whatever reward SAC optimises, so the
learning curves of imitation methods are comparable (`charts/episodic_return`, `eval/return`).
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from protege.core.progress import progress_bar
from protege.rl.sac import SAC, Replay


@dataclass
class LoopConfig:
    steps: int = 20_000
    """environment steps (agent decisions)"""
    log_every: int = 1000
    eval_every: int = 5000
    """evaluate the deterministic policy every this many steps (and at the end)"""
    eval_episodes: int = 3


def retain_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process instead of returning it to the OS after every step.

    Why: one SAC update allocates and frees a few MB of activations and gradients (tensors of 0.25-1 MB).
    With glibc's defaults the freed top of the heap is trimmed and large blocks are mmapped, so the next
    update page-faults on them again: ~300-400 minor faults (about 1 ms) per update here. A fixed mmap
    threshold of 32 MB (glibc's maximum) and a 256 MB trim threshold keep those pages mapped. This is a
    process-wide allocator setting (it changes no result); False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc <malloc.h>
    return bool(libc.mallopt(m_trim_threshold, 256 << 20)) and bool(libc.mallopt(m_mmap_threshold, 32 << 20))


def evaluate(env: gym.Env, agent: SAC, episodes: int, seed: int) -> list[float]:
    """Returns of the deterministic (mean) policy on the environment's reward."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns


def train_online(env: gym.Env, eval_env: gym.Env, agent: SAC, loop: LoopConfig, seed: int,
                 run=None, on_step=None, show_progress: bool = True) -> dict:
    """Run SAC for `loop.steps` environment steps; returns timings and the final evaluation.
    `on_step(step, replay, rng)` is called before each update; the bar is the shared layout."""
    cfg = agent.cfg
    retain_freed_memory()
    rng = np.random.default_rng(seed)
    replay = Replay(min(cfg.buffer_size, loop.steps), env.observation_space.shape[0], env.action_space.shape[0])
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    episode_return, episode_returns, evals, metrics = 0.0, [], [], {}
    start = time.perf_counter()
    with progress_bar(show_progress) as bar:
        task = bar.add_task("sac", total=loop.steps)
        for step in range(1, loop.steps + 1):
            action = env.action_space.sample() if step <= cfg.learning_starts else agent.act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            replay.add(obs, action, reward, next_obs, float(terminated))
            episode_return += reward
            obs = next_obs
            if terminated or truncated:
                episode_returns.append(episode_return)
                if run is not None:
                    run.log(step, {"charts/episodic_return": episode_return})
                obs, episode_return = env.reset()[0], 0.0
            if step > cfg.learning_starts:
                if on_step is not None:
                    on_step(step, replay, rng)
                metrics = agent.update(replay.sample(rng, cfg.batch_size))
            if run is not None and step % loop.log_every == 0 and metrics:
                run.log(step, {k: float(v) for k, v in metrics.items()}
                        | {"charts/steps_per_s": step / (time.perf_counter() - start)})
            if loop.eval_episodes and (step % loop.eval_every == 0 or step == loop.steps):
                returns = evaluate(eval_env, agent, loop.eval_episodes, seed=10_000 + step)
                evals.append({"step": step, "return": float(np.mean(returns))})
                if run is not None:
                    run.log(step, {"eval/return": float(np.mean(returns))})
                bar.update(task, description=f"sac eval return {evals[-1]['return']:.0f}")
            if step % 25 == 0 or step == loop.steps:  # the bar redraws at 10 Hz anyway
                bar.update(task, completed=step)
    elapsed = time.perf_counter() - start
    _check_finite(agent)
    return {"steps": loop.steps, "seconds": elapsed, "steps_per_s": loop.steps / elapsed,
            "final_return": evals[-1]["return"] if evals else float("nan"), "evals": evals,
            "train_episode_returns": episode_returns}


def _check_finite(agent: SAC) -> None:
    for name, p in agent.named_parameters():
        if not torch.isfinite(p).all():
            raise FloatingPointError(f"SAC parameter {name} became non-finite")
