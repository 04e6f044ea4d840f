"""The environment-interaction loop for SAC with an environment or learned reward (FORM, GAIL).

    step loop:  reset if the last episode ended -> act (random before learning_starts) -> env.step
                -> replay.add -> one fused SAC update per environment step -> log / evaluate every N
                steps -> checkpoint at the first episode end after every `checkpoint_every` steps

`true return` in the logs is always the environment's reward, whatever reward SAC optimises, so the
learning curves of imitation methods are comparable (`charts/episodic_return`, `eval/return`).

The training state is explicit (as Acme's SAC `TrainingState`): the agent's weights (actor, critics,
targets, temperature, reward model), the optimiser's state, the reward model's generators and caches,
the replay contents and position, the replay-sampling generator, the global Python/NumPy/torch RNGs,
the environment's random state (the suite task's and gymnasium's generators, the action space's, the
distractors'), the step and the episode counters. A run killed at any point and resumed from its last
checkpoint ends with the same weights and metrics as an uninterrupted one.

Why checkpoints fall on episode ends: between episodes an environment is fully described by its random
state (the next reset draws the initial state from it). Mid-episode it is not: MuJoCo's data holds the
solver's warm start and timing next to qpos/qvel, and a suite task keeps per-episode settings in the
model (reacher's target position), none of which `physics.get_state()` covers; a restored mid-episode
simulator would not continue bit for bit. The Control Suite's episodes have a fixed length, so the
checkpoint comes at most one episode after it is due.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.progress import progress_bar
from protege.core.seeds import rng_state, set_rng_state, stream_seed, stream_seeds
from protege.rl.sac import SAC, Replay


@dataclass
class LoopConfig:
    steps: int = 20_000
    """environment steps (agent decisions)"""
    log_every: int = 1000
    """log the latest update's metrics every this many environment steps"""
    eval_every: int = 5000
    """evaluate the deterministic policy every this many steps (and at the end)"""
    eval_episodes: int = 3
    """episodes per evaluation during training (0: none)"""
    checkpoint_every: int = 5000
    """save the whole training state (for --resume) at the first episode end after every this many
    environment steps, and at the last step; 0: only at the last step"""

    def __post_init__(self):
        check_fields(self, steps=">=1", log_every=">=1", eval_every=">=1", eval_episodes=">=0",
                     checkpoint_every=">=0")


@dataclass
class LoopState:
    """The loop's own counters, saved with every checkpoint."""
    step: int = 0
    """environment steps taken"""
    episode_return: float = 0.0
    """environment return of the running episode (0 at an episode end)"""
    episode_returns: list[float] = field(default_factory=list)
    """returns of the finished training episodes"""
    evals: list[dict] = field(default_factory=list)
    """{"step", "return"} of every evaluation so far"""


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


def evaluate(env: gym.Env, agent, seeds: list[int]) -> list[float]:
    """Returns of the deterministic (mean) policy on the environment's reward, one episode per seed."""
    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns


def env_rng_state(env: gym.Env) -> dict:
    """An environment's random state between episodes: its own (`rng_state()` if it has one, else
    gymnasium's `np_random`) and its action space's (the uniform random actions before learning)."""
    own = env.rng_state() if hasattr(env, "rng_state") else {"np_random": env.unwrapped.np_random.bit_generator.state}
    return {"env": own, "action_space": env.action_space.np_random.bit_generator.state}


def set_env_rng_state(env: gym.Env, state: dict) -> None:
    if hasattr(env, "set_rng_state"):
        env.set_rng_state(state["env"])
    else:
        env.unwrapped.np_random.bit_generator.state = state["env"]["np_random"]
    env.action_space.np_random.bit_generator.state = state["action_space"]


def training_state(agent: SAC, replay: Replay, rng: np.random.Generator, env: gym.Env,
                   loop: LoopState) -> tuple[dict, dict]:
    """(weights, state) of the whole learner, in the form `Run.save_checkpoint` takes."""
    weights = {f"agent.{k}": v for k, v in agent.state_dict().items()}
    state = {"optimizer": agent.opt.state_dict(), "replay": replay.state_dict(),
             "replay_rng": rng.bit_generator.state, "rng": rng_state(), "env": env_rng_state(env),
             "loop": {"episode_return": loop.episode_return, "episode_returns": list(loop.episode_returns),
                      "evals": list(loop.evals)}}
    if agent.reward_model is not None:
        state["reward_model"] = agent.reward_model.training_state()
    return weights, state


def load_training_state(agent: SAC, replay: Replay, rng: np.random.Generator, env: gym.Env,
                        restored: tuple[dict, dict]) -> LoopState:
    """Load what `training_state` saved (as `Run.restore` returns it); returns the loop's counters."""
    weights, state = restored
    agent.load_state_dict({k.removeprefix("agent."): v for k, v in weights.items()})
    agent.opt.load_state_dict(state["optimizer"])
    if agent.reward_model is not None:
        agent.reward_model.load_training_state(state["reward_model"])
    replay.load_state_dict(state["replay"])
    rng.bit_generator.state = state["replay_rng"]
    set_rng_state(state["rng"])
    set_env_rng_state(env, state["env"])
    saved = state["loop"]
    return LoopState(int(state["step"]), float(saved["episode_return"]), [float(r) for r in saved["episode_returns"]],
                     [dict(e) for e in saved["evals"]])


def train_online(env: gym.Env, eval_env: gym.Env, agent: SAC, loop: LoopConfig, seed: int,
                 run=None, on_step=None, show_progress: bool = True, restored: tuple[dict, dict] | None = None) -> dict:
    """Run SAC for `loop.steps` environment steps; returns timings and the final evaluation.

    Every generator is derived from `seed` (`stream_seed`); `restored` (from `run.restore()`) continues a
    killed run. `on_step(step, replay, rng)` is called before each update; the bar is the shared layout."""
    cfg = agent.cfg
    retain_freed_memory()
    rng = np.random.default_rng(stream_seed(seed, "replay"))
    replay = Replay(min(cfg.buffer_size, loop.steps), env.observation_space.shape[0], env.action_space.shape[0])
    state = LoopState()
    if restored is None:
        env.action_space.seed(stream_seed(seed, "random_actions"))
        obs, _ = env.reset(seed=stream_seed(seed, "env"))
    else:
        state = load_training_state(agent, replay, rng, env, restored)
        obs = None  # a checkpoint lies between episodes: the next step resets
    saved_at, metrics, start_step = state.step, {}, state.step
    start = time.perf_counter()
    with progress_bar(show_progress) as bar:
        task = bar.add_task("sac", total=loop.steps, completed=state.step)
        for step in range(state.step + 1, loop.steps + 1):
            # 1. act in the environment (reset first if the last episode ended) and store the transition
            if obs is None:
                obs = env.reset()[0]
            action = env.action_space.sample() if step <= cfg.learning_starts else agent.act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            replay.add(obs, action, reward, next_obs, float(terminated))
            state.episode_return += reward
            obs = next_obs
            if terminated or truncated:
                state.episode_returns.append(state.episode_return)
                if run is not None:
                    run.log(step, {"charts/episodic_return": state.episode_return})
                obs, state.episode_return = None, 0.0
            # 2. one update
            if step > cfg.learning_starts:
                if on_step is not None:
                    on_step(step, replay, rng)
                metrics = agent.update(replay.sample(rng, cfg.batch_size))
            # 3. log, evaluate, checkpoint
            state.step = step
            if run is not None and step % loop.log_every == 0 and metrics:
                run.log(step, {k: float(v) for k, v in metrics.items()}
                        | {"time/steps_per_s": (step - start_step) / (time.perf_counter() - start)})
            if loop.eval_episodes and (step % loop.eval_every == 0 or step == loop.steps):
                returns = evaluate(eval_env, agent, stream_seeds(seed, f"eval@{step}", loop.eval_episodes))
                state.evals.append({"step": step, "return": float(np.mean(returns))})
                if run is not None:
                    run.log(step, {"eval/return": float(np.mean(returns))})
                bar.update(task, description=f"sac eval return {state.evals[-1]['return']:.0f}")
            due = loop.checkpoint_every and obs is None and step // loop.checkpoint_every > saved_at // loop.checkpoint_every
            if run is not None and (due or step == loop.steps):
                run.save_checkpoint(step, *training_state(agent, replay, rng, env, state))
                saved_at = step
            if step % 25 == 0 or step == loop.steps:  # the bar redraws at 10 Hz anyway
                bar.update(task, completed=step)
    elapsed = time.perf_counter() - start
    _check_finite(agent)
    return {"steps": loop.steps, "seconds": elapsed, "steps_per_s": (loop.steps - start_step) / max(elapsed, 1e-9),
            "final_return": state.evals[-1]["return"] if state.evals else float("nan"), "evals": state.evals,
            "train_episode_returns": state.episode_returns}


def _check_finite(agent: SAC) -> None:
    for name, p in agent.named_parameters():
        if not torch.isfinite(p).all():
            raise FloatingPointError(f"SAC parameter {name} became non-finite")
