"""Benchmark: BC and offline IQ-Learn training throughput on BabyAI demonstrations (CPU, 1 thread
unless `--threads` / `--new-threads` say otherwise), old against new in one run.

    frames/s = real (unpadded) demonstration steps per second through forward, backward and Adam.

    PYTHONPATH=src .venv/bin/python benchmarks/babyai_train.py --steps 30

Four implementations of the same policy and loss, measured in turns on the same batches so that a
neighbour's load falls on all of them alike (`--rounds` turns of `--steps / --rounds` steps each):
  * `padded`: every step of the padded [B, T] batch through the direct convolutions (the code the
    first BabyAI results were trained with, commit cb81fc0; `mask=None`);
  * `masked`: only the real frames through the direct convolutions (`ViewEncoder.winograd = False`,
    the learner before Winograd);
  * `winograd`: only the real frames, convolutions by Winograd F(7x7, 3x3) (`ViewEncoder.cell_table
    = False`, the learner before the cell table);
  * `table`: as `winograd`, the first convolution from the cells' embedding rows, without its input
    transform (`protege.nn.winograd.embedded_conv3x3_7x7`; the default).
All variants use the same optimiser: Adam, or with `--fused-adam` the fused kernel `protege.rl.fit`
uses (its per-step cost is the same for every variant, so it narrows no gap and widens the ratios).
With `--breakdown`, the JSON also says where the new learner's step goes (see `breakdown`).
Wall-clock frames/s is what a run sees; CPU frames/s (process time) is less sensitive to other jobs on
a shared machine. Forward and backward run in the precision `--precision` resolves to (`auto`:
bfloat16 autocast only on a CPU with native bfloat16, as `protege.rl.fit` does; under autocast the
encoder uses the direct convolutions, so there the variants `masked` and `winograd` coincide). The
last line printed is one JSON object; it says where it ran (`protege.core.precision.machine_info`).
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from protege.core.precision import machine_info, resolve_precision
from protege.losses.iqlearn import iqlearn_loss
from protege.nn import babyai_policy
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
from protege.nn.winograd import conv3x3_7x7
from protege.systems.agent_imitation.offline import make_batch
from protege.worlds.babyai.demos import DemoConfig, generate_demos, load_demos

VARIANTS = ("padded", "masked", "winograd", "table")
NEW = "table"


class Learner:
    """One implementation's model and optimiser, trained a few steps at a time; counts frames and time."""

    def __init__(self, variant: str, dim: int, lam: float, bf16: bool, fused: bool, threads: int = 1):
        torch.manual_seed(0)
        self.threads = threads
        self.model = BabyAIPolicy(PolicyConfig(dim=dim))
        self.model.encoder.winograd = variant in ("winograd", "table")
        self.model.encoder.cell_table = variant == "table"
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=fused or None)
        self.variant, self.lam, self.bf16 = variant, lam, bf16
        self.frames, self.wall, self.cpu = 0, 0.0, 0.0

    def train(self, batches, timed: bool) -> None:
        torch.set_num_threads(self.threads)
        for b in batches:
            mask = None if self.variant == "padded" else b.mask
            t0, c0 = time.perf_counter(), time.process_time()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                logits, _, _ = self.model(b.images, b.directions, b.tokens, mask=mask)
                loss, _ = iqlearn_loss(logits, b.actions, b.mask, b.terminal, lam=self.lam, gamma=0.99)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if timed:
                self.wall += time.perf_counter() - t0
                self.cpu += time.process_time() - c0
                self.frames += int(b.mask.sum())


def measure(demos, lam: float, steps: int, rounds: int, batch: int, dim: int, bf16: bool,
            fused: bool, threads: int = 1, new_threads: int = 1) -> dict:
    rng = np.random.default_rng(0)
    learners = [Learner(v, dim, lam, bf16, fused, new_threads if v == NEW else threads) for v in VARIANTS]
    warmup = [make_batch(demos, rng.choice(len(demos), batch)) for _ in range(3)]
    for learner in learners:
        learner.train(warmup, timed=False)
    per_round = max(1, steps // rounds)
    for _ in range(rounds):
        batches = [make_batch(demos, rng.choice(len(demos), batch)) for _ in range(per_round)]
        for learner in learners:  # same batches, in turns
            learner.train(batches, timed=True)
    return {learner.variant: {"frames_per_s": round(learner.frames / learner.wall, 1),
                              "cpu_frames_per_s": round(learner.frames / learner.cpu, 1)} for learner in learners}


def stand_in_conv(x, conv):
    return x + conv.bias


def stand_in_embedded_conv(table, indices, conv):
    x = table[indices].sum(2)
    return x, x + conv.bias


def cpu_ms(fn, repeats: int) -> float:
    c0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - c0) / repeats * 1e3


def breakdown(demos, steps: int, batch: int, dim: int, fused: bool) -> dict:
    """Where the new learner's BC step goes (CPU ms per step): the whole step, and the same step with
    its four convolutions replaced by their bias (everything else), in turns on the same batches;
    then one convolution's forward + backward at the batches' mean frame count, whole and its three
    batched matmuls (the products: forward, gradient of the input, of the weights) alone."""
    rng = np.random.default_rng(2)
    batches = [make_batch(demos, rng.choice(len(demos), batch)) for _ in range(steps)]
    whole, bare = Learner(NEW, dim, 0.0, False, fused), Learner(NEW, dim, 0.0, False, fused)
    for learner in (whole, bare):
        learner.train(batches[:3], timed=False)
    for b in batches:
        whole.train([b], timed=True)
        with mock.patch.object(babyai_policy, "conv3x3_7x7", stand_in_conv), \
                mock.patch.object(babyai_policy, "embedded_conv3x3_7x7", stand_in_embedded_conv):
            bare.train([b], timed=True)
    n = round(whole.frames / steps)
    conv = torch.nn.Conv2d(dim, dim, 3, padding=1)
    x = torch.randn(49, n, dim, requires_grad=True)
    points = torch.randn(81, n, dim, requires_grad=True)
    weights = torch.randn(81, dim, dim, requires_grad=True)
    grad = torch.randn(49, n, dim)
    conv_ms = cpu_ms(lambda: conv3x3_7x7(x, conv).backward(grad), 20)
    products_ms = cpu_ms(lambda: torch.bmm(points, weights).backward(grad.new_ones(81, n, dim)), 20)
    return {"frames_per_step": n, "step_cpu_ms": round(whole.cpu / steps * 1e3, 1),
            "step_without_convolutions_cpu_ms": round(bare.cpu / steps * 1e3, 1),
            "one_convolution_cpu_ms": round(conv_ms, 2), "its_products_cpu_ms": round(products_ms, 2)}


def check_same_function(demos, dim: int) -> dict:
    """Largest |logit_variant - logit_direct| over the real steps of a few batches, relative to the
    largest |logit|, for `winograd` and `table` (same weights: the paths compute the same function)."""
    torch.manual_seed(0)
    model = BabyAIPolicy(PolicyConfig(dim=dim))
    rng, worst = np.random.default_rng(1), {"winograd": 0.0, "table": 0.0}
    with torch.no_grad():
        for _ in range(3):
            b = make_batch(demos, rng.choice(len(demos), 32))
            logits = {}
            for variant, winograd, table in (("direct", False, False), ("winograd", True, False),
                                             ("table", True, True)):
                model.encoder.winograd, model.encoder.cell_table = winograd, table
                logits[variant] = model(b.images, b.directions, b.tokens, mask=b.mask)[0][b.mask]
            for variant, so_far in worst.items():
                gap = (logits[variant] - logits["direct"]).abs().max() / logits["direct"].abs().max()
                worst[variant] = max(so_far, float(gap))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--level", default="BabyAI-GoToLocal-v0")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per implementation and loss")
    parser.add_argument("--rounds", type=int, default=3, help="turns the timed steps are split into")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the earlier variants")
    parser.add_argument("--new-threads", type=int, default=None,
                        help="torch threads of the new learner (default: --threads); compare wall frames/s then")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--fused-adam", action="store_true", help="the fused Adam kernel, as `fit` uses")
    parser.add_argument("--breakdown", action="store_true", help="also: where the new learner's step goes")
    args = parser.parse_args()
    new_threads = args.new_threads or args.threads
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        generate_demos(DemoConfig(args.level, 300, Path(tmp) / "d", workers=1), progress=False)
        demos = load_demos(Path(tmp) / "d")
    precision = resolve_precision(args.precision)
    bf16 = precision == "bf16"
    load = os.getloadavg()[0]
    result = {loss: measure(demos, lam, args.steps, args.rounds, args.batch, args.dim, bf16, args.fused_adam,
                            args.threads, new_threads)
              for loss, lam in (("bc", 0.0), ("iqlearn", 0.1))}
    torch.set_num_threads(args.threads)
    for loss, row in result.items():
        for variant in VARIANTS:
            print(f"{loss:8s} {variant:9s} {row[variant]['frames_per_s']:9.1f} frames/s "
                  f"{row[variant]['cpu_frames_per_s']:9.1f} frames/CPU-s")
    speedup = {}
    for loss, row in result.items():
        for ref in ("winograd", "masked", "padded"):
            speedup[f"{loss}_vs_{ref}"] = round(row[NEW]["frames_per_s"] / row[ref]["frames_per_s"], 2)
            speedup[f"{loss}_vs_{ref}_cpu"] = round(row[NEW]["cpu_frames_per_s"] / row[ref]["cpu_frames_per_s"], 2)
    print(json.dumps({"benchmark": "babyai_train", "level": args.level, "batch_episodes": args.batch,
                      "dim": args.dim, "steps": args.steps, "rounds": args.rounds,
                      "fused_adam": args.fused_adam, "threads": args.threads, "new_threads": new_threads,
                      "bc_frames_per_s": result["bc"][NEW]["frames_per_s"],
                      "iqlearn_frames_per_s": result["iqlearn"][NEW]["frames_per_s"],
                      "variants": result, "speedup": speedup,
                      "logits_rel_diff_vs_direct": check_same_function(demos, args.dim),
                      **({"breakdown": breakdown(demos, args.steps, args.batch, args.dim, args.fused_adam)}
                         if args.breakdown else {}),
                      "load_avg_1min": {"start": round(load, 2), "end": round(os.getloadavg()[0], 2)},
                      **machine_info(precision)}))


if __name__ == "__main__":
    main()
