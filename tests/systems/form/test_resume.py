"""Exact resume of the control learners: a `protege run` killed with SIGKILL after its first checkpoint
and continued with --resume ends with the same weights (every tensor, bit for bit) and the same
metrics (wall-clock `time/` keys aside) as an uninterrupted run. Plus: a run's seed alone decides it."""

import subprocess

import pytest
import torch
from safetensors.torch import load_file

from protege.core.runs import read_metrics
from tests.conftest import (
    final_weights,
    kill_after_checkpoint,
    protege_cmd,
    protege_env,
)

# short episodes (25 agent steps at action_repeat 4), tiny networks, few demonstrations
TINY = ["time_limit=1.0", "demo_episodes=2", "random_episodes=2", "eval_episodes=1", "loop.steps=300",
        "loop.eval_every=150", "loop.eval_episodes=1", "loop.log_every=25", "loop.checkpoint_every=100",
        "sac.learning_starts=50", "sac.batch_size=32", "sac.hidden=32"]
RECIPES = {
    "sac_cartpole": [],
    # the cache of log p_E and a discriminator step on every other update: state beyond the weights
    "form_cartpole": ["form.hidden=32", "form.expert_steps=50", "form.cache_expert=true"],
    "gail_sa_cartpole": ["gail.hidden=16", "gail.disc_every=2", "gail.gp_batch=16"],
    "bc_control_cartpole": ["bc.steps=1500", "bc.hidden=32", "bc.checkpoint_every=100"],
}
FIRST = {"bc_control_cartpole": "step-00000100"}


def command(recipe: str, name: str, *extra: str) -> list[str]:
    return protege_cmd("run", recipe, f"name={name}", *TINY, *RECIPES[recipe], *extra)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, recipe):
    """12-14 s each on a shared 2-core machine (three process starts, two of them at once)."""
    # the uninterrupted run alongside the one to be killed (two cores)
    straight = subprocess.Popen(command(recipe, "straight"), cwd=tmp_path, env=protege_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed_dir = tmp_path / "runs" / "killed"
    first = FIRST.get(recipe, "step-00000100")
    killed_at = kill_after_checkpoint(command(recipe, "killed"), killed_dir, tmp_path, first)
    _, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err[-2000:]
    assert first <= killed_at < final_name(tmp_path / "runs" / "straight")

    resumed = subprocess.run(command(recipe, "killed", "--resume"), cwd=tmp_path, env=protege_env(),
                             capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a, b = final_weights(tmp_path / "runs" / "straight"), final_weights(killed_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows_a = read_metrics(tmp_path / "runs" / "straight", wall_clock=False)
    rows_b = read_metrics(killed_dir, wall_clock=False)
    assert rows_a == rows_b
    assert any("eval/final_return" in r for r in rows_a)


def final_name(run_dir) -> str:
    return (run_dir / "checkpoints" / "latest").read_text().strip()


def test_same_seed_gives_identical_first_checkpoint(tmp_path):
    """Two runs of one recipe with one seed, in one process (so a network or environment built before
    seeding, or a global generator left advanced by the first run, would show): the first checkpoint's
    weights and training state are identical; another seed gives other weights."""
    from protege.systems import start
    extra = [*TINY, *RECIPES["gail_sa_cartpole"], "loop.steps=120", "loop.eval_every=120"]
    dirs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run_dir, _ = start("gail_sa_cartpole", [*extra, f"seed={seed}", f"name={name}"], run_dir=tmp_path / name)
        dirs.append(run_dir / "checkpoints" / "step-00000100")
    a, b, c = (load_file(str(d / "model.safetensors")) for d in dirs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    state_a, state_b = (torch.load(d / "state.pt", weights_only=True) for d in dirs[:2])
    assert torch.equal(state_a["replay"]["obs"], state_b["replay"]["obs"])
    assert same(state_a, state_b)


def same(x, y) -> bool:
    """Equality of nested training states (tensors compared element-wise, exactly)."""
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and torch.equal(x, y)
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return type(x) is type(y) and len(x) == len(y) and all(same(a, b) for a, b in zip(x, y))
    return x == y
