"""How far a finished `lm` run is above each trivial baseline, prompt by prompt: the model's greedy
completion and each baseline's completion are scored on the same held-out prompts, and the per-prompt
difference gets a 95% t-interval (a margin is clear when the interval is above zero). The baselines
are those of `protege eval lm` (empty, most common, best constant chosen on training data, nearest
training prompt's completion). The last line printed is one JSON object.

    PYTHONPATH=src .venv/bin/python scripts/lm_margin.py RUN [RUN ...] [--prompts 100]
"""
import argparse
import json
from collections import Counter
from pathlib import Path

from protege.eval.stats import mean_interval
from protege.systems.lm_irl.baselines import best_constant, nearest_prompts
from protege.systems.lm_irl.evaluate import (
    eval_config,
    generate,
    load_trained,
    task_score,
)
from protege.worlds.text.tasks import TaskConfig, load_task


def per_prompt_scores(run_dir: Path, prompts: int) -> dict[str, list[float]]:
    """{"model" and each baseline: the task score of its completion on each held-out prompt}."""
    model, tokenizer, config = load_trained(run_dir)
    kind, seed = config["task"]["kind"], config["seed"]
    data = load_task(TaskConfig(**config["task"]), seed)
    examples, train = data.eval[:prompts], data.train
    score = lambda e, c: task_score(kind, e, c)
    cfg = eval_config(max_new_tokens=config["eval"]["max_new_tokens"])
    greedy = [outs[0] for outs in generate(model, tokenizer, [e.prompt for e in examples], cfg)]
    common = Counter(e.completion for e in train).most_common(1)[0][0]
    constant = best_constant(score, train, seed=seed)
    nearest, _ = nearest_prompts([e.prompt for e in train], [e.prompt for e in examples])
    completions = {"model": greedy, "empty": [""] * len(examples), "most_common": [common] * len(examples),
                   "best_constant": [constant] * len(examples),
                   "retrieval": [train[i].completion for i in nearest]}
    return {name: [score(e, c) for e, c in zip(examples, outs)] for name, outs in completions.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--prompts", type=int, default=100, help="held-out prompts (the first N)")
    args = parser.parse_args()
    results = {}
    for run_dir in args.runs:
        scores = per_prompt_scores(run_dir, args.prompts)
        row = {"model": mean_interval(scores["model"])[0]}
        for name in ("empty", "most_common", "best_constant", "retrieval"):
            diffs = [m - b for m, b in zip(scores["model"], scores[name])]
            row[name] = mean_interval(scores[name])[0]
            row[f"model-{name}"] = mean_interval(diffs)
        results[str(run_dir)] = row
        cells = [f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"
                 for k, v in row.items()]
        print(f"{run_dir} ({args.prompts} prompts): " + "; ".join(cells))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
