"""A run killed with SIGKILL mid-way and resumed ends with the same weights and metrics as an
uninterrupted run (RNG states and the data position are restored, not only the weights)."""

import subprocess

import pytest

from protege.core.runs import read_metrics
from tests.conftest import (
    final_weights,
    kill_after_checkpoint,
    protege_cmd,
    protege_env,
)

TINY = ["task.train_size=300", "task.eval_size=10", "model.n_layer=1", "model.n_embd=32",
        "model.n_head=2", "vocab_size=300", "trainer.steps=60", "trainer.batch_size=8",
        "trainer.checkpoint_every=4", "trainer.log_every=2", "eval.prompts=4", "eval.sample_prompts=2",
        "eval.samples=2", "eval.max_new_tokens=16", "objective.method=iqlearn", "objective.lam=0.1",
        "model.dropout=0.1"]


def run(tmp_path, name, *extra):
    return subprocess.run(protege_cmd("run", "lm_arithmetic_mle", f"name={name}", *TINY, *extra),
                          cwd=tmp_path, env=protege_env(), capture_output=True, text=True, timeout=600)


def metric_rows(run_dir):
    return read_metrics(run_dir, wall_clock=False)


@pytest.mark.slow  # two runs of 60 steps and a killed one: ~35 s on 2 busy cores
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    reference = run(tmp_path, "straight")
    assert reference.returncode == 0, reference.stderr

    killed_dir = tmp_path / "runs" / "killed"
    killed_at = kill_after_checkpoint(protege_cmd("run", "lm_arithmetic_mle", "name=killed", *TINY),
                                      killed_dir, tmp_path, "step-00000012")
    assert killed_at < "step-00000060"

    resumed = run(tmp_path, "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr

    a, b = final_weights(tmp_path / "runs" / "straight"), final_weights(killed_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key
    straight_rows, resumed_rows = metric_rows(tmp_path / "runs" / "straight"), metric_rows(killed_dir)
    assert straight_rows == resumed_rows


def test_resume_of_unknown_run_is_a_clear_error(cli):
    code, out = cli("run", "lm_arithmetic_mle", "name=nothing", "--resume")
    assert code != 0 and "no run to resume" in out and "Traceback" not in out
