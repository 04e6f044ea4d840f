"""The trivial-baseline rows of docs/results/lm_irl.md: empty, most common, best constant and
retrieval completions, scored with each task's metric on the held-out prompts of seeds 0, 1, 2
(no model is trained). The last line printed is one JSON object.

    PYTHONPATH=src .venv/bin/python scripts/lm_baselines.py
"""
import json

import numpy as np

from protege.systems import resolve
from protege.systems.lm_irl.evaluate import baselines
from protege.worlds.text.tasks import load_task

TASKS = (("lm_arithmetic_mle", 200), ("lm_foldoc_mle", 100))  # (recipe, held-out prompts)


def main() -> None:
    results = {}
    for recipe, n in TASKS:
        rows = []
        for seed in (0, 1, 2):
            _, cfg, _ = resolve(recipe, [f"seed={seed}"])
            data = load_task(cfg.task, cfg.seed)
            rows.append(baselines(cfg.task.kind, data.train, data.eval[:n], seed))
        results[recipe] = {k: {"mean": float(np.mean([r[k] for r in rows])), "seeds": [r[k] for r in rows]}
                           for k in rows[0]}
        for key, value in results[recipe].items():
            seeds = " / ".join(f"{v:.3f}" for v in value["seeds"])
            print(f"{recipe} ({n} prompts) {key}: {value['mean']:.3f} ({seeds})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
