"""Benchmark: BC and offline IQ-Learn training throughput on BabyAI demonstrations (CPU, 1 thread).

    frames/s = real (unpadded) demonstration steps per second through forward, backward and Adam.

    PYTHONPATH=src .venv/bin/python benchmarks/babyai_train.py --steps 30

Forward and backward run in the precision `--precision` resolves to (`auto`: bfloat16 autocast only on a
CPU with native bfloat16, as `protege.rl.fit` does). The last line printed is one JSON object; it says
where it ran (`protege.core.precision.machine_info`).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from protege.core.precision import machine_info, resolve_precision
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
from protege.systems.agent_imitation.offline import make_batch, sequence_loss
from protege.worlds.babyai.demos import DemoConfig, generate_demos, load_demos


def frames_per_s(demos, lam: float, steps: int, batch: int, dim: int, bf16: bool) -> float:
    torch.manual_seed(0)
    model = BabyAIPolicy(PolicyConfig(dim=dim))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    frames, elapsed = 0, 0.0
    for step in range(steps + 3):  # the first 3 steps warm up and are not timed
        b = make_batch(demos, rng.choice(len(demos), batch))
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = sequence_loss(model, b, lam, 0.99)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 3:
            elapsed += time.perf_counter() - t0
            frames += int(b.mask.sum())
    return frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--level", default="BabyAI-GoToLocal-v0")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        generate_demos(DemoConfig(args.level, 300, Path(tmp) / "d", workers=1), progress=False)
        demos = load_demos(Path(tmp) / "d")
    precision = resolve_precision(args.precision)
    bc = frames_per_s(demos, 0.0, args.steps, args.batch, args.dim, precision == "bf16")
    iq = frames_per_s(demos, 0.1, args.steps, args.batch, args.dim, precision == "bf16")
    print(json.dumps({"benchmark": "babyai_train", "level": args.level, "batch_episodes": args.batch,
                      "dim": args.dim, "steps": args.steps, "bc_frames_per_s": round(bc, 1),
                      "iqlearn_frames_per_s": round(iq, 1), **machine_info(precision)}))


if __name__ == "__main__":
    main()
