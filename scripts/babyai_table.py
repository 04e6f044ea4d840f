"""Print the markdown tables of docs/results/babyai.md from the runs' summary.json files.

    PYTHONPATH=src .venv/bin/python scripts/babyai_table.py runs/bc-GoToRedBall-1k-s0 ...
    PYTHONPATH=src .venv/bin/python scripts/babyai_table.py --cells runs/*-1k-s*   # seeds pooled per cell
    PYTHONPATH=src .venv/bin/python scripts/babyai_table.py --pairs runs/bcL-* runs/iqL-*  # IQ-Learn - BC
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


def level_rank(level: str) -> int:
    order = ["GoToRedBall", "GoToLocal", "PickupLoc", "PutNextLocal", "BossLevel"]
    return order.index(level) if level in order else len(order)


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
    for (level, method, demos, steps), got in sorted(groups.items(), key=lambda kv: (
            level_rank(kv[0][0]), kv[0][2] or 0, kv[0][1], kv[0][3])):
        got.sort()
        vals = [v for _, v in got]
        print(f"| {level} | {method} | {demos} | {steps} | {len(got)} | "
              f"{', '.join(f's{k}: {v:.3f}' for k, v in got)} | **{sum(vals) / len(vals):.3f}** | "
              f"{min(vals):.3f} - {max(vals):.3f} | {ANCHORS.get(level, '-')} |")


def pairs(paths: list[Path], lam: float = 0.1) -> None:
    """IQ-Learn (lambda `lam`) against BC on the same level, demos, budget and training seed."""
    runs = {}
    for path in paths:
        if (path / "summary.json").exists():
            s, c, method, steps = describe(path)
            if c.get("lam", 0) in (0, lam) and c["experiment"] != "babyai_gail":
                key = (c["level"].removeprefix("BabyAI-").removesuffix("-v0"), c.get("n_demos"), steps, c["seed"])
                runs[key, c.get("lam", 0) == 0] = s
    print("| level | demos | steps | seed | BC | IQ-Learn | IQ - BC (points) | 95% intervals |")
    print("|---|---|---|---|---|---|---|---|")
    diffs, wins = [], {"IQ-Learn": 0, "BC": 0}
    for key in sorted({k for k, _ in runs}, key=lambda k: (level_rank(k[0]), k[1] or 0, k[2], k[3])):
        if (key, True) not in runs or (key, False) not in runs:
            continue
        bc, iq = runs[key, True], runs[key, False]
        diffs.append(100 * (iq["eval/success"] - bc["eval/success"]))
        apart = ("IQ-Learn" if iq["eval/success_lo"] > bc["eval/success_hi"] else
                 "BC" if bc["eval/success_lo"] > iq["eval/success_hi"] else "")
        wins[apart] = wins.get(apart, 0) + 1
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {bc['eval/success']:.3f} | "
              f"{iq['eval/success']:.3f} | {diffs[-1]:+.1f} | {'disjoint, ' + apart + ' higher' if apart else 'overlap'} |")
    if diffs:
        print(f"\n{len(diffs)} pairs: IQ-Learn higher in {sum(d > 0 for d in diffs)}, BC higher in "
              f"{sum(d < 0 for d in diffs)}; mean difference {sum(diffs) / len(diffs):+.2f} points; "
              f"intervals disjoint in IQ-Learn's favour {wins['IQ-Learn']}x, in BC's {wins['BC']}x.")


if __name__ == "__main__":
    args = sys.argv[1:]
    mode = {"--cells": cells, "--pairs": pairs}.get(args[0] if args else "", rows)
    mode([Path(a) for a in args if not a.startswith("--")])
