"""`protege nav train --estimate`: the cost of a training run before it starts.

It does what the run would do -- open the graph, sample the walks, build the scorer -- then times a
few real optimiser steps (forward, backward, clipping, AdamW) on batches of the run's size, and
throws everything away: no run directory, no checkpoint, no embedding cache is written. Pages not
yet encoded are timed on a sample and extrapolated (the scorer is then timed on random unit vectors
of the encoder's width: a step's cost does not depend on their values).
"""

import time
from pathlib import Path

import numpy as np
import torch

from protege.core.seeds import seed_everything, stream_seed
from protege.nn.link_scorer import LinkScorer, bc_loss
from protege.nn.text_encoders import embeddings_path, encode_texts
from protege.worlds.graphs.store import open_graph

SAMPLE_PAGES = 256
"""pages encoded to time an encoder whose embeddings are not cached yet"""


def estimate(cfg, steps: int = 5) -> dict:
    """Seconds per step (median of `steps` timed steps after one untimed) and for the whole run."""
    from protege.systems.wikinav.experiment import batch_maker, make_examples
    seed_everything(cfg.seed)
    torch.set_num_threads(1)  # as the run does
    graph = open_graph(Path(cfg.graph))
    emb, encode_s = _embeddings(graph, cfg.encoder, cfg.seed)
    t0 = time.perf_counter()
    ex = make_examples(graph, cfg)
    walks_s = time.perf_counter() - t0
    model = LinkScorer(emb, cfg.policy)
    step_s = _time_steps(model, batch_maker(graph, ex, cfg), len(ex), cfg.trainer, steps,
                         stream_seed(cfg.seed, "nav/estimate"))
    train_s = step_s * cfg.trainer.steps
    return {"pages": graph.num_nodes, "examples": len(ex), "steps": cfg.trainer.steps,
            "epochs": round(cfg.trainer.steps * cfg.trainer.batch_size / max(len(ex), 1), 3),
            "encode_s": round(encode_s[0], 1),
            "encode_from": f"{encode_s[1]}-page sample" if encode_s[1] else "cache",
            "walks_s": round(walks_s, 2), "step_s": round(step_s, 4), "train_s": round(train_s, 1),
            "total": _clock(encode_s[0] + walks_s + train_s)}


def _embeddings(graph, encoder: str, seed: int) -> tuple[np.ndarray, tuple[float, int]]:
    """(embeddings to time the scorer on, (encoding seconds, pages timed; 0: read from the cache))."""
    from safetensors.numpy import load_file
    path = embeddings_path(graph.folder, encoder)
    if path.exists():
        emb = load_file(str(path))["embeddings"]
        if len(emb) == graph.num_nodes:
            return emb, (0.0, 0)
    texts = graph.texts()
    rng = np.random.default_rng(stream_seed(seed, "nav/estimate-pages"))
    sample = [texts[i] for i in rng.choice(len(texts), min(SAMPLE_PAGES, len(texts)), replace=False)]
    marks = []  # (time, pages) after each batch: the first batch also pays for loading the model
    t0 = time.perf_counter()
    width = encode_texts(sample, encoder,
                         progress=lambda n: marks.append((time.perf_counter(), n))).shape[1]
    if len(marks) >= 2:  # one-off cost once, then the rate of the later batches for the other pages
        rate = (marks[-1][0] - marks[0][0]) / sum(n for _, n in marks[1:])
        seconds = marks[0][0] - t0 + rate * (len(texts) - marks[0][1])
    else:  # no batches (tf-idf fits on all pages at once, superlinearly): a power law t ~ n^a
        first = time.perf_counter() - t0  # fitted on the sample and on 4x as many pages
        more = [texts[i] for i in rng.choice(len(texts), min(4 * len(sample), len(texts)), replace=False)]
        t1 = time.perf_counter()
        encode_texts(more, encoder)
        second = time.perf_counter() - t1
        power = np.log(second / first) / np.log(len(more) / len(sample)) if len(more) > len(sample) else 1.0
        seconds = second * (len(texts) / len(more)) ** float(np.clip(power, 0.5, 2.0))
    emb = rng.standard_normal((graph.num_nodes, width)).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), (seconds, len(sample))


def _time_steps(model, make_batch, size: int, trainer, steps: int, seed: int) -> float:
    """Median seconds of one optimiser step, as `protege.rl.fit.fit` takes it."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=trainer.lr, weight_decay=trainer.weight_decay,
                                  fused=True)
    bf16 = trainer.precision == "bf16"
    times = []
    for _ in range(steps + 1):  # the first step pays one-off costs (allocation, lazy init): untimed
        t0 = time.perf_counter()
        for _ in range(trainer.grad_accum):
            idx = rng.integers(0, size, trainer.batch_size // trainer.grad_accum)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, _ = bc_loss(model, make_batch(idx))
                (loss / trainer.grad_accum).backward()
        if trainer.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def _clock(seconds: float) -> str:
    """`1h 02m 03s` / `4m 05s` / `6s`."""
    s = round(seconds)
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def from_cli(graph: Path, out: Path, **options) -> dict:
    """`protege nav train --estimate`: the run `protege nav train` would start, estimated."""
    from protege.core.registry import resolve
    from protege.systems.wikinav.experiment import RECIPE, cli_overrides
    _, cfg, _ = resolve(str(RECIPE), cli_overrides(graph, out, **options))
    return estimate(cfg)
