"""`protege run` experiment "rope_retrieval": train the rotary built-in (llama) from scratch on synthetic
key-value retrieval at length L, then measure recall at L, 2L and 4L with and without RoPE scaling.

A sequence is BOS, a haystack of random filler tokens holding a few needles `NEEDLE key value` (keys
distinct), then `QUERY key` for each needle and the value to recall. Training queries every needle (in
random order); evaluation hides one needle at a chosen depth, queries it alone, and counts the greedy
answer. The vocabulary is synthetic (no tokenizer): filler, keys and values are disjoint token ranges.
Every sample is drawn from its own generator, seeded by (seed, index), so the data order resumes exactly.
"""

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from protege.core.atomic import write_json_atomic, write_text_atomic
from protege.core.config_help import check_fields
from protege.core.progress import progress_bar
from protege.core.runs import Run
from protege.core.seeds import seed_everything
from protege.eval.stats import wilson_interval
from protege.losses.mle import mle_loss
from protege.nn.lm import (
    ModelConfig,
    build_model,
    parameter_count,
    save_lm,
    with_rope_scaling,
)
from protege.nn.moe import is_moe
from protege.rl.fit import TrainerConfig, fit, unwrap
from protege.rl.moe import router_terms

PAD, BOS, NEEDLE, QUERY = 0, 1, 2, 3
SCALINGS = ("none", "linear", "dynamic", "yarn")
EVAL_STREAM = 1 << 40
"""evaluation samples are drawn from indices past this one, never seen in training"""


def _rotary_model() -> ModelConfig:
    return ModelConfig(arch="llama", n_layer=2, n_embd=64, n_head=4, context=256)


@dataclass
class Config:
    name: str = "rope-retrieval"
    """run name: the run directory is runs_dir/name"""
    seed: int = 0
    """seeds the initial weights, the training samples and the evaluation samples"""
    runs_dir: str = "runs"
    """folder that holds the run directories"""
    threads: int = 0
    """torch CPU threads (0 keeps torch's default)"""
    filler: int = 64
    """distinct filler tokens in the haystack"""
    keys: int = 64
    """distinct needle keys"""
    values: int = 64
    """distinct needle values"""
    max_needles: int = 4
    """training sequences hold 1..max_needles needles (fewer when a short sequence has no room)"""
    end_needle_frac: float = 0.0
    """fraction of training sequences whose last needle sits right before the queries (depth 1): without
    it that position is rare in training and the token before a query is usually an answered pair, so a
    model learns to skip a value just behind the query (0.93 recall at depth 1, docs/results/rope_retrieval.md)"""
    min_length: int = 32
    """each training batch has one length, drawn uniformly from min_length to model.context: short
    haystacks (few distractors) make the retrieval circuit form sooner; 0 trains at model.context only"""
    eval_needles: list[int] = field(default_factory=lambda: [1, 4])
    """needles per evaluation sequence, one grid per count (one needle, at the chosen depth, is queried)"""
    eval_samples: int = 100
    """evaluation sequences per (length, depth, scaling) cell"""
    eval_depths: int = 5
    """depths of the queried needle, evenly spaced from 0 (start of the haystack) to 1 (end)"""
    eval_multiples: list[int] = field(default_factory=lambda: [1, 2, 4])
    """evaluation lengths as multiples of the trained length model.context"""
    model: ModelConfig = field(default_factory=_rotary_model)
    """the decoder (model.context is the trained length L); arch llama or mixtral (rotary positions)"""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """the training loop: steps, batch, optimiser, schedule, logging, checkpoints"""

    def __post_init__(self):
        check_fields(self, name="nonempty", runs_dir="nonempty", seed=">=0", threads=">=0", filler=">=1",
                     keys=">=1", values=">=1", max_needles=">=1", end_needle_frac="[0,1]", min_length=">=0", eval_samples=">=1",
                     eval_depths=">=1")
        if not self.eval_needles or min(self.eval_needles) < 1:
            raise ValueError(f"eval_needles must be a non-empty list of integers >= 1, got {self.eval_needles}")
        if self.model.arch not in ("llama", "mixtral"):
            raise ValueError(f"model.arch must be llama or mixtral (rotary positions), got {self.model.arch!r}")
        if max(self.max_needles, *self.eval_needles) > self.keys:
            raise ValueError(f"max_needles and eval_needles must be <= keys ({self.keys}): keys are distinct")
        if self.model.context < 6 * max(self.max_needles, *self.eval_needles) + 4:
            raise ValueError(f"model.context {self.model.context} is too short for the needles and queries")
        if self.min_length and not 10 <= self.min_length <= self.model.context:
            raise ValueError(f"min_length must be 0 or in [10, model.context={self.model.context}], "
                             f"got {self.min_length}")
        if not self.eval_multiples or min(self.eval_multiples) < 1:
            raise ValueError(f"eval_multiples must be a non-empty list of integers >= 1, got {self.eval_multiples}")


def vocab_size(cfg: Config) -> int:
    return 4 + cfg.filler + cfg.keys + cfg.values


def make_sequence(cfg: Config, rng: np.random.Generator, length: int, needles: int,
                  depth: float | None, end_needle: bool = False) -> tuple[list[int], list[int]]:
    """(tokens, answer positions): `length` tokens; answers at the positions after each `QUERY key`.
    depth None: every needle at a random place, all queried (with `end_needle`, the last needle right
    before the queries); else needle 0 at `depth`, queried alone."""
    keys = 4 + cfg.filler + rng.choice(cfg.keys, size=needles, replace=False)
    values = 4 + cfg.filler + cfg.keys + rng.integers(0, cfg.values, size=needles)
    queried = rng.permutation(needles) if depth is None else np.array([0])
    body_len = length - 1 - 3 * len(queried)
    slots = body_len - 3 * needles  # filler tokens around the needles
    body = list(4 + rng.integers(0, cfg.filler, size=slots))
    # insertion points among the filler, sorted from the end so earlier points stay valid
    points = rng.integers(0, slots + 1, size=needles)
    if depth is not None:
        points[0] = round(depth * slots)
    elif end_needle:
        points[int(np.argmax(points))] = slots
    for i in sorted(range(needles), key=lambda i: (-points[i], i)):
        body[points[i]:points[i]] = [NEEDLE, int(keys[i]), int(values[i])]
    tokens, answers = [BOS] + body, []
    for i in queried:
        tokens += [QUERY, int(keys[i]), int(values[i])]
        answers.append(len(tokens) - 1)
    return tokens, answers


def batch_length(cfg: Config, indices) -> int:
    """One length per batch, a function of the batch's first index (so a resumed run draws the same)."""
    if not cfg.min_length:
        return cfg.model.context
    rng = np.random.default_rng([cfg.seed, 1 << 41, int(indices[0])])
    return int(rng.integers(cfg.min_length, cfg.model.context + 1))


def training_batch(cfg: Config, indices) -> tuple[torch.Tensor, torch.Tensor]:
    length = batch_length(cfg, indices)
    most = max(1, min(cfg.max_needles, (length - 4) // 6))  # each needle: 3 tokens + 3 of query
    rows, mask = [], torch.zeros(len(indices), length, dtype=torch.bool)
    for row, index in enumerate(indices):
        rng = np.random.default_rng([cfg.seed, int(index)])
        needles = int(rng.integers(1, most + 1))
        # drawn only when asked, so runs without it see the same sequences as before the option existed
        end_needle = cfg.end_needle_frac > 0 and rng.random() < cfg.end_needle_frac
        tokens, answers = make_sequence(cfg, rng, length, needles, None, end_needle)
        rows.append(tokens)
        mask[row, answers] = True
    return torch.tensor(rows), mask


def answer_loss(cfg: Config, model, batch) -> tuple[torch.Tensor, dict]:
    """Next-token cross-entropy at the answer positions only (the haystack itself is unpredictable);
    a mixture-of-experts model adds its router terms (balancing as model.moe says, z-loss)."""
    tokens, mask = batch
    logits = model(input_ids=tokens).logits[:, :-1]
    loss, metrics = mle_loss(logits, tokens[:, 1:], mask[:, 1:])
    hits = (logits.argmax(-1) == tokens[:, 1:])[mask[:, 1:]]
    metrics = {**metrics, "train/recall": hits.float().mean().detach()}
    if is_moe(unwrap(model)):
        extra, router_metrics = router_terms(unwrap(model), cfg.model.moe, None)
        loss, metrics = loss + extra, {**metrics, **router_metrics}
    return loss, metrics


@torch.no_grad()
def recall(cfg: Config, model, length: int, depth: float, needles: int, cell: int, batch: int = 25) -> int:
    """Correct answers over cfg.eval_samples sequences of `length` holding `needles` needles, the queried
    one at `depth`."""
    model.eval()
    correct = 0
    for start in range(0, cfg.eval_samples, batch):
        rows, answers = [], []
        for i in range(start, min(start + batch, cfg.eval_samples)):
            rng = np.random.default_rng([cfg.seed, EVAL_STREAM + cell, i])
            tokens, (answer,) = make_sequence(cfg, rng, length, needles, depth)
            rows.append(tokens)
            answers.append(answer)
        tokens = torch.tensor(rows)
        logits = model(input_ids=tokens).logits
        at = torch.tensor(answers)
        guess = logits[torch.arange(len(rows)), at - 1].argmax(-1)
        correct += int((guess == tokens[torch.arange(len(rows)), at]).sum())
    model.train()
    return correct


def depths(cfg: Config) -> list[float]:
    return [i / max(1, cfg.eval_depths - 1) for i in range(cfg.eval_depths)]


def recall_grid(cfg: Config, model) -> list[dict]:
    """Recall per (needles, scaling, length, depth): scalings only past L, with factor = length / L."""
    trained, rows = cfg.model.context, []
    cells = [(s, m) for m in cfg.eval_multiples for s in (SCALINGS if m > 1 else ("none",))]
    with progress_bar(True) as progress:
        task = progress.add_task("recall grid", total=len(cells) * cfg.eval_depths * len(cfg.eval_needles))
        for scaling, multiple in cells:
            scaled = with_rope_scaling(model, scaling, float(max(multiple, 1)), trained) if multiple > 1 else model
            for needles in cfg.eval_needles:
                for d, depth in enumerate(depths(cfg)):
                    hits = recall(cfg, scaled, trained * multiple, depth, needles,
                                  cell=needles * 100_000 + multiple * 1000 + d)
                    low, high = wilson_interval(hits, cfg.eval_samples)
                    rows.append({"needles": needles, "scaling": scaling, "length": trained * multiple,
                                 "multiple": multiple, "depth": depth, "recall": hits / cfg.eval_samples,
                                 "low": low, "high": high, "n": cfg.eval_samples})
                    progress.advance(task)
    return rows


def grid_table(rows: list[dict]) -> str:
    """Markdown: one line per (needles, scaling, length), recall [95% Wilson] per depth, then the mean."""
    depth_list = sorted({r["depth"] for r in rows})
    head = "| needles | scaling | length | " + " | ".join(f"depth {d:.2f}" for d in depth_list) + " | mean |"
    lines = [head, "|" + "---|" * (len(depth_list) + 4)]
    for key in dict.fromkeys((r["needles"], r["scaling"], r["length"]) for r in rows):
        cells = [r for r in rows if (r["needles"], r["scaling"], r["length"]) == key]
        values = [f"{r['recall']:.2f} [{r['low']:.2f}, {r['high']:.2f}]" for r in cells]
        mean = sum(r["recall"] for r in cells) / len(cells)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(values) + f" | {mean:.3f} |")
    return "\n".join(lines) + "\n"


def plot_grid(rows: list[dict], path) -> None:
    """Depth x length heatmaps of recall, one row per needle count, one column per scaling (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from protege.core.atomic import atomic_path
    lengths = sorted({r["length"] for r in rows})
    depth_list = sorted({r["depth"] for r in rows})
    counts = sorted({r["needles"] for r in rows})
    fig, axes = plt.subplots(len(counts), len(SCALINGS), figsize=(3.2 * len(SCALINGS), 2.6 * len(counts)),
                             sharey=True, squeeze=False)
    for row_axes, needles in zip(axes, counts):
        for ax, scaling in zip(row_axes, SCALINGS):
            grid = np.full((len(lengths), len(depth_list)), np.nan)
            for r in rows:  # at L every scaling is the plain model
                if r["needles"] == needles and (r["scaling"] == scaling or r["multiple"] == 1):
                    grid[lengths.index(r["length"]), depth_list.index(r["depth"])] = r["recall"]
            ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
            for (i, j), value in np.ndenumerate(grid):
                if not np.isnan(value):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if value > 0.5 else "white")
            ax.set_xticks(range(len(depth_list)), [f"{d:.2f}" for d in depth_list], fontsize=7)
            ax.set_yticks(range(len(lengths)), [str(n) for n in lengths], fontsize=7)
            ax.set_title(f"{needles} needle(s), rope {scaling}", fontsize=8)
            ax.set_xlabel("needle depth", fontsize=7)
        row_axes[0].set_ylabel("length (tokens)", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def summarise(cfg: Config, rows: list[dict]) -> dict:
    """Per needle count: the worst and mean recall over depths at L; the mean at each multiple x scaling."""
    summary = {"trained_length": cfg.model.context}
    for needles in cfg.eval_needles:
        mine = [r for r in rows if r["needles"] == needles]
        at_length = [r["recall"] for r in mine if r["multiple"] == 1]
        if at_length:
            summary[f"n{needles}_recall_at_L_min_over_depths"] = min(at_length)
            summary[f"n{needles}_recall_at_L_mean"] = sum(at_length) / len(at_length)
        for multiple in sorted(set(cfg.eval_multiples) - {1}):
            for scaling in SCALINGS:
                cell = [r["recall"] for r in mine if r["multiple"] == multiple and r["scaling"] == scaling]
                summary[f"n{needles}_recall_{multiple}L_{scaling}"] = sum(cell) / len(cell)
    return summary


def run(cfg: Config, run: Run) -> dict:
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = build_model(cfg.model, vocab_size(cfg), PAD, BOS)
    if run.latest_checkpoint() is None:
        run.log(0, {"model/parameters": parameter_count(model)})
    trained = cfg.model.context

    def check_recall(step: int) -> dict:
        found = {}
        for needles in cfg.eval_needles:
            hits = sum(recall(cfg, model, trained, d, needles, cell=needles * 100_000 + 1000 + i)
                       for i, d in enumerate(depths(cfg)))
            found[f"eval/recall_at_L_n{needles}"] = hits / (cfg.eval_samples * cfg.eval_depths)
        return found

    fit(model, lambda m, b: answer_loss(cfg, m, b), cfg.trainer.steps * cfg.trainer.batch_size,
        lambda idx: training_batch(cfg, idx), cfg.trainer, run, cfg.seed, on_checkpoint=check_recall)
    save_lm(model, run.dir / "model")
    rows = recall_grid(cfg, model)
    write_json_atomic(run.dir / "recall_grid.json", rows)
    write_text_atomic(run.dir / "recall_grid.md", grid_table(rows))
    plot_grid(rows, run.dir / "recall_grid.png")
    summary = summarise(cfg, rows)
    run.log(cfg.trainer.steps, {f"final/{k}": v for k, v in summary.items()})
    print(json.dumps(summary))
    return summary
