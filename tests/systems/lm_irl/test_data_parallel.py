"""Data parallel and gradient accumulation change how a global batch is computed, not what is learnt:
two gloo processes with batch B each log the same losses and end with the same weights as one process
with batch 2B, and one process with 2 accumulated micro-batches equals one un-accumulated batch.

Equality is up to float summation order (the all-reduce and the per-micro-batch means add in another
order), hence allclose with a tight tolerance rather than bitwise equality.
"""

import json
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from protege.systems import start
from tests.conftest import protege_env

# dropout 0: with dropout each rank draws its own masks, so the runs could not match.
TINY = ["task.train_size=200", "task.eval_size=4", "model.n_layer=1", "model.n_embd=32",
        "model.n_head=2", "model.dropout=0.0", "vocab_size=300", "trainer.steps=12",
        "trainer.batch_size=8", "trainer.log_every=1", "trainer.checkpoint_every=0",
        "trainer.warmup_steps=2", "eval.prompts=2", "eval.sample_prompts=1", "eval.samples=2",
        "eval.max_new_tokens=4", "objective.method=iqlearn", "objective.lam=0.1", "threads=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(tmp_path, name, *extra, processes=1):
    """One process trains here (no start-up cost); several are launched by torch.distributed.run."""
    overrides = [f"name={name}", *TINY, *extra]
    run_dir = tmp_path / "runs" / name
    if processes == 1:
        start("lm_arithmetic_mle", overrides, run_dir=run_dir)
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "protege",
               "run", "lm_arithmetic_mle", *overrides]
        proc = subprocess.run(cmd, cwd=tmp_path, env=protege_env(), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    weights = load_file(str(run_dir / "checkpoints" / latest / "model.safetensors"))
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}
    return losses, weights


def assert_same_training(a, b):
    (losses_a, weights_a), (losses_b, weights_b) = a, b
    assert sorted(losses_a) == sorted(losses_b) == list(range(1, 13))
    steps = sorted(losses_a)
    assert torch.allclose(torch.tensor([losses_a[s] for s in steps]),
                          torch.tensor([losses_b[s] for s in steps]), rtol=1e-5, atol=1e-6)
    # the loss must have moved, or equal losses would prove nothing
    assert losses_a[12] < losses_a[1] - 0.1
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.allclose(weights_a[key], weights_b[key], rtol=1e-4, atol=1e-5), key


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, batch 8, no accumulation: the run both tests compare against."""
    return train(tmp_path_factory.mktemp("reference"), "single", "trainer.grad_accum=1")


@pytest.mark.slow  # three processes of torch + transformers start-up: ~20 s on 2 cores
def test_two_gloo_processes_equal_one_process_with_the_global_batch(tmp_path, reference):
    assert_same_training(reference, train(tmp_path, "ddp", processes=2))


def test_gradient_accumulation_equals_one_big_batch(tmp_path, reference):
    assert_same_training(reference, train(tmp_path, "accum", "trainer.grad_accum=2"))
