"""Print the markdown tables of docs/results/babyai.md from the runs' summary.json files.

    PYTHONPATH=src .venv/bin/python scripts/babyai_table.py runs/bc-GoToRedBall-1k-s0 ...
    PYTHONPATH=src .venv/bin/python scripts/babyai_table.py --cells runs/*-1k-s*   # seeds pooled per cell
"""
import json
import sys
from collections import defaultdict
from pathlib import Path

import yaml


def describe(path: Path) -> tuple[dict, dict, str, str]:
    s = json.loads((path / "summary.json").read_text())
    c = yaml.safe_load((path / "config.yaml").read_text())
    method = ("GAIL+PPO" if c["experiment"] == "babyai_gail"
              else "BC" if c.get("lam", 0) == 0 else f"IQ-Learn (lambda={c['lam']})")
    steps = c["trainer"]["steps"] if "trainer" in c else f"{c['iterations']} it"
    return s, c, method, str(steps)


def rows(paths: list[Path]) -> None:
    print("| run | method | level | demos | steps | success [95% Wilson] | return [95% t] | length [95% t] |")
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        if not (path / "summary.json").exists():
            print(f"| {path.name} | (not finished) | | | | | | |")
            continue
        s, c, method, steps = describe(path)
        print(f"| {path.name} | {method} | {c['level'].removeprefix('BabyAI-')} | {c.get('n_demos') or 'all'} "
              f"| {steps} | {s['eval/success']:.3f} [{s['eval/success_lo']:.3f}, {s['eval/success_hi']:.3f}] "
              f"| {s['eval/return']:.3f} [{s['eval/return_lo']:.3f}, {s['eval/return_hi']:.3f}] "
              f"| {s['eval/length']:.1f} [{s['eval/length_lo']:.1f}, {s['eval/length_hi']:.1f}] |")


# Imitation from 1M bot demonstrations (BabyAI 1.0, arXiv:1810.08272; 1.1, arXiv:2007.12770).
ANCHORS = {"GoToLocal": "99.8% (1M demos)", "PutNextLocal": "99.2% (1M demos)",
           "BossLevel": "77% (1.0) / 90.4% (1.1), 1M demos"}


def cells(paths: list[Path]) -> None:
    """One row per (level, method, demos, budget): success per training seed and their mean."""
    groups = defaultdict(list)
    for path in paths:
        if (path / "summary.json").exists():
            s, c, method, steps = describe(path)
            key = (c["level"].removeprefix("BabyAI-").removesuffix("-v0"), method, c.get("n_demos"), steps)
            groups[key].append((c["seed"], s["eval/success"]))
    print("| level | method | demos | steps | seeds | success per seed | mean | min - max "
          "| paper anchor (IL) |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = ["GoToRedBall", "GoToLocal", "PickupLoc", "PutNextLocal", "BossLevel"]
    for (level, method, demos, steps), got in sorted(groups.items(), key=lambda kv: (
            order.index(kv[0][0]) if kv[0][0] in order else 9, kv[0][2] or 0, kv[0][1], kv[0][3])):
        got.sort()
        vals = [v for _, v in got]
        print(f"| {level} | {method} | {demos} | {steps} | {len(got)} | "
              f"{', '.join(f's{k}: {v:.3f}' for k, v in got)} | **{sum(vals) / len(vals):.3f}** | "
              f"{min(vals):.3f} - {max(vals):.3f} | {ANCHORS.get(level, '-')} |")


if __name__ == "__main__":
    args = sys.argv[1:]
    (cells if args[:1] == ["--cells"] else rows)([Path(a) for a in args if a != "--cells"])
