"""Markdown tables of the rewards-from-marks runs (docs/results/ibt.md) from their summary.json files.

    .venv/bin/python scripts/ibt_tables.py quality RUN...   reward-model quality rows (ibt runs)
    .venv/bin/python scripts/ibt_tables.py rl RUN...        BC / BC+RL rows (ibt_rl runs)
    .venv/bin/python scripts/ibt_tables.py oracle MARKS...  held-out mark accuracy of the true progress
                                                            (minus the bot's remaining steps; the ceiling)
The last line printed is one JSON object (every row read).
"""

import json
import sys
from pathlib import Path

import yaml


def load(run: str) -> tuple[dict, dict]:
    d = Path(run)
    return json.loads((d / "summary.json").read_text()), yaml.safe_load((d / "config.yaml").read_text())


def fmt(x, digits=3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def quality(runs: list[str]) -> list[dict]:
    print("| run | method | marks | train marks | held-out marks | mark accuracy [95%] | majority kind | "
          "Spearman(phi, progress) [95%] | Spearman(return, success) |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for run in runs:
        s, c = load(run)
        rows.append({"run": Path(run).name, **s})
        print(f"| {Path(run).name} | {s['method']} | {Path(c['marks']).name} | {s['train_marks']} | "
              f"{s.get('eval/marks')} | {fmt(s.get('eval/mark_accuracy'))} [{fmt(s.get('eval/mark_accuracy_lo'))}, "
              f"{fmt(s.get('eval/mark_accuracy_hi'))}] | {fmt(s.get('eval/mark_accuracy_majority'))} | "
              f"{fmt(s.get('eval/spearman_progress'))} [{fmt(s.get('eval/spearman_progress_lo'))}, "
              f"{fmt(s.get('eval/spearman_progress_hi'))}] | {fmt(s.get('eval/spearman_success'))} |")
    return rows


def rl(runs: list[str]) -> list[dict]:
    print("| run | reward | env steps | PPO seed | success, greedy [95% Wilson] | success, sampling [95% Wilson] | "
          "mean length (greedy) | train success (sampling, last quarter) |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for run in runs:
        s, c = load(run)
        reward = "none (BC)" if not c["iterations"] else " + ".join(
            x for x in ((Path(c["reward_from"]).name if c["reward_from"] else ""),
                        (f"{c['env_reward']} x env" if c["env_reward"] else "")) if x)
        later = Path(run) / "eval" / "ibt_eval.json"  # scripts/ibt_eval.py, for runs without the sampled rate
        if "eval/success_sampled" not in s and later.exists():
            s = {**s, **json.loads(later.read_text())["results"]}
        rows.append({"run": Path(run).name, "reward": reward, **s})
        print(f"| {Path(run).name} | {reward} | {s['env_steps']} | {c['seed'] if c['iterations'] else '-'} | "
              f"{fmt(s['eval/success'])} [{fmt(s['eval/success_lo'])}, {fmt(s['eval/success_hi'])}] | "
              f"{fmt(s.get('eval/success_sampled'))} [{fmt(s.get('eval/success_sampled_lo'))}, "
              f"{fmt(s.get('eval/success_sampled_hi'))}] | {fmt(s['eval/length'], 1)} | "
              f"{fmt(s.get('charts/success_rate'))} |")
    return rows


def oracle(folders: list[str], held_out: float = 0.2, seed: int = 0) -> list[dict]:
    """The ibt runs' held-out split (seed 0) and mark-accuracy rule, scored with phi_f = -d_f;
    a mark next to a frame the bot could not finish from counts half."""
    from protege.core.seeds import stream_seed
    from protege.systems.feedback.marks_data import load_marks, split
    rows = []
    for folder in folders:
        _, held = split(load_marks(Path(folder)), held_out, stream_seed(seed, "ibt/split"))
        right = n = 0.0
        for m in held:
            frames = sorted((f, k) for f, k, _ in m.marks if k in ("progress", "regress") and f >= 1)
            for j, (f, kind) in enumerate(frames):
                prev = max([g for g, _ in frames[:j] if g < f], default=0)
                d0, d1 = m.remaining[prev], m.remaining[f]
                gain = 0 if min(d0, d1) < 0 else d0 - d1
                right += 0.5 if gain == 0 else float((gain > 0) == (kind == "progress"))
                n += 1
        rows.append({"marks": folder, "held_out_marks": int(n), "oracle_mark_accuracy": right / n})
        print(f"| {Path(folder).name} | true progress (oracle) | {int(n)} | {right / n:.3f} |")
    return rows


if __name__ == "__main__":
    kind, runs = sys.argv[1], sys.argv[2:]
    print(json.dumps({"kind": kind, "rows": {"quality": quality, "rl": rl, "oracle": oracle}[kind](runs)}))
