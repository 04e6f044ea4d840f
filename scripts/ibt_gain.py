"""Mean success over PPO seeds and the fraction of the environment reward's gain a learned reward
recovers (docs/results/ibt.md), from the runs' summary.json files.

    .venv/bin/python scripts/ibt_gain.py --bc RUN --env RUN... --learned RUN... [--key eval/success]

Per arm: the mean over seeds with its 95% t interval (protege.eval.stats.mean_interval). Recovered
fraction: (learned - BC) / (env - BC) of the means; its 95% interval by a bootstrap that resamples
each arm's seeds with replacement and BC's held-out episodes (binomial at BC's rate), so it carries
the seed-to-seed spread of both arms and BC's evaluation noise (with 3 seeds a rough interval).
The last line printed is one JSON object.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from protege.eval.stats import mean_interval


def rates(runs: list[str], key: str) -> list[float]:
    return [json.loads((Path(r) / "summary.json").read_text())[key] for r in runs]


def recovered(bc: float, n_bc: int, env: list[float], learned: list[float], draws: int = 20000,
              seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    point = (np.mean(learned) - bc) / (np.mean(env) - bc)
    bc_draws = rng.binomial(n_bc, bc, draws) / n_bc
    env_draws = rng.choice(env, (draws, len(env))).mean(1)
    learned_draws = rng.choice(learned, (draws, len(learned))).mean(1)
    gain = env_draws - bc_draws
    ratio = (learned_draws - bc_draws)[gain > 0] / gain[gain > 0]  # a draw with no env gain has no ratio
    lo, hi = np.percentile(ratio, [2.5, 97.5])
    return float(point), float(lo), float(hi)


def main() -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--bc", required=True)
    p.add_argument("--env", nargs="+", required=True)
    p.add_argument("--learned", nargs="+", required=True)
    p.add_argument("--key", default="eval/success")
    a = p.parse_args()
    bc_summary = json.loads((Path(a.bc) / "summary.json").read_text())
    bc, n_bc = bc_summary[a.key], bc_summary["eval/episodes"]
    out = {"key": a.key, "bc": bc}
    for arm, runs in (("env", a.env), ("learned", a.learned)):
        values = rates(runs, a.key)
        mean, lo, hi = mean_interval(values) if len(values) > 1 else (values[0], None, None)
        out[arm] = {"runs": runs, "values": values, "mean": mean, "lo": lo, "hi": hi}
        print(f"{arm}: {mean:.3f} [{lo if lo is None else f'{lo:.3f}'}, {hi if hi is None else f'{hi:.3f}'}] "
              f"({', '.join(f'{v:.3f}' for v in values)})")
    point, lo, hi = recovered(bc, n_bc, out["env"]["values"], out["learned"]["values"])
    out["recovered"] = {"fraction": point, "lo": lo, "hi": hi}
    print(f"BC {bc:.3f}; env gain {out['env']['mean'] - bc:+.3f}, learned gain {out['learned']['mean'] - bc:+.3f}; "
          f"recovered {point:.2f} [{lo:.2f}, {hi:.2f}]")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
