import json
import shutil

import numpy as np
import pytest

from protege.core.errors import UserError
from protege.data.manifest import MANIFEST
from protege.worlds.babyai.demos import DemoConfig, generate_demos, load_demos
from protege.worlds.babyai.levels import make_env


def test_replay_reproduces_recorded_observations(redball_demos):
    demos = load_demos(redball_demos, level="BabyAI-GoToRedBall-v0")
    assert len(demos) == 300 and demos.terminated.all()
    env = make_env("BabyAI-GoToRedBall-v0")
    for i in (0, 117, 299):
        s, n = demos.starts[i], demos.lengths[i]
        obs, _ = env.reset(seed=int(demos.seeds[i]))
        assert obs["mission"] == demos.missions[i]
        for t in range(n):
            np.testing.assert_array_equal(obs["image"], demos.images[s + t])
            assert obs["direction"] == demos.directions[s + t]
            obs, reward, terminated, _, _ = env.step(int(demos.actions[s + t]))
            assert reward == pytest.approx(demos.rewards[s + t])
        assert terminated


def test_subgoal_annotations_present_and_change(putnext_demos):
    from protege.worlds.babyai.demos import read_episodes
    episodes = read_episodes(putnext_demos)  # the shared Episode schema
    assert episodes[0].env_id == "BabyAI-PutNextLocal-v0" and episodes[0].instruction.startswith("put")
    assert len(episodes[0].annotations["subgoal"]) == len(episodes[0]) and episodes[0].seed == 0
    assert "PutNext" in episodes[0].annotations["subgoal_reason"]
    demos = load_demos(putnext_demos)
    assert all(s for s in demos.subgoals)
    changes = [len(set(demos.subgoals[s:s + n])) for s, n in zip(demos.starts, demos.lengths)]
    assert max(changes) >= 3  # e.g. GoNextTo(red ball) -> Pickup() -> GoNextTo(blue key) -> Drop()
    assert any(g.startswith("Pickup") for g in demos.subgoals)


def test_resume_skips_finished_chunks(tmp_path):
    cfg = DemoConfig("BabyAI-GoToRedBall-v0", 4, tmp_path / "d", workers=1, chunk_size=2)
    (tmp_path / "d" / ".chunks").mkdir(parents=True)
    from protege.worlds.babyai.demos import run_chunk
    run_chunk(("BabyAI-GoToRedBall-v0", 0, 2, str(tmp_path / "d" / ".chunks" / "chunk-000000000000-2.npz")))
    stats = generate_demos(cfg, progress=False)
    assert stats["resumed"] == "1 chunks reused" and stats["episodes"] == 4
    assert generate_demos(cfg, progress=False)["resumed"] == "already complete"


def test_wrong_level_dataset(redball_demos):
    with pytest.raises(UserError, match="demonstrations of BabyAI-GoToRedBall-v0, but the run is on"):
        load_demos(redball_demos, level="BabyAI-GoToLocal-v0")


def test_wrong_observation_spec(redball_demos, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(redball_demos, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["meta"]["observation_spec"]["image"]["shape"] = [5, 5, 3]
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="observation spec"):
        load_demos(copy)


def test_truncated_or_corrupted_dataset(redball_demos, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(redball_demos, copy)
    victim = next(p for p in sorted((copy / "data").rglob("*.arrow")))
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or altered"):
        load_demos(copy)
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(UserError, match="checksum mismatch"):
        load_demos(copy)


def test_missing_and_empty_dataset(tmp_path):
    with pytest.raises(UserError, match="no such demonstrations folder"):
        load_demos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no protege-manifest.json"):
        load_demos(tmp_path / "empty")
    with pytest.raises(UserError, match="--episodes must be positive"):
        generate_demos(DemoConfig("BabyAI-GoToRedBall-v0", 0, tmp_path / "x"), progress=False)


def test_empty_dataset(tmp_path):
    """A well-formed dataset folder whose Minari storage holds no episodes."""
    import minari
    from minari.dataset.minari_storage import MinariStorage

    from protege.data.manifest import write_manifest
    from protege.worlds.babyai.demos import FORMAT
    from protege.worlds.babyai.levels import observation_space, observation_spec
    storage = MinariStorage.new(tmp_path / "data", observation_space=observation_space(),
                                action_space=make_env("BabyAI-GoToRedBall-v0").action_space,
                                data_format="arrow", jpeg_encoding=False)
    storage.update_metadata({"dataset_id": "babyai/empty-v0", "minari_version": minari.__version__})
    write_manifest(tmp_path, {"format": FORMAT, "level": "BabyAI-GoToRedBall-v0",
                              "observation_spec": observation_spec()})
    with pytest.raises(UserError, match="holds no episodes"):
        load_demos(tmp_path)
