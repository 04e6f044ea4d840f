"""Demonstrations protege writes are Minari datasets for people who only know Minari: the plain API
rebuilds the environment from the stored spec and finds the dataset by its id."""

import os
import shlex
import subprocess

import numpy as np
import pytest

from protege.data.minari_io import minari_load_hint


@pytest.fixture(scope="module")
def babyai_demos(tmp_path_factory):
    from protege.worlds.babyai.demos import DemoConfig, generate_demos
    out = tmp_path_factory.mktemp("demos") / "gotoredball"
    stats = generate_demos(DemoConfig("BabyAI-GoToRedBall-v0", 3, out, 1, 0, 3), progress=False)
    return out, stats


def test_recover_environment_with_plain_minari(babyai_demos):
    import minari
    out, _ = babyai_demos
    dataset = minari.MinariDataset(out / "data")
    env = dataset.recover_environment()
    obs, _ = env.reset(seed=0)
    assert obs["mission"] == "go to the red ball" and obs["image"].shape == (7, 7, 3)
    episode = next(dataset.iterate_episodes())
    seed = next(iter(dataset.storage.get_episode_metadata([episode.id])))["seed"]
    first, _ = env.reset(seed=int(seed))  # the recovered env replays the demonstration's layout
    assert np.array_equal(first["image"], episode.observations["image"][0])
    assert first["mission"] == episode.observations["mission"][0]


def test_load_dataset_by_id_as_protege_says(babyai_demos, tmp_path, monkeypatch):
    import minari
    out, stats = babyai_demos
    dataset_id = stats["minari_dataset_id"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    hint = minari_load_hint(out, dataset_id)
    command = hint.split(": ", 1)[1].split("  then ")[0]  # "mkdir -p ... && ln -s OUT LINK"
    subprocess.run(command, shell=True, check=True)
    assert shlex.quote(dataset_id) in hint or dataset_id in hint
    dataset = minari.load_dataset(dataset_id)
    assert dataset.total_episodes == stats["episodes"] and dataset.spec.dataset_id == dataset_id


def test_hint_when_written_under_the_minari_root(tmp_path):
    out = tmp_path / "root" / "babyai" / "GoToRedBall-v0" / "bot-v0"
    hint = minari_load_hint(out, "babyai/GoToRedBall-v0/bot-v0")
    assert f"MINARI_DATASETS_PATH={tmp_path / 'root'}" in hint and "ln -s" not in hint
    assert os.path.isabs(hint.split("=", 1)[1].split()[0])
