"""Equal results: the BabyAI BC learner trained with the direct convolutions (the reference) and with
a faster path (`winograd`: Winograd's convolutions; `table`: the same with the first convolution from
the cells' embedding rows, the default), from the same seeds on the same batches, then evaluated on
the same held-out episodes. They compute the same function; only float32 rounding differs, so the
training curves should agree to within the drift such rounding causes, and success within its
intervals.

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/babyai_equal_results.py \\
        --demos data/babyai/PickupLoc --level BabyAI-PickupLoc-v0 --seeds 0 1 --steps 400 --new table

Each run is the `babyai_bc` recipe's experiment (`protege run babyai_bc`: lr 1e-3 cosine, 20 warm-up
steps, 32 episodes a step, width 64) with evaluation in-process so the reference's episodes are also
played with direct convolutions. With `--same-batches`, no training: the loss and every gradient of
one policy on the same real batches by each path, against the direct path in float64. The last line
printed is one JSON object.
"""

import argparse
import copy
import json
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

from protege.core.precision import machine_info
from protege.core.runs import Run, read_metrics
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig, ViewEncoder
from protege.rl.fit import TrainerConfig
from protege.systems.agent_imitation.experiment import Config, run
from protege.systems.agent_imitation.offline import make_batch, sequence_loss
from protege.worlds.babyai.demos import load_demos

VARIANTS = {"direct": (False, False), "winograd": (True, False), "table": (True, True)}


def train(args, seed: int, variant: str, root: Path) -> dict:
    # the class defaults, so the evaluation's fresh models follow them
    ViewEncoder.winograd, ViewEncoder.cell_table = VARIANTS[variant]
    name = f"{variant}-s{seed}"
    config = Config(name=name, seed=seed, level=args.level, demos=args.demos, n_demos=args.n_demos,
                    policy=PolicyConfig(dim=64, n_film=2),
                    trainer=TrainerConfig(steps=args.steps, batch_size=32, lr=1e-3, warmup_steps=20,
                                          schedule="cosine", grad_clip=1.0, precision="fp32",
                                          log_every=args.log_every, checkpoint_every=0),
                    eval_episodes=args.eval_episodes, eval_workers=1)
    r = Run(root / name, {"seed": seed, "variant": variant})
    t0 = time.perf_counter()
    summary = run(config, r)
    seconds = time.perf_counter() - t0
    losses = {row["step"]: row["train/loss"] for row in read_metrics(r.dir) if "train/loss" in row}
    return {"losses": losses, "seconds": round(seconds, 1), "success": summary["eval/success"],
            "success_lo": summary["eval/success_lo"], "success_hi": summary["eval/success_hi"]}


def same_batches(args, batches: int = 5) -> dict:
    """Loss and gradients of one policy (seed 0, width 64) on `batches` real BC batches of the demos,
    by each path in float32, against the direct path in float64 (the exact function): per batch, the
    loss gap and the largest relative gradient gap over the parameters (|g - g64| / |g64|)."""
    demos = load_demos(Path(args.demos))
    torch.manual_seed(0)
    model = BabyAIPolicy(PolicyConfig(dim=64, n_film=2))
    exact = copy.deepcopy(model).double()
    exact.encoder.winograd = False
    rng = np.random.default_rng(0)
    gaps = {v: {"loss": [], "grad": []} for v in VARIANTS}
    for _ in range(batches):
        batch = make_batch(demos, rng.choice(min(len(demos), args.n_demos or len(demos)), 32))
        ref_loss, ref_grads = loss_and_grads(exact, batch)
        for variant, (winograd, table) in VARIANTS.items():
            model.encoder.winograd, model.encoder.cell_table = winograd, table
            loss, grads = loss_and_grads(model, batch)
            gap = max(float((g.double() - r).norm() / r.norm()) for g, r in zip(grads, ref_grads))
            gaps[variant]["loss"].append(float(f"{abs(loss - ref_loss):.2g}"))
            gaps[variant]["grad"].append(float(f"{gap:.2g}"))
    return gaps


def loss_and_grads(model, batch):
    model.zero_grad()
    loss, _ = sequence_loss(model, batch, 0.0, 0.99)
    loss.backward()
    return float(loss), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demos", default="data/babyai/PickupLoc")
    parser.add_argument("--level", default="BabyAI-PickupLoc-v0")
    parser.add_argument("--n-demos", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--eval-episodes", type=int, default=300)
    parser.add_argument("--new", choices=("winograd", "table"), default="table",
                        help="the path compared with direct")
    parser.add_argument("--same-batches", action="store_true",
                        help="only compare losses and gradients on the same batches (no training)")
    args = parser.parse_args()
    if args.same_batches:
        print(json.dumps({"benchmark": "babyai_equal_results", "demos": args.demos,
                          "same_batches_vs_direct_float64": same_batches(args), **machine_info("fp32")}))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            out = {v: train(args, seed, v, Path(tmp)) for v in ("direct", args.new)}
            ref, new = out["direct"]["losses"], out[args.new]["losses"]
            steps = sorted(set(ref) & set(new))
            row = {"seed": seed, "max_abs_loss_diff": max(abs(ref[s] - new[s]) for s in steps),
                   "mean_abs_loss_diff": sum(abs(ref[s] - new[s]) for s in steps) / len(steps),
                   # the scale of the curve's own noise: the mean change of the loss between logged steps
                   "mean_abs_loss_change": sum(abs(ref[b] - ref[a]) for a, b in pairwise(steps)) / (len(steps) - 1),
                   "first_step_loss_diff": abs(ref[steps[0]] - new[steps[0]]),
                   **{f"{v}_{k}": o[k] for v, o in out.items() for k in ("success", "success_lo", "success_hi",
                                                                          "seconds")},
                   "direct_final_loss": ref[steps[-1]], f"{args.new}_final_loss": new[steps[-1]],
                   "curves": {"step": steps, "direct": [ref[s] for s in steps], args.new: [new[s] for s in steps]}}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "curves"}), flush=True)
    print(json.dumps({"benchmark": "babyai_equal_results", "level": args.level, "n_demos": args.n_demos,
                      "new": args.new, "steps": args.steps, "eval_episodes": args.eval_episodes, "runs": rows,
                      **machine_info("fp32")}))


if __name__ == "__main__":
    main()
