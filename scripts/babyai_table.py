"""Print the markdown rows of docs/results/babyai.md from the runs' summary.json files.

    PYTHONPATH=src .venv/bin/python scripts/babyai_table.py runs/bc-GoToRedBall-1k-s0 ...
"""
import json
import sys
from pathlib import Path

import yaml

print("| run | method | level | demos | steps | success [95% Wilson] | return [95% t] | length [95% t] |")
print("|---|---|---|---|---|---|---|---|")
for path in map(Path, sys.argv[1:]):
    if not (path / "summary.json").exists():
        print(f"| {path.name} | (not finished) | | | | | | |")
        continue
    s = json.loads((path / "summary.json").read_text())
    c = yaml.safe_load((path / "config.yaml").read_text())
    method = ("GAIL+PPO" if c["experiment"] == "babyai_gail"
              else "BC" if c.get("lam", 0) == 0 else f"IQ-Learn (lambda={c['lam']})")
    steps = c["trainer"]["steps"] if "trainer" in c else f"{c['iterations']} it"
    print(f"| {path.name} | {method} | {c['level'].removeprefix('BabyAI-')} | {c.get('n_demos') or 'all'} "
          f"| {steps} | {s['eval/success']:.3f} [{s['eval/success_lo']:.3f}, {s['eval/success_hi']:.3f}] "
          f"| {s['eval/return']:.3f} [{s['eval/return_lo']:.3f}, {s['eval/return_hi']:.3f}] "
          f"| {s['eval/length']:.1f} [{s['eval/length_lo']:.1f}, {s['eval/length_hi']:.1f}] |")
