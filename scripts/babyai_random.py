"""The trivial baseline beside every BabyAI success table: uniform random actions on the held-out
evaluation seeds (from 10^9, as `protege eval babyai`), success with its 95% Wilson interval.

    python scripts/babyai_random.py --level BabyAI-MiniBossLevel-v0 --level BabyAI-GoToSeqS5R2-v0 --episodes 200

Last line printed: one JSON object, {level: {"success", "low", "high", "episodes"}}.
"""

import argparse
import json

import numpy as np

from protege.eval.stats import wilson_interval
from protege.worlds.babyai.levels import EVAL_SEED_START, N_ACTIONS, episode_success, make_env, seed_range


def random_success(level: str, episodes: int, seed: int = 0) -> int:
    """Episodes solved by uniform random actions (the action stream seeded by `seed` and the episode)."""
    env = make_env(level)
    solved = 0
    for s in seed_range(EVAL_SEED_START, episodes):
        rng = np.random.default_rng([seed, s])
        env.reset(seed=s)
        while True:
            _, reward, terminated, truncated, _ = env.step(int(rng.integers(N_ACTIONS)))
            if terminated or truncated:
                solved += episode_success(terminated, reward)
                break
    return solved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", action="append", required=True)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = {}
    for level in args.level:
        k = random_success(level, args.episodes, args.seed)
        low, high = wilson_interval(k, args.episodes)
        out[level] = {"success": k / args.episodes, "low": low, "high": high, "episodes": args.episodes}
        print(f"{level}: {k}/{args.episodes} = {k / args.episodes:.3f} [{low:.3f}, {high:.3f}]")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
