"""Benchmark: rewards from progress marks (systems/feedback/ibt.py, ibt_rl.py).

    pairs_per_s          inter-temporal prefix pairs per second through the utility model: one
                         optimiser step (forward over whole episodes, `prefix_pair_scores`,
                         `bradley_terry_loss`, backward, Adam) on a batch of simulated-like
                         episodes, pairs drawn around their marks as the trainer does
    ppo_env_steps_per_s  PPO iterations on BabyAI PickupLoc (collect + reward + update), with
                         the environment reward (`env`) and with a frozen learned utility in the
                         loop (`learned`, the ibt reward: its encoder + LSTM over every rollout step)
    slowdown             env rate / learned rate (goal <= 1.2)
Each PPO variant runs `--repeats` times alternating and keeps its best rate (as `timeit`: on a
shared machine slow runs measure the neighbours); CPU-second rates are printed beside them.
Imports and environment construction happen before any timer starts.

    PYTHONPATH=src .venv/bin/python benchmarks/ibt.py
The last line printed is one JSON object.
"""

import argparse
import contextlib
import io
import json
import time

import numpy as np
import torch

from protege.core.precision import machine_info
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
from protege.nn.utility import UtilityConfig, UtilityModel
from protege.rl.ppo import EnvPool, PPOConfig
from protege.systems.feedback import ibt, ibt_rl
from protege.systems.feedback.marks_data import MarkedEpisode
from protege.worlds.babyai.levels import TRAIN_SEED_START, episode_success, make_env


def toy_episodes(n: int, length: int, rng: np.random.Generator) -> list[MarkedEpisode]:
    """Episodes of random 7x7 views with a progress or regress mark every 4 frames on average."""
    from protege.data.episodes import Episode
    out = []
    for _ in range(n):
        images = rng.integers(0, 11, (length + 1, 7, 7, 3)).astype(np.uint8)
        ep = Episode(observations={"image": images, "direction": rng.integers(0, 4, length + 1)},
                     actions=np.zeros(length, np.int64), rewards=np.zeros(length, np.float32),
                     terminated=False, truncated=True, instruction="pick up the red ball")
        frames = sorted(set(rng.integers(1, length + 1, max(1, length // 4)).tolist()))
        out.append(MarkedEpisode(ep, tuple((f, "progress" if rng.random() < 0.7 else "regress", "b") for f in frames)))
    return out


def pair_rate(batch: int, length: int, steps: int, dim: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    episodes = toy_episodes(batch, length, rng)
    model = UtilityModel(UtilityConfig(dim=dim))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    pairs, t0 = 0, None
    for step in range(steps + 1):
        if step == 1:
            pairs, t0 = 0, time.perf_counter()  # the first step warms up the allocator
        loss, metrics = ibt.batch_loss(model, "ibt", episodes, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        pairs += metrics["bt/pairs"]
    wall = time.perf_counter() - t0
    return pairs / wall, batch * steps / wall


def ppo_rate(learner: ibt_rl.Learner, config: ibt_rl.Config, iterations: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints rejected layouts
        for it in range(iterations):
            ibt_rl.iteration(learner, config, it + config.critic_warmup)
    steps = iterations * config.ppo.n_envs * config.ppo.rollout_steps
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


def make_learner(level: str, ppo: PPOConfig, dim: int, learned: bool) -> ibt_rl.Learner:
    torch.manual_seed(0)
    policy = BabyAIPolicy(PolicyConfig(dim=dim))
    reward = None
    if learned:
        model = UtilityModel(UtilityConfig(dim=dim)).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        reward = ibt_rl.UtilityReward(model, "ibt", 1.0)
    with contextlib.redirect_stdout(io.StringIO()):
        pool = EnvPool([make_env(level) for _ in range(ppo.n_envs)], TRAIN_SEED_START, success=episode_success)
    return ibt_rl.Learner(policy=policy, reward=reward, opt=torch.optim.Adam(policy.parameters(), lr=ppo.lr),
                          gen=torch.Generator().manual_seed(0), pool=pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--level", default="BabyAI-PickupLoc-v0")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="episodes per utility step")
    parser.add_argument("--length", type=int, default=40, help="steps per episode (utility)")
    parser.add_argument("--steps", type=int, default=5, help="timed utility steps")
    parser.add_argument("--iterations", type=int, default=2, help="timed PPO iterations per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pairs_per_s, episodes_per_s = pair_rate(args.batch, args.length, args.steps, args.dim)
    print(f"utility: {pairs_per_s:.0f} prefix pairs/s ({episodes_per_s:.1f} episodes/s, batch {args.batch} x "
          f"{args.length} steps, dim {args.dim})")
    ppo = PPOConfig()
    rates = {"env": [], "learned": []}
    learners = {k: make_learner(args.level, ppo, args.dim, k == "learned") for k in rates}
    configs = {"env": ibt_rl.Config(init_from="-", env_reward=1.0, ppo=ppo, policy=PolicyConfig(dim=args.dim)),
               "learned": ibt_rl.Config(init_from="-", reward_from="-", ppo=ppo, policy=PolicyConfig(dim=args.dim))}
    for _ in range(args.repeats):
        for k in rates:
            rates[k].append(ppo_rate(learners[k], configs[k], args.iterations))
            print(f"ppo {k}: {rates[k][-1][0]:.0f} env steps/s ({rates[k][-1][1]:.0f} per CPU s)")
    best = {k: max(r[0] for r in v) for k, v in rates.items()}
    best_cpu = {k: max(r[1] for r in v) for k, v in rates.items()}
    result = {"benchmark": "ibt", "level": args.level, "dim": args.dim,
              "pairs_per_s": round(pairs_per_s, 1), "utility_episodes_per_s": round(episodes_per_s, 2),
              "ppo_env_steps_per_s_env_reward": round(best["env"], 1),
              "ppo_env_steps_per_s_learned_reward": round(best["learned"], 1),
              "slowdown": round(best["env"] / best["learned"], 3),
              "slowdown_cpu": round(best_cpu["env"] / best_cpu["learned"], 3),
              "goal_slowdown": 1.2, "met": best["env"] / best["learned"] <= 1.2,
              "machine": machine_info()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
