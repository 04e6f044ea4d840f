"""Export round trips: marks JSONL (versioned, each live mark once), annotated episodes back as
`Episode`s with per-step annotations, and people's plays as BabyAI demonstrations BC trains on."""

import json
import uuid

import numpy as np
import pytest

from protege.cli.main import main
from protege.core.errors import UserError
from tests.systems.feedback.conftest import client, import_demos, login


def _mark(c, h, episode, step, kind, comment=""):
    key = str(uuid.uuid4())
    body = {"episode_id": episode, "step": step, "kind": kind, "comment": comment}
    assert c.put(f"/api/marks/{key}", json=body, headers=h).status_code == 200
    return key


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_marks_export_round_trip(studio, bot_demos, capsys):
    from protege.data.datasets import validate_dataset
    from protege.systems.feedback.export import load_export
    ids = import_demos(studio, bot_demos, limit=2, overlap=2)
    live = {}
    for name, marks in {"ann": [(0, 1, "progress"), (0, 3, "regress"), (0, 0, "success")],
                        "bob": [(0, 1, "progress"), (0, 5, "failure")]}.items():
        with client(studio) as c:
            h = {"X-CSRF-Token": login(c, name)}
            for _ in ids:  # both episodes (overlap 2): least-held first
                a = c.post("/api/assignments/next", headers=h).json()
                c.post(f"/api/assignments/{a['id']}/done", headers=h)
            for i, step, kind in marks:
                live[_mark(c, h, ids[i], step, kind, f"{name} é <b>")] = (name, step, kind)
            undone = _mark(c, h, ids[0], 2, "progress")
            c.put(f"/api/marks/{undone}", json={"episode_id": ids[0], "step": 2, "kind": "progress",
                                                "deleted": True}, headers=h)
    out = studio.tmp / "export"
    main(["studio", "export", "--db", studio.db, "--out", str(out)])
    header, *rows = _lines(out / "marks.jsonl")
    assert header == {"format": "protege.feedback.marks", "version": 1}
    assert sorted(r["uuid"] for r in rows) == sorted(live)  # every live mark exactly once, no undone one
    assert {r["uuid"]: (r["user"], r["step"], r["kind"]) for r in rows} == live
    assert all(r["comment"].endswith(" é <b>") and r["created_at"].endswith("Z") for r in rows)
    annotators = {r["user"]: r for r in _lines(out / "annotators.jsonl")}
    assert annotators["ann"]["marks"] == 3 and annotators["bob"]["marks"] == 2 and annotators["admin"]["marks"] == 0
    (row,) = _lines(out / "episodes.jsonl")  # only the marked episode
    assert row["id"] == ids[0] and row["annotators"] == ["ann", "bob"]
    assert row["labels"] == {"ann": "success", "bob": "failure"}
    T = len(row["actions"])
    # frame f annotates step f-1 (frame 0 -> step 0): progress at frames 1, 1 -> step 0 twice;
    # regress at frame 3 -> step 2; success at frame 0 -> step 0; failure at frame 5 -> step 4
    expected_progress = [2, 0, -1] + [0] * (T - 3)
    expected_success = [1, 0, 0, 0, -1] + [0] * (T - 5)
    assert row["annotations"] == {"progress": expected_progress, "success": expected_success}
    (episode,) = load_export(out)
    assert episode.annotations == {"progress": expected_progress, "success": expected_success}
    assert episode.observations["image"].shape == (T + 1, 7, 7, 3) and episode.env_id == "BabyAI-GoToRedBall-v0"
    assert episode.terminated and np.allclose(episode.rewards, row["rewards"])
    kind, summary = validate_dataset(out)
    assert kind.startswith("studio export") and summary["marks"] == 5 and summary["episodes"] == 1
    main(["studio", "export", "--db", studio.db, "--out", str(out)])  # replaces its own earlier export
    (out / "episodes.jsonl").write_text((out / "episodes.jsonl").read_text().replace('"seed":', '"seed": '))
    with pytest.raises(UserError, match="episodes.jsonl"):
        load_export(out)  # altered after export: the checksum says so
    (studio.tmp / "mine").mkdir()
    (studio.tmp / "mine" / "notes.txt").write_text("keep")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["studio", "export", "--db", studio.db, "--out", str(studio.tmp / "mine")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert (studio.tmp / "mine" / "notes.txt").read_text() == "keep"


def test_plays_export_as_demonstrations_that_bc_trains_on(studio, bot_demos):
    from protege.systems import start
    from protege.worlds.babyai.demos import load_demos, read_episodes
    demos = read_episodes(bot_demos)[:2]
    with client(studio) as c:
        h = {"X-CSRF-Token": login(c, "ann")}
        for demo in demos:  # a person plays the bot's moves (a success) ...
            pid = c.post("/api/play", json={"level": demo.env_id, "seed": demo.seed}, headers=h).json()["play_id"]
            for seq, action in enumerate(demo.actions, start=1):
                last = c.post(f"/api/play/{pid}/step", json={"action": int(action), "seq": seq}, headers=h).json()
            assert last["status"] == "success"
        # ... and gives up on a third play (not a demonstration)
        pid = c.post("/api/play", json={"level": demo.env_id, "seed": 99}, headers=h).json()["play_id"]
        c.post(f"/api/play/{pid}/step", json={"action": 0, "seq": 1}, headers=h)
        c.post("/api/play", json={"level": "BabyAI-GoToLocal-v0", "seed": 5}, headers=h)
    out = studio.tmp / "people-demos"
    main(["studio", "export", "--db", studio.db, "--demos", str(out)])
    loaded = load_demos(out, "BabyAI-GoToRedBall-v0")
    assert len(loaded) == 2 and list(loaded.seeds) == [d.seed for d in demos]
    assert np.array_equal(loaded.actions, np.concatenate([d.actions for d in demos]))
    assert np.array_equal(loaded.images, np.concatenate([d.observations["image"][:-1] for d in demos]))
    run_dir, summary = start("babyai_bc", [f"demos={out}", "n_demos=0", "policy.dim=16", "policy.n_film=1",
                                           "trainer.steps=3", "trainer.batch_size=8", "trainer.warmup_steps=0",
                                           "trainer.log_every=1", "trainer.checkpoint_every=3",
                                           "eval_episodes=0"], run_dir=studio.tmp / "bc")
    assert summary["demos"] == 2 and summary["train/loss"] > 0
