"""Milliseconds per optimiser step of the same GPT-2-architecture model on the same arithmetic data:
a bare PyTorch MLE loop, our MLE and offline IQLearn through `protege.rl.fit.fit`, and TRL's
`SFTTrainer`; plus greedy generation tokens/s with and without the KV cache.

    PYTHONPATH=src .venv/bin/python benchmarks/lm_step.py [--rounds 3 --steps 25 --warmup 5]

Each measurement runs in its own child process (one process tree, one at a time, one torch thread),
and the variants take turns round after round, so slow phases of a shared machine hit them all alike.
A step's time is the interval between the starts of consecutive steps, so it holds everything the loop
does per step (batching, forward, loss, backward, clipping, optimiser, logging, progress bar); the first
`--warmup` steps of every process are discarded, and the reported number is the median over all the
kept steps of all rounds. Every variant computes in the precision `--precision` resolves to (`auto`:
bfloat16 autocast only where the CPU has native bfloat16, else fp32; see `protege.core.precision`). The
last line printed is one JSON object; it says where it ran (`protege.core.precision.machine_info`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from protege.core.precision import machine_info, resolve_precision

VARIANTS = ("bare", "mle", "iqlearn", "trl_sft")
MODEL = {"n_layer": 4, "n_embd": 128, "n_head": 4, "context": 96}
LR = 3e-3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="times each variant is run, interleaved")
    p.add_argument("--steps", type=int, default=25, help="timed steps per process (after warm-up)")
    p.add_argument("--warmup", type=int, default=5, help="discarded steps per process")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--gen-tokens", type=int, default=64, help="new tokens per prompt when generating")
    p.add_argument("--gen-repeats", type=int, default=3)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="of every variant's forward and backward (auto: bf16 only on a CPU with native bfloat16)")
    p.add_argument("--worker", choices=(*VARIANTS, "generate"), help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ------------------------------------------------------------------ shared set-up (every process)
def prepare(args, workdir: Path) -> None:
    """Task data and BPE tokenizer, made once so that every child trains on identical token ids."""
    from protege.data.tokens import encode
    from protege.nn.tokenizer import train_bpe
    from protege.worlds.text.tasks import TaskConfig, load_task
    data = load_task(TaskConfig(kind="arithmetic", train_size=args.train_size, eval_size=args.batch), 0)
    tokenizer = train_bpe([e.prompt + "\n" + e.completion for e in data.train], args.vocab)
    tokenizer.save_pretrained(str(workdir / "tokenizer"))
    encoded, truncated = encode(data.train, tokenizer, MODEL["context"])
    prompts = [tokenizer(e.prompt + "\n", add_special_tokens=False)["input_ids"] for e in data.eval]
    (workdir / "data.json").write_text(json.dumps({
        "train": [[e.ids, e.prompt_len] for e in encoded], "prompts": prompts, "truncated": truncated}))


def load(workdir: Path):
    from protege.data.tokens import EncodedExample
    from protege.nn.lm import ModelConfig, build_model
    from protege.nn.tokenizer import load_tokenizer
    tokenizer = load_tokenizer(workdir / "tokenizer")
    data = json.loads((workdir / "data.json").read_text())
    encoded = [EncodedExample(ids, n) for ids, n in data["train"]]
    torch.manual_seed(0)
    model = build_model(ModelConfig(**MODEL), len(tokenizer), tokenizer.pad_token_id,
                        tokenizer.eos_token_id)
    return tokenizer, encoded, data["prompts"], model


def clock() -> tuple[float, float]:
    """(wall time, CPU time of this process): on a shared machine the CPU time leaves out the time
    other jobs held the core, so it is the steadier measure of the work a step does."""
    return time.perf_counter(), time.process_time()


def kept_ms(starts: list[tuple[float, float]], warmup: int) -> dict:
    """Step durations (ms, wall and CPU) from the clocks at the starts of consecutive steps."""
    wall = [1000 * (b[0] - a[0]) for a, b in zip(starts, starts[1:])][warmup:]
    cpu = [1000 * (b[1] - a[1]) for a, b in zip(starts, starts[1:])][warmup:]
    return {"step_ms": wall, "cpu_ms": cpu}


# ------------------------------------------------------------------ the measured variants
def run_bare(args, workdir: Path) -> dict:
    """The reference: a plain loop (collate, forward, masked cross-entropy, backward, fused AdamW)."""
    from protege.data.tokens import collate
    from protege.rl.fit import EpochSampler
    tokenizer, encoded, _, model = load(workdir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, fused=True)  # as `fit` and TRL use
    sampler = EpochSampler(len(encoded), args.batch, 0)
    bf16 = resolve_precision(args.precision) == "bf16"
    starts = []
    for _ in range(args.warmup + args.steps + 1):
        starts.append(clock())
        batch = collate([encoded[i] for i in sampler.next_batch()], tokenizer.pad_token_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as `fit` does
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(logits[batch.loss_mask],
                                                     batch.input_ids[:, 1:][batch.loss_mask])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {**kept_ms(starts, args.warmup), "final_loss": loss.item()}


def run_fit(args, workdir: Path, method: str) -> dict:
    """Our learner: `fit` with the lm objective, exactly as `protege run` calls it (recipe defaults)."""
    from protege.core.runs import Run
    from protege.data.tokens import collate
    from protege.rl.fit import TrainerConfig, fit
    from protege.systems.lm_irl.objectives import ObjectiveConfig, objective_loss
    tokenizer, encoded, _, model = load(workdir)
    objective = ObjectiveConfig(method=method, lam=0.01 if method == "iqlearn" else 0.0)
    cfg = TrainerConfig(steps=args.warmup + args.steps + 1, batch_size=args.batch, lr=LR,
                        checkpoint_every=0, precision=args.precision)
    starts = []

    def make_batch(indices):
        starts.append(clock())
        return collate([encoded[i] for i in indices], tokenizer.pad_token_id)

    run = Run(Path(tempfile.mkdtemp(dir=workdir, prefix=f"run-{method}-")), {"method": method})
    metrics = fit(model, lambda m, b: objective_loss(objective, m, b), len(encoded), make_batch,
                  cfg, run, seed=0)
    run.close()
    return {**kept_ms(starts, args.warmup), "final_loss": metrics["train/loss"]}


def run_trl(args, workdir: Path) -> dict:
    """TRL's SFTTrainer on the same model and token ids, set up for a CPU: the resolved precision, no gradient
    checkpointing (TRL's default, which recomputes activations), no eval/saving/logging, no workers,
    completion-only loss, right padding to the longest row like ours (no packing, not padding-free);
    its default optimiser (fused AdamW, as ours) and gradient clipping at 1.0 (as ours)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer
    tokenizer, encoded, _, model = load(workdir)
    dataset = Dataset.from_dict({
        "input_ids": [e.ids for e in encoded],
        "completion_mask": [[0] * e.prompt_len + [1] * (len(e.ids) - e.prompt_len) for e in encoded]})
    config = SFTConfig(
        output_dir=str(workdir / f"trl-{os.getpid()}"), max_steps=args.warmup + args.steps + 1,
        per_device_train_batch_size=args.batch, learning_rate=LR, lr_scheduler_type="cosine",
        bf16=resolve_precision(args.precision) == "bf16", fp16=False, gradient_checkpointing=False, use_cpu=True,
        eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none",
        disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=False,
        max_length=MODEL["context"], packing=False, padding_free=False, completion_only_loss=True,
        seed=0)
    starts = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            starts.append(clock())

    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[StepClock()])
    trainer.train()
    return {**kept_ms(starts, args.warmup), "optim": config.optim}


def run_generate(args, workdir: Path) -> dict:
    """Greedy batched generation of a fixed number of tokens (EOS suppressed by min_new_tokens)."""
    tokenizer, _, prompts, model = load(workdir)
    model.eval()
    tokenizer.padding_side = "left"
    batch = tokenizer.pad({"input_ids": prompts}, return_tensors="pt")
    out = {}
    for cache in (True, False):
        times = []
        for _ in range(args.gen_repeats + 1):  # the first is warm-up
            t0 = time.perf_counter()
            with torch.no_grad():
                model.generate(**batch, max_new_tokens=args.gen_tokens, min_new_tokens=args.gen_tokens,
                               do_sample=False, use_cache=cache, pad_token_id=tokenizer.pad_token_id)
            times.append(time.perf_counter() - t0)
        tokens = len(prompts) * args.gen_tokens
        out["gen_tok_s_cache" if cache else "gen_tok_s_nocache"] = tokens / statistics.median(times[1:])
    return out


def worker(args) -> None:
    torch.set_num_threads(1)
    workdir = Path(args.workdir)
    if args.worker == "bare":
        result = run_bare(args, workdir)
    elif args.worker in ("mle", "iqlearn"):
        result = run_fit(args, workdir, args.worker)
    elif args.worker == "trl_sft":
        result = run_trl(args, workdir)
    else:
        result = run_generate(args, workdir)
    (workdir / f"{args.worker}.json").write_text(json.dumps(result))


# ------------------------------------------------------------------ the parent process
def child(args, workdir: Path, name: str) -> dict:
    """Run one variant in a fresh process; its own output goes to a log file in the work folder."""
    cmd = [sys.executable, __file__, "--worker", name, "--workdir", str(workdir),
           *[f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
             if k not in ("worker", "workdir")]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with open(workdir / f"{name}.log", "a") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed; see {workdir / (name + '.log')}:\n"
                             + (workdir / f"{name}.log").read_text()[-3000:])
    return json.loads((workdir / f"{name}.json").read_text())


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="lm_step-") as tmp:
        workdir = Path(tmp)
        prepare(args, workdir)
        steps = {v: {"step_ms": [], "cpu_ms": []} for v in VARIANTS}
        rounds: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(args.rounds):
            for name in VARIANTS:
                out = child(args, workdir, name)
                for key in ("step_ms", "cpu_ms"):
                    steps[name][key] += out[key]
                rounds[name].append(round(statistics.median(out["step_ms"]), 1))
                print(f"round {r + 1}/{args.rounds} {name}: median {rounds[name][-1]} ms/step wall, "
                      f"{statistics.median(out['cpu_ms']):.1f} CPU", flush=True)
        gen = child(args, workdir, "generate")
        truncated = json.loads((workdir / "data.json").read_text())["truncated"]
    print(json.dumps(summarise(args, steps, rounds, gen, truncated)))


def summarise(args, steps: dict, rounds: dict, gen: dict, truncated: int) -> dict:
    wall = {name: statistics.median(v["step_ms"]) for name, v in steps.items()}
    cpu = {name: statistics.median(v["cpu_ms"]) for name, v in steps.items()}
    return {
        "bare_ms": round(wall["bare"], 1), "mle_ms": round(wall["mle"], 1),
        "iqlearn_ms": round(wall["iqlearn"], 1), "trl_sft_ms": round(wall["trl_sft"], 1),
        "iqlearn_over_mle": round(wall["iqlearn"] / wall["mle"], 3),
        "mle_over_bare": round(wall["mle"] / wall["bare"], 3),
        "iqlearn_over_trl": round(wall["iqlearn"] / wall["trl_sft"], 3),
        "gen_tok_s_cache": round(gen["gen_tok_s_cache"], 1),
        "gen_tok_s_nocache": round(gen["gen_tok_s_nocache"], 1),
        "cpu_ms": {name: round(v, 1) for name, v in cpu.items()},
        "cpu_iqlearn_over_mle": round(cpu["iqlearn"] / cpu["mle"], 3),
        "cpu_mle_over_bare": round(cpu["mle"] / cpu["bare"], 3),
        "cpu_iqlearn_over_trl": round(cpu["iqlearn"] / cpu["trl_sft"], 3),
        "round_medians_ms": rounds, "steps_per_variant": {k: len(v["step_ms"]) for k, v in steps.items()},
        "batch": args.batch, "model": MODEL,
        "vocab": args.vocab, "truncated_examples": truncated, "gen_batch": args.batch,
        "gen_new_tokens": args.gen_tokens, **machine_info(resolve_precision(args.precision)),
        "note": "torch.set_num_threads(1) in every process; the machine is shared with other jobs, "
                "so wall times are noisy (cpu_ms: process CPU time per step); variants alternate "
                "round by round",
    }


if __name__ == "__main__":
    main()
