"""Mean success over PPO seeds and the fraction of the environment reward's gain a learned reward
recovers (docs/results/ibt.md), from the runs' summary.json files.

    .venv/bin/python scripts/ibt_gain.py gain --bc RUN --env RUN... --learned RUN... [--key eval/success]
    .venv/bin/python scripts/ibt_gain.py phases RUN...   training success by phase of each run
    .venv/bin/python scripts/ibt_gain.py curve [--block N] RUN...   training success per block of
                                                                   N iterations (a learning curve)

Per arm: the mean over seeds with its 95% t interval (protege.eval.stats.mean_interval). Recovered
fraction: (learned - BC) / (env - BC) of the means; its 95% interval by a bootstrap that resamples
each arm's seeds with replacement and BC's held-out episodes (binomial at BC's rate), so it carries
the seed-to-seed spread of both arms and BC's evaluation noise (with 3 seeds a rough interval).
Phases: the success of the training episodes (sampling) collected by the BC policy (the critic
warm-up's rollouts and the one after them, which the first policy update follows; the first
iteration is left out: its finished episodes are the quick ones), by the policy after its first
five policy updates, and in the last quarter of the run (episodes pooled).
The last line printed is one JSON object.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from protege.core.runs import read_metrics
from protege.eval.stats import mean_interval


def summary(run: str) -> dict:
    """The run's summary, with scripts/ibt_eval.py's sampled rates for runs made before they were in it."""
    s = json.loads((Path(run) / "summary.json").read_text())
    later = Path(run) / "eval" / "ibt_eval.json"
    if "eval/success_sampled" not in s and later.exists():
        s = {**s, **json.loads(later.read_text())["results"]}
    return s


def rates(runs: list[str], key: str) -> list[float]:
    return [summary(r)[key] for r in runs]


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


def pooled(rows: list[dict]) -> tuple[float | None, int]:
    n = sum(r.get("charts/episodes", 0) for r in rows)
    wins = sum(r.get("charts/success_rate", 0.0) * r.get("charts/episodes", 0) for r in rows)
    return (wins / n if n else None), n


def phases(runs: list[str]) -> list[dict]:
    print("| run | PPO settings | BC policy (warm-up rollouts) | after 1-5 policy updates | last quarter |")
    print("|---|---|---|---|---|")
    out = []
    for run in runs:
        c = yaml.safe_load((Path(run) / "config.yaml").read_text())
        rows = [r for r in read_metrics(Path(run), wall_clock=False) if "ppo/policy_loss" in r]
        w, ppo = c["critic_warmup"], c["ppo"]
        # row i is iteration i + 1, collected before its update; updates from iteration w + 1 on
        parts = {"bc": pooled(rows[1:w + 1]), "first5": pooled(rows[w + 1:w + 6]),
                 "last_quarter": pooled(rows[-max(1, len(rows) // 4):])}
        settings = (f"{ppo['n_envs']} envs, lr {ppo['lr']:g}, ent {ppo['ent_coef']:g}, "
                    f"KL {ppo.get('kl_coef', 0):g}, vf {ppo['vf_coef']:g}, warm-up {w}")
        print(f"| {Path(run).name} | {settings} | " + " | ".join(
            "-" if v is None else f"{v:.3f} ({n})" for v, n in parts.values()) + " |")
        out.append({"run": run, **{k: {"success": v, "episodes": n} for k, (v, n) in parts.items()}})
    return out


def curve(runs: list[str], block: int) -> list[dict]:
    """Training success (sampling) per block of `block` iterations, episodes pooled, with a 95%
    Wilson interval; one column per block, environment steps at the block's end in the header."""
    from protege.eval.stats import wilson_interval
    table = []
    for run in runs:
        c = yaml.safe_load((Path(run) / "config.yaml").read_text())
        rows = [r for r in read_metrics(Path(run), wall_clock=False) if "ppo/policy_loss" in r]
        cells = []
        for start in range(0, len(rows), block):
            rate, n = pooled(rows[start:start + block])
            lo, hi = wilson_interval(round(rate * n), n) if n else (None, None)
            cells.append({"steps": min(start + block, len(rows)) * c["ppo"]["n_envs"] * c["ppo"]["rollout_steps"],
                          "success": rate, "lo": lo, "hi": hi, "episodes": n})
        table.append({"run": run, "blocks": cells})
    longest = max(table, key=lambda t: len(t["blocks"]))["blocks"]
    print("| run | " + " | ".join(f"to {b['steps']:,} steps" for b in longest) + " |")
    print("|---|" + "---|" * len(longest))
    for t in table:
        print(f"| {Path(t['run']).name} | " + " | ".join(
            "-" if b["success"] is None else f"{b['success']:.3f} [{b['lo']:.2f}, {b['hi']:.2f}]"
            for b in t["blocks"]) + " |")
    return table


def main() -> dict:
    if sys.argv[1:2] == ["phases"]:
        return {"phases": phases(sys.argv[2:])}
    if sys.argv[1:2] == ["curve"]:
        p = argparse.ArgumentParser()
        p.add_argument("--block", type=int, default=50)
        p.add_argument("runs", nargs="+")
        a = p.parse_args(sys.argv[2:])
        return {"curve": curve(a.runs, a.block)}
    if sys.argv[1:2] == ["gain"]:
        sys.argv.pop(1)
    p = argparse.ArgumentParser()
    p.add_argument("--bc", required=True)
    p.add_argument("--env", nargs="+", required=True)
    p.add_argument("--learned", nargs="+", required=True)
    p.add_argument("--key", default="eval/success")
    a = p.parse_args()
    bc_summary = summary(a.bc)
    bc, n_bc = bc_summary[a.key], bc_summary["eval/episodes"]
    out = {"key": a.key, "bc": bc}
    for arm, runs in (("env", a.env), ("learned", a.learned)):
        values = rates(runs, a.key)
        mean, lo, hi = mean_interval(values) if len(values) > 1 else (values[0], None, None)
        out[arm] = {"runs": runs, "values": values, "mean": mean, "lo": lo, "hi": hi}
        print(f"{arm}: {mean:.3f} [{lo if lo is None else f'{lo:.3f}'}, {hi if hi is None else f'{hi:.3f}'}] "
              f"({', '.join(f'{v:.3f}' for v in values)})")
    env_gain, learned_gain = out["env"]["mean"] - bc, out["learned"]["mean"] - bc
    print(f"BC {bc:.3f}; env gain {env_gain:+.3f}, learned gain {learned_gain:+.3f}")
    if env_gain <= 0:  # a fraction of no gain means nothing
        out["recovered"] = None
        print("recovered: undefined (the environment reward gained nothing over BC)")
    else:
        point, lo, hi = recovered(bc, n_bc, out["env"]["values"], out["learned"]["values"])
        out["recovered"] = {"fraction": point, "lo": lo, "hi": hi}
        print(f"recovered {point:.2f} [{lo:.2f}, {hi:.2f}]")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
