"""CPU seconds per training step of the demo's model, through transformers' GPT-2 forward (the old
path, `model.train_forward=transformers`) and through `protege.nn.gpt2_plain.train_logits` (the new
default, `model.train_forward=plain`), with the losses of both side by side.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_train_speed.py [--steps 40 --rounds 3 --profile]

The demo's setting exactly: 500 arithmetic examples, BPE of 512, the 4x128 GPT-2 with context 96,
batches of 32 in the demo's order, AdamW at lr 3e-3 after 50 warm-up steps (cosine over 800),
gradient clipping at 1, fp32, one torch thread. A
step is everything `protege.rl.fit` does for it except logging: batch building, forward, loss,
backward, clipping, optimiser. Each round trains both paths from the same initial weights over the
same batches, one after the other (so a busy phase of a shared machine hits both alike); the figure
is the median over rounds of each path's CPU seconds per step (time.process_time). The losses of the
two paths are compared step by step (largest relative difference: float rounding, growing slowly as
the weights drift apart by rounding). The last line printed is one JSON object.
"""

import argparse
import copy
import json
import statistics
import time

import torch

from protege.core.precision import machine_info
from protege.data.tokens import collate, encode
from protege.nn.lm import ModelConfig, build_model
from protege.nn.tokenizer import train_bpe
from protege.rl.fit import EpochSampler, TrainerConfig, learning_rate
from protege.systems.lm_irl.objectives import ObjectiveConfig, objective_loss
from protege.worlds.text.tasks import TaskConfig, load_task

MODEL = ModelConfig(n_layer=4, n_embd=128, n_head=4, context=96)
TRAINER = TrainerConfig(steps=800, batch_size=32, lr=3e-3, warmup_steps=50, schedule="cosine",
                        precision="fp32")  # the demo's recipes (lm_arithmetic_mle / _iqlearn)
PATHS = {"transformers": False, "plain": True}  # model.train_forward -> objective_loss(plain=...)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40, help="timed steps per path and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=["mle", "iqlearn"], choices=["mle", "iqlearn"])
    p.add_argument("--profile", action="store_true",
                   help="also split each path's step by torch.profiler (matmuls, attention, GELU, rest)")
    return p.parse_args(argv)


def setup():
    data = load_task(TaskConfig(kind="arithmetic", train_size=500, eval_size=10), 0)
    tokenizer = train_bpe([e.prompt + "\n" + e.completion for e in data.train], 512)
    encoded, _ = encode(data.train, tokenizer, MODEL.context)
    torch.manual_seed(0)
    model = build_model(MODEL, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    return encoded, tokenizer.pad_token_id, model


def train(model, objective, encoded, pad_id, steps: int, plain: bool) -> tuple[float, list[float]]:
    """(CPU seconds per step, losses) of `steps` steps from `model`'s weights (a copy is trained)."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=TRAINER.lr, fused=True)
    sampler, losses = EpochSampler(len(encoded), TRAINER.batch_size, 0), []
    start = time.process_time()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(TRAINER, step)
        batch = collate([encoded[i] for i in sampler.next_batch()], pad_id)
        loss, _ = objective_loss(objective, model, batch, plain)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return (time.process_time() - start) / steps, losses


GROUPS = {"matmul": ("aten::mm", "aten::addmm"), "attention": ("flash_attention",),
          "gelu": ("aten::gelu", "aten::tanh", "aten::pow")}  # transformers' GELU: its tanh and pow
"""op-name fragments per share of a step; the GELU chain's mul and add stay in "other" (shared names)"""


def profile_split(model, objective, encoded, pad_id, plain: bool, steps: int = 20) -> dict:
    """CPU ms per step by GROUPS (torch.profiler's self time), after 3 unprofiled steps."""
    from torch.profiler import ProfilerActivity, profile
    train(model, objective, encoded, pad_id, 3, plain)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(model, objective, encoded, pad_id, steps, plain)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / steps / 1e3
    split = {g: sum(e.self_cpu_time_total for e in events if any(k in e.key for k in keys)) / steps / 1e3
             for g, keys in GROUPS.items()}
    return {**{k: round(v, 1) for k, v in split.items()}, "other": round(total - sum(split.values()), 1),
            "total": round(total, 1)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    encoded, pad_id, model = setup()
    result = {"machine": machine_info(), "steps": args.steps, "rounds": args.rounds, "methods": {}}
    for method in args.methods:
        objective = ObjectiveConfig(method=method, lam=0.01 if method == "iqlearn" else 0.0)
        seconds = {path: [] for path in PATHS}
        losses = {}
        for _ in range(args.rounds):
            for path, plain in PATHS.items():
                step_s, losses[path] = train(model, objective, encoded, pad_id, args.steps, plain)
                seconds[path].append(step_s)
        median = {path: statistics.median(v) for path, v in seconds.items()}
        rel = [abs(a - b) / abs(b) for a, b in zip(losses["plain"], losses["transformers"])]
        row = {f"{path}_cpu_s_per_step": round(s, 4) for path, s in median.items()}
        row.update({f"{path}_steps_per_cpu_s": round(1 / s, 2) for path, s in median.items()},
                   speedup=round(median["transformers"] / median["plain"], 3),
                   loss_first=[losses["transformers"][0], losses["plain"][0]],
                   loss_last=[losses["transformers"][-1], losses["plain"][-1]],
                   loss_max_rel_diff=float(f"{max(rel):.3g}"),
                   loss_max_rel_diff_first_10=float(f"{max(rel[:10]):.3g}"))
        if args.profile:
            row["profile_ms_per_step"] = {path: profile_split(model, objective, encoded, pad_id, plain)
                                          for path, plain in PATHS.items()}
        result["methods"][method] = row
        print(f"{method}: transformers {median['transformers']:.3f} CPU-s/step, plain "
              f"{median['plain']:.3f} ({row['speedup']:.2f}x); losses differ by at most "
              f"{row['loss_max_rel_diff']:.2g} (relative) over {args.steps} steps", flush=True)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
