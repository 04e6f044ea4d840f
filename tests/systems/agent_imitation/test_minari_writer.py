"""The batched writer (`protege.data.minari_io`) writes what Minari's own writer writes."""

import json

import numpy as np
import pyarrow as pa
import pytest

from protege.data.manifest import file_sha256
from protege.data.minari_io import write_episodes
from protege.worlds.babyai.demos import _pack, bot_episode
from protege.worlds.babyai.levels import make_env, observation_space


def _minari_reference(data_path, episodes, action_space):
    """The dataset minari 0.5.4 writes itself, one `update_episodes` call per episode list."""
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage
    storage = MinariStorage.new(data_path, observation_space=observation_space(),
                                action_space=action_space, data_format="arrow", jpeg_encoding=False)
    storage.update_episodes([EpisodeBuffer(
        id=i, seed=e["seed"],
        observations={"image": e["images"], "direction": e["directions"],
                      "mission": [e["mission"]] * len(e["images"])},
        actions=e["actions"], rewards=list(e["rewards"]),
        terminations=[False] * (len(e["actions"]) - 1) + [not e["truncated"]],
        truncations=[False] * (len(e["actions"]) - 1) + [e["truncated"]],
        infos={"subgoal": e["subgoals"] + [""], "subgoal_reason": e["reasons"] + [""]})
        for i, e in enumerate(episodes)])
    storage.update_metadata({"dataset_id": "babyai/ref-v0", "minari_version": "0.5.4"})
    return storage


@pytest.mark.parametrize("level", ["BabyAI-GoToRedBall-v0", "BabyAI-PutNextLocal-v0"])
def test_batched_writer_matches_minari(tmp_path, level, monkeypatch):
    from minari import MinariDataset
    from minari.dataset.minari_storage import MinariStorage
    env = make_env(level)
    episodes = [e for e in (bot_episode(env, s) for s in range(12)) if e is not None]
    episodes[3]["truncated"] = True  # exercise the truncation column too
    _minari_reference(tmp_path / "ref", episodes, env.action_space)  # written to disk, read below
    ours = MinariStorage.new(tmp_path / "ours", observation_space=observation_space(),
                             action_space=env.action_space, data_format="arrow", jpeg_encoding=False)
    chunk = _pack(episodes)
    first, rest = _pack(episodes[:5]), _pack(episodes[5:])  # two chunks: ids continue across writes
    files = write_episodes(tmp_path / "ours", first, 0, ours.observation_space, ours.action_space)
    files |= write_episodes(tmp_path / "ours", rest, 5, ours.observation_space, ours.action_space)
    assert files == {name: {"bytes": (tmp_path / "ours" / name).stat().st_size,
                            "sha256": file_sha256(tmp_path / "ours" / name)}
                     for name in (f"{i}/{f}" for i in range(len(episodes))
                                  for f in ("part-0.arrow", "metadata.json"))}
    ours.update_metadata({"dataset_id": "babyai/ours-v0", "minari_version": "0.5.4", "total_episodes": len(episodes), "total_steps": int(chunk["lengths"].sum())})
    for i in range(len(episodes)):
        files = sorted(p.name for p in (tmp_path / "ours" / str(i)).iterdir())
        assert files == sorted(p.name for p in (tmp_path / "ref" / str(i)).iterdir())
        read = lambda root: pa.ipc.open_file(root / str(i) / "part-0.arrow").read_all()  # noqa: E731
        assert read(tmp_path / "ours").equals(read(tmp_path / "ref"))
        meta = lambda root: json.loads((root / str(i) / "metadata.json").read_text())  # noqa: E731
        assert meta(tmp_path / "ours") == meta(tmp_path / "ref")
    a, b = MinariDataset(tmp_path / "ours"), MinariDataset(tmp_path / "ref")
    assert a.total_episodes == b.total_episodes == len(episodes) and a.total_steps == b.total_steps
    for ea, eb in zip(a.iterate_episodes(), b.iterate_episodes()):
        np.testing.assert_array_equal(ea.observations["image"], eb.observations["image"])
        assert ea.observations["mission"] == eb.observations["mission"]
        np.testing.assert_array_equal(ea.actions, eb.actions)
        np.testing.assert_array_equal(ea.truncations, eb.truncations)
        assert list(ea.infos["subgoal"]) == list(eb.infos["subgoal"])


def test_chunk_writer_reraises_write_errors(tmp_path):
    """An error in the writer process (here: episode 0's folder is already taken) reaches the caller."""
    from protege.data.minari_io import ChunkWriter
    env = make_env("BabyAI-GoToRedBall-v0")
    np.savez(tmp_path / "chunk-0.npz", **_pack([bot_episode(env, 0)]))
    (tmp_path / "data" / "0").mkdir(parents=True)
    writer = ChunkWriter(tmp_path / "data", observation_space(), env.action_space)
    writer.submit(tmp_path / "chunk-0.npz")
    with pytest.raises(FileExistsError):
        writer.close()


def test_interrupted_generation_keeps_chunks_and_no_dataset(tmp_path, monkeypatch):
    """If playing fails halfway, no half-written Minari folder is left, but finished chunks stay
    for the rerun to reuse."""
    from protege.worlds.babyai import demos as bd
    real = bd.run_chunk

    def fail_second(args):
        if args[1] > 0:
            raise KeyboardInterrupt
        return real(args)
    monkeypatch.setattr(bd, "run_chunk", fail_second)
    cfg = bd.DemoConfig("BabyAI-GoToRedBall-v0", 4, tmp_path / "d", workers=1, chunk_size=2)
    with pytest.raises(KeyboardInterrupt):
        bd.generate_demos(cfg, progress=False)
    assert not (tmp_path / "d" / "data").exists()
    assert [p.name for p in (tmp_path / "d" / ".chunks").glob("*.npz")] == ["chunk-000000000000-2.npz"]
    monkeypatch.setattr(bd, "run_chunk", real)
    assert bd.generate_demos(cfg, progress=False)["resumed"] == "1 chunks reused"


def test_minari_load_dataset_reads_our_folder(redball_demos, tmp_path, monkeypatch):
    """`minari.load_dataset` (by id, from MINARI_DATASETS_PATH) reads what `protege data demos` wrote."""
    import shutil

    import minari
    shutil.copytree(redball_demos / "data", tmp_path / "babyai" / "GoToRedBall" / "bot-v0" / "data")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    dataset = minari.load_dataset("babyai/GoToRedBall/bot-v0")
    assert dataset.total_episodes == 300
    episode = dataset[117]
    assert episode.observations["image"].shape[1:] == (7, 7, 3) and len(episode.infos["subgoal"]) == len(episode.actions) + 1
