"""`protege longctx`: recall over an explicit (task x length x depth) grid, scored as RULER scores.

Every sample is drawn from its own seeded stream, checked to fit the model's context (the whole grid
is checked before any generation, so a run never truncates a prompt), answered greedily, and scored
with RULER's per-sample string_match_all / string_match_part. The output folder holds one JSONL of
samples per task (named as lm-evaluation-harness names the task), summary.json, summary.md and one
depth x length heatmap PNG per task.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.eval.recall_report import (
    cell_summary,
    heatmap,
    length_summary,
    markdown_table,
)
from protege.eval.ruler import (
    METRIC,
    SAMPLE_SCORE,
    postprocess_pred,
    sample_match_all,
    sample_match_part,
)
from protege.worlds.text.haystack import check_source
from protege.worlds.text.recall_tasks import guess, make_sample, task_spec

OUTPUT_KIND = "protege.longctx"


@dataclass
class GridConfig:
    tasks: list[str] = field(default_factory=lambda: ["needle_single"])
    """task names (lm-evaluation-harness' RULER names, plus needle_single and needle_multi)"""
    lengths: list[int] = field(default_factory=lambda: [256, 512])
    """prompt lengths in tokens, as the model's tokenizer counts them"""
    depths: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    """needle depths in [0, 1] (tasks with random needle depths ignore them)"""
    samples: int = 4
    """samples per (task, length, depth) cell"""
    seed: int = 0
    """seed of every sample's stream"""
    haystack: str = "foldoc"
    """haystack text: foldoc, jargon, licenses, or a text file / folder of .txt files"""
    needles: int = 3
    """needles of needle_multi"""
    max_new_tokens: int = 0
    """tokens to generate per answer; 0 = RULER's number for the task's family"""
    batch_size: int = 8
    """prompts sent to the model at once"""

    def __post_init__(self):
        check_fields(self, samples=">=1", needles=">=1", max_new_tokens=">=0", batch_size=">=1")
        for name in self.tasks:
            task_spec(name)
        check_source(self.haystack)
        if not self.tasks or not self.lengths:
            raise UserError("give at least one task and one length")
        for n in self.lengths:
            if n < 16:
                raise UserError(f"--lengths: {n} is too short for a prompt (need >= 16 tokens)")
        for d in self.depths:
            if not 0.0 <= d <= 1.0:
                raise UserError(f"--depths: {d} is outside [0, 1] (0 = start of the haystack, 1 = end)")

    def new_tokens(self, task: str) -> int:
        return self.max_new_tokens or task_spec(task).max_new_tokens

    def cells(self, task: str) -> list[tuple[int, float | None]]:
        depths = self.depths if task_spec(task).uses_depth else [None]
        return [(length, depth) for length in self.lengths for depth in depths]


def check_grid(model, cfg: GridConfig) -> None:
    """Refuse, in one line, a grid whose longest prompt plus answer exceeds the model's context."""
    for task in cfg.tasks:
        model.check_fits(max(cfg.lengths), cfg.new_tokens(task), what=f"{task} at length {max(cfg.lengths)}")


def score_row(sample, pred: str) -> dict:
    """A per-sample row: the sample, its prediction, RULER's two per-sample matches and the score
    under the metric RULER uses for the task's family."""
    clean = postprocess_pred(pred)
    metric = METRIC[task_spec(sample.task).family]
    baseline = guess(sample)
    return {"task": sample.task, "index": sample.index, "length": sample.length, "depth": sample.depth,
            "tokens": sample.tokens, "depths": list(sample.depths), "outputs": list(sample.outputs),
            "pred": pred, "metric": metric, "score": SAMPLE_SCORE[metric](clean, list(sample.outputs)),
            "string_match_all": sample_match_all(clean, list(sample.outputs)),
            "string_match_part": sample_match_part(clean, list(sample.outputs)),
            "guess": baseline, "guess_score": SAMPLE_SCORE[metric](baseline, list(sample.outputs)),
            "input": sample.input}


def evaluate(model, cfg: GridConfig, progress=None) -> list[dict]:
    """Per-sample rows of the whole grid, in batches of `cfg.batch_size`. Every sample is built (and
    checked to fit) before the first generation, so a task that cannot be built is refused at once."""
    check_grid(model, cfg)
    suffix = getattr(model, "prompt_suffix", "")
    work = []
    for task in cfg.tasks:
        samples = [make_sample(model.tokenizer, task, i, length, depth, cfg.seed, cfg.haystack, cfg.needles,
                               suffix) for length, depth in cfg.cells(task) for i in range(cfg.samples)]
        for s in samples:
            model.check_fits(s.tokens, cfg.new_tokens(task), what=f"{task} sample {s.index} at length {s.length}")
        work.append((task, samples))
    rows = []
    for task, samples in work:
        for start in range(0, len(samples), cfg.batch_size):
            batch = samples[start:start + cfg.batch_size]
            preds = model.complete([s.input for s in batch], cfg.new_tokens(task))
            rows += [score_row(s, p) for s, p in zip(batch, preds)]
            if progress is not None:
                progress(len(batch))
    return rows


def total_samples(cfg: GridConfig) -> int:
    return sum(len(cfg.cells(t)) * cfg.samples for t in cfg.tasks)


def write_results(folder: Path, rows: list[dict], cfg: GridConfig, model_name: str) -> dict:
    """Per-task JSONL, summary.json, summary.md and a heatmap per task into `folder` (a fresh
    temporary output folder)."""
    cells = cell_summary(rows)
    by_length = length_summary(rows)
    for task in cfg.tasks:
        mine = [r for r in rows if r["task"] == task]
        (folder / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mine))
        heatmap(cells, task, folder / f"{task}.png", f"{task}: {model_name}")
    summary = {"model": model_name, "config": asdict(cfg), "by_length": by_length, "cells": cells}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    about = ("Score: RULER's metric for the task (percent), 95% interval (Wilson for 0/1 scores, else t); "
             "guess: a uniform guess among the prompt's strings of the answer's form (chance level).")
    lines = [f"# Recall of {model_name}", "", about, "", "## By length", "",
             markdown_table(by_length), "", "## By length and depth", "", markdown_table(cells), ""]
    lines += [f"![{t}]({t}.png)" for t in cfg.tasks]
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
    return summary

