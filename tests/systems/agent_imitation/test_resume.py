"""Exact resume and seeding of the BabyAI experiments: the environment pool round-trips through a
checkpoint, one seed gives one first checkpoint, a typo fails at load, and a GAIL run killed with
SIGKILL then resumed ends exactly like an uninterrupted one."""

import io
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from protege.core.config import from_dict, to_dict
from protege.core.runs import Run, read_metrics
from protege.rl.ppo import EnvPool
from protege.systems.agent_imitation import experiment, gail
from protege.worlds.babyai.levels import TRAIN_SEED_START, episode_success, make_env
from tests.conftest import kill_after_checkpoint, protege_cmd, protege_env
from tests.core.test_config import assert_one_line_error

LEVEL = "BabyAI-GoToRedBall-v0"
POLICY = {"dim": 16, "n_film": 1}


def pool(n: int, seed: int) -> EnvPool:
    return EnvPool([make_env(LEVEL, max_steps=12) for _ in range(n)], seed, success=episode_success)


def through_checkpoint(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # what Run.restore reads: no pickled objects


def test_the_pool_continues_exactly_after_a_checkpoint():
    rng = np.random.default_rng(0)
    a = pool(3, TRAIN_SEED_START + 7)
    for _ in range(20):  # several episodes of 12 steps end: seeds advance, stats accumulate
        a.step(torch.from_numpy(rng.integers(0, 7, 3)))
    a.state = (torch.randn(1, 3, 4), torch.randn(1, 3, 4))
    b = pool(3, 0)  # other seeds: everything must come from the state
    b.load_state_dict(through_checkpoint(a.state_dict()))
    assert b.next_seed == a.next_seed and b.episode_seeds == a.episode_seeds
    assert torch.equal(b.state[0], a.state[0]) and torch.equal(b.starts, a.starts)
    assert b.finished == a.finished and len(a.finished) >= 3
    for _ in range(30):
        actions = torch.from_numpy(rng.integers(0, 7, 3))
        assert torch.equal(a.step(actions), b.step(actions))
        for x, y in zip(a.obs, b.obs):
            assert np.array_equal(x["image"], y["image"]) and x["direction"] == y["direction"]
            assert x["mission"] == y["mission"]
    assert a.finished == b.finished
    assert np.array_equal(a.ep_return, b.ep_return) and np.array_equal(a.ep_length, b.ep_length)


def test_a_replay_that_misses_the_saved_observation_is_an_error():
    a = pool(1, 5)
    a.step(torch.tensor([2]))
    state = a.state_dict()
    state["obs"][0]["direction"] = (state["obs"][0]["direction"] + 1) % 4
    with pytest.raises(RuntimeError, match="does not reach the saved observation"):
        pool(1, 5).load_state_dict(state)


def offline_config(demos, seed: int):
    return from_dict(experiment.Config, {
        "name": "bc", "level": LEVEL, "demos": str(demos), "n_demos": 30, "lam": 0.1, "seed": seed,
        "policy": POLICY, "trainer": {"steps": 4, "batch_size": 4, "log_every": 2,
                                      "checkpoint_every": 2}, "eval_episodes": 0}, "test")


def gail_config(demos, seed: int):
    return from_dict(gail.Config, {
        "name": "gail", "level": LEVEL, "demos": str(demos), "n_demos": 30, "iterations": 2,
        "disc_steps": 1, "disc_batch": 8, "seed": seed, "policy": POLICY,
        "ppo": {"n_envs": 2, "rollout_steps": 4, "epochs": 1, "minibatches": 1},
        "checkpoint_every": 1, "eval_episodes": 0}, "test")


@pytest.mark.parametrize("make_config", [offline_config, gail_config], ids=["offline", "gail"])
def test_one_seed_gives_one_first_checkpoint(make_config, redball_demos, tmp_path):
    first = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        cfg = make_config(redball_demos, seed)
        module = experiment if isinstance(cfg, experiment.Config) else gail
        module.run(cfg, Run(tmp_path / name, to_dict(cfg)))
        path = sorted((tmp_path / name / "checkpoints").glob("step-*"))[0]
        first[name] = load_file(str(path / "model.safetensors"))
    for key in first["a"]:
        assert torch.equal(first["a"][key], first["b"][key]), key
    assert any(not torch.equal(first["a"][k], first["c"][k]) for k in first["a"])


def test_typos_fail_in_one_line_before_any_run_directory(cli, tmp_path):
    assert_one_line_error(*cli("run", "babyai_gail", "reward=gial"), "reward", "gail", "airl")
    assert_one_line_error(*cli("run", "babyai_gail", "ppo.minibatches=16"), "minibatches")
    assert_one_line_error(*cli("run", "babyai_bc", "level=BabyAI-GoToRedBal-v0"),
                          "BabyAI-GoToRedBall-v0")
    assert_one_line_error(*cli("run", "babyai_bc", "gamma=1.5"), "gamma", "[0, 1]")
    assert not (tmp_path / "runs").exists()


GAIL = ["iterations=60", "disc_steps=1", "disc_batch=16", "n_demos=50", "init_from=", "policy.dim=16",
        "policy.n_film=1", "ppo.n_envs=2", "ppo.rollout_steps=8", "ppo.epochs=1", "ppo.minibatches=1",
        "checkpoint_every=1", "eval_episodes=0", "seed=2"]


def straight_killed_and_resumed(recipe: str, overrides: list[str], tmp_path, kill_at: str):
    """Run `recipe` uninterrupted (runs/straight) and once more killed with SIGKILL after checkpoint
    `kill_at`, then resumed (runs/killed); returns both run directories."""
    def command(name, *extra):
        return protege_cmd("run", recipe, f"name={name}", *overrides, *extra)

    def finish(cmd):
        proc = subprocess.run(cmd, cwd=tmp_path, env=protege_env(), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr

    finish(command("straight"))
    kill_after_checkpoint(command("killed"), tmp_path / "runs" / "killed", tmp_path, kill_at)
    finish(command("killed", "--resume"))
    return tmp_path / "runs" / "straight", tmp_path / "runs" / "killed"


def same_weights(a_dir, b_dir, step: str) -> bool:
    a = load_file(str(a_dir / "checkpoints" / step / "model.safetensors"))
    b = load_file(str(b_dir / "checkpoints" / step / "model.safetensors"))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(redball_demos, tmp_path):
    straight, killed = straight_killed_and_resumed("babyai_gail", [f"demos={redball_demos}", *GAIL],
                                                   tmp_path, "step-00000020")
    assert same_weights(straight, killed, "step-00000060")
    sa = torch.load(straight / "checkpoints" / "step-00000060" / "state.pt", weights_only=True)
    sb = torch.load(killed / "checkpoints" / "step-00000060" / "state.pt", weights_only=True)
    assert all(torch.equal(sa["disc"][k], sb["disc"][k]) for k in sa["disc"])
    assert sa["pool"]["episode_seeds"] == sb["pool"]["episode_seeds"]
    rows = read_metrics(straight, wall_clock=False)
    assert len(rows) == 60 and any("charts/success_rate" in r for r in rows)
    assert rows == read_metrics(killed, wall_clock=False)


BC = ["trainer.steps=300", "trainer.batch_size=8", "trainer.log_every=10", "trainer.checkpoint_every=20",
      "n_demos=50", "policy.dim=16", "policy.n_film=1", "eval_episodes=0", "seed=1"]


@pytest.mark.slow
def test_offline_sigkill_then_resume_equals_uninterrupted_run(redball_demos, tmp_path):
    """babyai_offline (BC / IQ-Learn through the shared offline loop) killed and resumed."""
    straight, killed = straight_killed_and_resumed("babyai_iqlearn", [f"demos={redball_demos}", *BC],
                                                   tmp_path, "step-00000100")
    assert same_weights(straight, killed, "step-00000300")
    rows = read_metrics(straight, wall_clock=False)
    assert len(rows) >= 30 and rows == read_metrics(killed, wall_clock=False)
