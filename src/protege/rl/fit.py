"""The offline training loop shared by every learner that trains from a fixed dataset.

`fit` owns the optimiser, the learning-rate schedule, the data order, logging and checkpoints. Its
state is explicit (weights, optimiser, RNG states, step, sampler position), which is what makes a
killed run resume to the same final weights and metrics as an uninterrupted one.

When torch.distributed is initialised (launched by `accelerate launch` or `torchrun`), the model is
wrapped in DistributedDataParallel and each rank takes its slice of every global batch, so a run on
two processes with batch B each equals one process with batch 2B.
"""

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
import torch.distributed as dist

from protege.core.config_help import check_fields
from protege.core.precision import announce, resolve_precision
from protege.core.progress import progress_bar
from protege.core.runs import Run
from protege.core.seeds import rng_state, seed_everything, set_rng_state


@dataclass
class TrainerConfig:
    steps: int = 1000
    """optimiser steps in total"""
    batch_size: int = 32
    """global batch size (examples per optimiser step, summed over processes and accumulation)"""
    lr: float = 3e-4
    """peak learning rate of AdamW (reached after the warm-up)"""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay"""
    warmup_steps: int = 0
    """steps of linear warm-up from lr / warmup_steps to lr (0: no warm-up)"""
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    """learning rate after the warm-up: constant, or cosine/linear decay to lr * min_lr_ratio"""
    min_lr_ratio: float = 0.1
    """the schedule decays to lr * min_lr_ratio"""
    grad_clip: float = 1.0
    """max global gradient norm; 0 disables clipping"""
    grad_accum: int = 1
    """micro-batches per optimiser step (batch_size must divide evenly)"""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """bf16 runs forward and backward under autocast on the model's device (weights and optimiser stay
    fp32); auto: bf16 only where the CPU has native bfloat16, else fp32 (resolved on the CPU when the
    config is built, see protege.core.precision)"""
    log_every: int = 10
    """log the training metrics every this many steps (and at the last step)"""
    checkpoint_every: int = 200
    """save a checkpoint every this many steps; 0 saves only at the end"""

    def __post_init__(self):
        check_fields(self, steps=">=1", batch_size=">=1", grad_accum=">=1", lr=">0",
                     weight_decay=">=0", warmup_steps=">=0", min_lr_ratio="[0,1]", grad_clip=">=0",
                     log_every=">=1", checkpoint_every=">=0")
        self.precision = resolve_precision(self.precision)
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size must be divisible by grad_accum, got batch_size="
                             f"{self.batch_size}, grad_accum={self.grad_accum}")


def learning_rate(cfg: TrainerConfig, step: int) -> float:
    """Linear warm-up, then constant, cosine or linear decay to lr * min_lr_ratio."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay)


class EpochSampler:
    """Deterministic batches: epoch e is permutation(seed + e); the position is (epoch, offset)."""

    def __init__(self, size: int, batch_size: int, seed: int):
        if size < 1:
            raise ValueError("cannot train on an empty dataset")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.epoch, self.offset = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)

    def next_batch(self) -> np.ndarray:
        indices = []
        while len(indices) < self.batch_size:
            if self.offset >= self.size:
                self.epoch, self.offset = self.epoch + 1, 0
                self._order = self._permutation()
            take = self._order[self.offset:self.offset + self.batch_size - len(indices)]
            indices.extend(take.tolist())
            self.offset += len(take)
        return np.asarray(indices)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
        self._order = self._permutation()


def distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not launched as several processes."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def fit(model: torch.nn.Module, loss_fn: Callable, dataset_size: int, make_batch: Callable,
        cfg: TrainerConfig, run: Run, seed: int,
        on_checkpoint: Callable[[int], dict] | None = None) -> dict:
    """Train `model` on `loss_fn(model, make_batch(indices)) -> (loss, metrics)`; returns last metrics.

    `on_checkpoint(step)` may return extra metrics (e.g. an evaluation) logged at checkpoints.
    """
    rank, world = distributed()
    micro = cfg.batch_size // (cfg.grad_accum * world)
    if micro * cfg.grad_accum * world != cfg.batch_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by grad_accum x processes "
                         f"({cfg.grad_accum} x {world})")
    seed_everything(seed + rank)
    bf16 = resolve_precision(cfg.precision) == "bf16"  # resolved at the config's build, unless set since
    if rank == 0:
        announce({"trainer.precision": "bf16" if bf16 else "fp32"})
    # fused AdamW updates all parameters in one kernel: on CPU ~10x faster than the default per-tensor
    # loop (11 ms -> 0.9 ms a step for the 0.9M-parameter GPT-2 of benchmarks/lm_step.py); same maths.
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  fused=fused or None)
    sampler = EpochSampler(dataset_size, cfg.batch_size, seed)
    start = 0
    restored = run.restore()
    if restored is not None:
        start = _restore(model, optimizer, sampler, restored, rank)
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model)
    metrics: dict = {}
    with progress_bar(rank == 0) as progress:
        task = progress.add_task("train", total=cfg.steps, completed=start)
        for step in range(start, cfg.steps):
            # 1. learning rate for this step
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step)
            # 2. forward/backward over this rank's slice of the global batch
            indices = sampler.next_batch()
            t0 = time.perf_counter()
            metrics = _accumulate(train_model, loss_fn, make_batch, indices, rank, micro, cfg, bf16)
            # 3. update
            if cfg.grad_clip > 0:
                metrics["train/grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                                                  cfg.grad_clip))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            metrics["train/lr"] = optimizer.param_groups[0]["lr"]
            metrics["time/step_s"] = time.perf_counter() - t0
            done = step + 1
            # 4. log and checkpoint
            if done % cfg.log_every == 0 or done == cfg.steps:
                run.log(done, metrics)
            if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == cfg.steps:
                if on_checkpoint is not None:
                    extra = on_checkpoint(done)
                    if extra:
                        run.log(done, extra)
                        metrics.update(extra)
                _save(model, optimizer, sampler, run, done)
            progress.update(task, completed=done, description=f"train loss {metrics['train/loss']:.3f}")
    return metrics


def _accumulate(model, loss_fn, make_batch, indices, rank, micro, cfg, bf16: bool) -> dict:
    """Gradients of the mean loss over this rank's micro-batches; returns metrics averaged globally."""
    mine = indices.reshape(-1, micro)[rank * cfg.grad_accum:(rank + 1) * cfg.grad_accum]
    totals: dict = {}
    for i, chunk in enumerate(mine):
        ctx = model.no_sync() if hasattr(model, "no_sync") and i < len(mine) - 1 else _null()
        with ctx, torch.autocast(_device_type(model), dtype=torch.bfloat16, enabled=bf16):
            loss, metrics = loss_fn(model, make_batch(chunk))
            (loss / cfg.grad_accum).backward()
        for key, value in {"train/loss": loss, **metrics}.items():
            totals[key] = totals.get(key, 0.0) + float(torch.as_tensor(value).detach()) / cfg.grad_accum
    _, world = distributed()
    if world > 1:  # average the logged values over ranks so every process logs the same numbers
        keys = sorted(totals)
        packed = torch.tensor([totals[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(packed)
        totals = {k: float(v) / world for k, v in zip(keys, packed)}
    return totals


def _device_type(model) -> str:
    """"cuda" or "cpu": where the model's weights are, which is where autocast must act."""
    return next(model.parameters()).device.type


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _save(model, optimizer, sampler, run: Run, step: int) -> None:
    state = {"optimizer": optimizer.state_dict(), "rng": rng_state(), "sampler": sampler.state_dict()}
    run.save_checkpoint(step, unwrap(model).state_dict(), state)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _restore(model, optimizer, sampler, restored: tuple[dict, dict], rank: int) -> int:
    weights, state = restored
    model.load_state_dict(weights)
    optimizer.load_state_dict(state["optimizer"])
    sampler.load_state_dict(state["sampler"])
    if rank == 0:
        set_rng_state(state["rng"])
    return int(state["step"])
