"""How far a finished `lm` run is above each trivial baseline, prompt by prompt: the model's greedy
completion and each baseline's completion are scored on the same held-out prompts, and the per-prompt
difference gets a 95% t-interval (a margin is clear when the interval is above zero). The baselines
are those of `protege eval lm` (empty, most common, best constant chosen on training data, nearest
training prompt's completion); `best` is whichever of them scores highest on these prompts.

With `--against RUN ...` (one per RUN, the same seeds in the same order) it also compares two
methods over seeds: each seed's greedy score of both, their difference, and means with 95% t-intervals
over the seeds. The last line printed is one JSON object.

    PYTHONPATH=src .venv/bin/python scripts/lm_margin.py RUN [RUN ...] [--prompts 100] [--against RUN ...]
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

BASELINES = ("empty", "most_common", "best_constant", "retrieval")


def per_prompt_scores(run_dir: Path, prompts: int) -> tuple[dict[str, list[float]], list[tuple]]:
    """({"model" and each baseline: the task score of its completion on each held-out prompt},
    [(prompt, greedy completion, reference)])."""
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
    scores = {name: [score(e, c) for e, c in zip(examples, outs)] for name, outs in completions.items()}
    return scores, [(e.prompt, g, e.completion) for e, g in zip(examples, greedy)]


def margin_row(scores: dict[str, list[float]]) -> dict:
    """The model's mean, each baseline's mean, and model - baseline per prompt as (mean, low, high);
    `best` is the baseline with the highest mean on these prompts."""
    row = {"model": mean_interval(scores["model"])[0]}
    for name in BASELINES:
        row[name] = mean_interval(scores[name])[0]
        row[f"model-{name}"] = mean_interval([m - b for m, b in zip(scores["model"], scores[name])])
    best = max(BASELINES, key=lambda name: row[name])
    row["best"], row["model-best"] = best, row[f"model-{best}"]
    return row


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (tuple, list)):
        return f"{value[0]:+.3f} [{value[1]:+.3f}, {value[2]:+.3f}]"
    return str(value)


def seed_table(rows: list[dict], against: list[dict]) -> tuple[list[str], dict]:
    """Markdown lines, one per seed and a last one of means with 95% t-intervals over the seeds:
    first method, second method, second - first, the best baseline, first - best baseline."""
    columns = {"first": [r["model"] for r in rows], "second": [a["model"] for a in against],
               "second-first": [a["model"] - r["model"] for r, a in zip(rows, against)],
               "best baseline": [r[r["best"]] for r in rows],
               "first-best": [r["model"] - r[r["best"]] for r in rows]}
    lines = ["| seed | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += [f"| {i} | " + " | ".join(f"{v[i]:.3f}" for v in columns.values()) + " |"
              for i in range(len(rows))]
    means = {name: mean_interval(values) for name, values in columns.items()}
    lines.append("| mean [95% t] | " + " | ".join(
        _cell(m) if "-" in name else f"{m[0]:.3f} [{m[1]:.3f}, {m[2]:.3f}]" for name, m in means.items()) + " |")
    return lines, means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--prompts", type=int, default=100, help="held-out prompts (the first N)")
    parser.add_argument("--against", nargs="*", type=Path, default=[],
                        help="a second method's runs, one per RUN (same seeds, same order)")
    parser.add_argument("--show", type=int, default=0, help="print the first N greedy completions")
    args = parser.parse_args()
    if args.against and len(args.against) != len(args.runs):
        parser.error(f"--against needs one run per RUN ({len(args.runs)}), got {len(args.against)}")
    results, rows = {}, {}
    for run_dir in [*args.runs, *args.against]:
        scores, greedy = per_prompt_scores(run_dir, args.prompts)
        rows[run_dir] = row = margin_row(scores)
        for prompt, completion, reference in greedy[:args.show]:
            print(f"  {prompt!r} -> {completion!r} (reference {reference!r})")
        results[str(run_dir)] = row
        print(f"{run_dir} ({args.prompts} prompts): "
              + "; ".join(f"{k} {_cell(v)}" for k, v in row.items()))
    if args.against:
        lines, means = seed_table([rows[r] for r in args.runs], [rows[r] for r in args.against])
        print(f"first: {', '.join(map(str, args.runs))}; second: {', '.join(map(str, args.against))}")
        print("\n".join(lines))
        results["seeds"] = means
    print(json.dumps(results))


if __name__ == "__main__":
    main()
