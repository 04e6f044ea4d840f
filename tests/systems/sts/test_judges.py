"""Judges of continuations: the verifier, and people through the studio (continuations -> studio
set -> `studio import` -> success/failure marks over the HTTP API with tokens -> `studio export` ->
`sts judge --judge human`: k judgements per item, majority and kappa); bad judge sets refused."""

import json
import uuid

import numpy as np
import pytest

from protege.cli.main import main

LEVEL = "BabyAI-GoToRedBall-v0"


def write_continuations(folder, rows: list[dict]) -> None:
    """A continuations folder in the format of `systems/sts/formats.py`."""
    from protege.data.manifest import write_manifest
    folder.mkdir(parents=True)
    header = {"format": "protege.sts.continuations", "version": 1, "scenarios": "-", "scenarios_sha256": "-",
              "budget": 8, "agents": sorted({r["agent"] for r in rows})}
    (folder / "continuations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [header, *rows]))
    write_manifest(folder, {"kind": "protege.sts.continuations"})


def play_continuations(seeds=(3, 4, 5), budget: int = 16) -> list[dict]:
    """The bot and a random agent continue each scenario (GoToRedBall after one bot action)."""
    from protege.worlds.babyai.levels import episode_success
    from protege.worlds.babyai.scenarios import play_bot, replay_prefix
    rows = []
    for seed in seeds:
        env, obs = replay_prefix(LEVEL, seed, [], budget)
        prefix = [play_bot(env, obs, 1)["actions"][0]]
        for agent in ("bot", "random"):
            env, obs = replay_prefix(LEVEL, seed, prefix, budget)
            if agent == "bot":
                played = play_bot(env, obs, budget)
            else:  # turning left forever never reaches the ball
                played = {"actions": [0] * budget, "rewards": [], "terminated": False}
                for a in played["actions"]:
                    _, r, *_ = env.step(a)
                    played["rewards"].append(float(r))
            rows.append({"agent": agent, "scenario": f"s{seed}", "level": LEVEL, "seed": seed, "prefix": prefix,
                         "instruction": str(obs["mission"]), "task": None, "budget": budget, "actions": played["actions"],
                         "rewards": played["rewards"], "terminated": played["terminated"],
                         "truncated": not played["terminated"],
                         "success": episode_success(played["terminated"], played["rewards"][-1])})
    return rows


@pytest.fixture
def cheap_hashing(monkeypatch):
    from argon2 import PasswordHasher

    from protege.systems.feedback import auth
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _token(db, name, capsys) -> str:
    capsys.readouterr()
    main(["studio", "token", name, "--db", db])
    return capsys.readouterr().out.strip()


def mark_all(db, media, tokens: dict, label) -> None:
    """Each person leases episodes until none is left and marks success/failure on the last frame
    (`label(person, episode_id) -> "success" | "failure"`), over HTTP with their API token."""
    from fastapi.testclient import TestClient

    from protege.systems.feedback.app import create_app
    with TestClient(create_app(db, media), follow_redirects=False) as c:
        for person, token in tokens.items():
            auth = {"Authorization": f"Bearer {token}"}

            def mark(a, person=person, auth=auth):
                body = {"episode_id": a["episode_id"], "step": a["length"], "kind": label(person, a["episode_id"])}
                put = c.put(f"/api/marks/{uuid.uuid4()}", json=body, headers=auth)
                assert put.status_code == 200 and put.json()["acked"] is True
                assert c.post(f"/api/assignments/{a['id']}/done", headers=auth).status_code == 200
            marked = set()
            while (a := c.post("/api/assignments/next", headers=auth)).status_code == 200:
                mark(a.json())
                marked.add(a.json()["id"])
            for a in c.get("/api/assignments", headers=auth).json():  # finished earlier: marked again
                if a["id"] not in marked:
                    mark(a)


def test_episode_key_is_the_studios_episode_id():
    from protege.systems.feedback.episodes import episode_id
    from protege.systems.sts.judges import episode_key
    assert episode_key(LEVEL, 7, np.array([2, 2, 0])) == episode_id(LEVEL, 7, [2, 2, 0])


def test_verifier_judgements_follow_the_success_rule(tmp_path):
    from protege.systems.sts.judges import judge_command
    rows = play_continuations(seeds=(3,))
    write_continuations(tmp_path / "cont", rows)
    table, stats = judge_command(tmp_path / "cont", "verifier", None, None, tmp_path / "j.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert lines[0]["format"] == "protege.sts.judgements"
    assert {(j["agent"], j["success"]) for j in lines[1:]} == {("bot", True), ("random", False)}
    assert [r["success"] for r in table] == [1.0, 0.0] and stats == {}


def test_people_judge_continuations_through_the_studio(tmp_path, cheap_hashing, capsys):
    from protege.eval.agreement import fleiss_kappa
    from protege.systems.sts.formats import read_judgements
    from protege.systems.sts.judges import episode_key, judge_command, whole_actions
    from tests.systems.feedback.conftest import add_user
    rows = play_continuations()
    cont, people, db = tmp_path / "cont", tmp_path / "people", str(tmp_path / "studio.db")
    write_continuations(cont, rows)
    main(["sts", "studio-set", str(cont), "--out", str(people)])
    for name in ("ann", "bob", "cy"):
        add_user(db, name, "annotator")
    main(["studio", "import", "--db", db, "--demos", str(people / LEVEL), "--overlap", "3"])
    tokens = {name: _token(db, name, capsys) for name in ("ann", "bob", "cy")}
    truth = {episode_key(r["level"], r["seed"], whole_actions(r)): r["success"] for r in rows}
    contrary = min(truth)  # cy disagrees with the others on one episode

    def label(person, episode):
        success = truth[episode] != (person == "cy" and episode == contrary)
        return "success" if success else "failure"
    mark_all(db, tmp_path / "media", tokens, label)
    main(["studio", "export", "--db", db, "--out", str(tmp_path / "export")])
    capsys.readouterr()
    main(["sts", "judge", str(cont), "--judge", "human", "--export", str(tmp_path / "export"),
          "--out", str(tmp_path / "human.jsonl")])
    printed = capsys.readouterr().out
    judgements = [json.loads(x) for x in (tmp_path / "human.jsonl").read_text().splitlines()[1:]]
    per_item = {}
    for j in judgements:
        per_item.setdefault((j["agent"], j["scenario"]), []).append(j)
    assert len(per_item) == len(rows) and all(len(v) == 3 for v in per_item.values())  # k = 3 judges each
    assert {j["judge"] for j in judgements} == {"human:ann", "human:bob", "human:cy"}
    majority = read_judgements(tmp_path / "human.jsonl")  # what `sts rank --judgements` reads
    assert majority == {(r["agent"], r["scenario"]): r["success"] for r in rows}
    # (successes, failures) per episode: unanimous but for cy's one contrary label
    table = [[2, 1] if k == contrary else [3, 0] for k in truth if truth[k]] + \
            [[1, 2] if k == contrary else [0, 3] for k in truth if not truth[k]]
    _, agreement = judge_command(cont, "human", tmp_path / "export", None, None)
    assert agreement["agreement"] == "fleiss_kappa" and agreement["k"] == 3 and agreement["unjudged"] == 0
    assert agreement["vs_verifier_balanced_accuracy"] == 1.0  # the majority outvoted cy everywhere
    assert agreement["kappa"] == pytest.approx(fleiss_kappa(table)) and agreement["unanimous"] == len(rows) - 1
    assert "people's agreement" in printed and f"{agreement['kappa']:.4g}" in printed


def test_empty_judge_set_and_unknown_episodes_are_refused(tmp_path, cheap_hashing, capsys):
    from protege.systems.sts.judges import episode_key, whole_actions
    from tests.systems.feedback.conftest import add_user
    rows = play_continuations(seeds=(3, 4))
    cont, people, db = tmp_path / "cont", tmp_path / "people", str(tmp_path / "studio.db")
    write_continuations(cont, rows)
    main(["sts", "studio-set", str(cont), "--out", str(people)])
    add_user(db, "ann", "annotator")
    main(["studio", "import", "--db", db, "--demos", str(people / LEVEL)])
    token = _token(db, "ann", capsys)
    mark_all(db, tmp_path / "media", {"ann": token}, lambda person, episode: "progress")
    main(["studio", "export", "--db", db, "--out", str(tmp_path / "only-progress")])

    def refused(*args, continuations=cont) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(["sts", "judge", str(continuations), "--judge", "human", *args])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
        return err
    assert "judge set is empty" in refused("--export", str(tmp_path / "only-progress"))
    assert "--export" in refused()  # no export at all
    # people judged all four continuations; asked about the first two only, the other two ids are
    # unknown: the export belongs to another set
    mark_all(db, tmp_path / "media", {"ann": token}, lambda person, episode: "success")
    main(["studio", "export", "--db", db, "--out", str(tmp_path / "labelled")])
    write_continuations(tmp_path / "cont2", rows[:2])
    err = refused("--export", str(tmp_path / "labelled"), continuations=tmp_path / "cont2")
    unknown = min(episode_key(r["level"], r["seed"], whole_actions(r)) for r in rows[2:])
    assert "not continuations of this set" in err and unknown in err
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["sts", "judge", str(tmp_path / "cont2"), "--judge", "oracle"])
    assert "unknown judge 'oracle'" in capsys.readouterr().err
