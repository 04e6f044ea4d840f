"""`protege nav train`: seeded before the scorer is built, checkpoints in short runs, and a run
killed with SIGKILL then resumed ends exactly like an uninterrupted one."""

import subprocess

import pytest
from safetensors.torch import load_file

from protege.core.errors import UserError
from protege.core.runs import read_metrics
from protege.systems.wikinav.experiment import default_checkpoint_every, run_from_cli
from protege.worlds.graphs.builders import build
from tests.conftest import kill_after_checkpoint, protege_cmd, protege_env

OPTIONS = dict(encoder="tfidf", batch_size=16, lr=2e-3, walks_per_page=3, walk_length=6,
               dead_end="jump", page_vectors=True)


@pytest.fixture
def graph(dictd_path, tmp_path):
    build("dictd", dictd_path, tmp_path / "g")
    return tmp_path / "g"


def checkpoint(run_dir, step=None):
    name = f"step-{step:08d}" if step else (run_dir / "checkpoints" / "latest").read_text().strip()
    return load_file(str(run_dir / "checkpoints" / name / "model.safetensors"))


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key


def test_one_seed_gives_one_first_checkpoint(graph, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        run_from_cli(graph, tmp_path / name, steps=4, seed=seed, checkpoint_every=2, **OPTIONS)
    assert_same(checkpoint(tmp_path / "a", 2), checkpoint(tmp_path / "b", 2))
    other = checkpoint(tmp_path / "c", 2)
    assert any(not (v == other[k]).all() for k, v in checkpoint(tmp_path / "a", 2).items())


def test_short_runs_checkpoint_along_the_way(graph, tmp_path):
    assert default_checkpoint_every(20) == 4 and default_checkpoint_every(3) == 1
    assert default_checkpoint_every(10**6) == 200
    run_from_cli(graph, tmp_path / "r", steps=20, seed=0, checkpoint_every=None, **OPTIONS)
    saved = sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("step-*"))
    assert saved == ["step-00000016", "step-00000020"]  # every 4 steps, the newest two kept


def test_a_typo_fails_before_any_run_directory(graph, tmp_path):
    with pytest.raises(UserError, match="dead_end must be one of stop, restart, jump"):
        run_from_cli(graph, tmp_path / "r", steps=4, seed=0, checkpoint_every=None,
                     **{**OPTIONS, "dead_end": "jmup"})
    with pytest.raises(UserError, match="walk_length must be >= 1"):
        run_from_cli(graph, tmp_path / "r", steps=4, seed=0, checkpoint_every=None,
                     **{**OPTIONS, "walk_length": 0})
    assert not (tmp_path / "r").exists()


def train(graph, out, *extra):
    return protege_cmd("nav", "train", graph, "--out", out, "--encoder", "tfidf", "--steps", 2000,
                       "--batch-size", 16, "--walks-per-page", 3, "--walk-length", 6,
                       "--checkpoint-every", 20, "--seed", 5, *extra)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(graph, tmp_path):
    straight = subprocess.run(train(graph, tmp_path / "straight"), env=protege_env(),
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    killed = tmp_path / "killed"
    assert kill_after_checkpoint(train(graph, killed), killed, tmp_path, "step-00000400") < "step-00002000"

    resumed = subprocess.run(train(graph, killed, "--resume"), env=protege_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert_same(checkpoint(tmp_path / "straight"), checkpoint(killed))
    assert_same(load_file(str(tmp_path / "straight" / "policy.safetensors")),
                load_file(str(killed / "policy.safetensors")))
    assert read_metrics(tmp_path / "straight", wall_clock=False) == read_metrics(killed, wall_clock=False)
