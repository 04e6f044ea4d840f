"""The success detector's data, splits, scores and training: agents' episodes labelled by the
verifier, disjoint held-out splits, ECE and balanced accuracy against naive references, and a
training run killed after a checkpoint that resumes to the same weights and metrics."""

import json

import numpy as np
import pytest

from protege.cli.main import main
from protege.core.errors import UserError
from tests.conftest import final_weights, kill_after_checkpoint, protege_cmd

LEVEL = "BabyAI-GoToRedBall-v0"


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """Two levels, four agents, four episodes each, 16-step budget (a few seconds)."""
    from protege.systems.sts.detector_data import DataConfig, generate
    out = tmp_path_factory.mktemp("judged") / "judged"
    generate(DataConfig((LEVEL, "BabyAI-GoToObj-v0"), out, ("random", "bot", "bot-noise-0.5", "bot-stop"),
                        episodes=4, max_steps=16), progress=False)
    return out


def test_agents_episodes_are_labelled_by_the_verifier(judged):
    from protege.systems.sts.detector_data import describe, load, to_episodes
    from protege.worlds.babyai.levels import episode_success
    data = load(judged)
    agents = data["agent"]
    assert len(agents) == 32 and sorted(set(agents)) == ["bot", "bot-noise-0.5", "bot-stop", "random"]
    assert data["success"][agents == "bot"].all()
    stopped = agents == "bot-stop"  # cut short of success: failures that end before the limit
    assert not data["success"][stopped].any() and (data["length"][stopped] < 16).all()
    assert (data["length"] <= 16).all()
    for agent in ("random", "bot", "bot-stop"):  # each agent plays its own layouts
        others = set(data["seed"][agents != agent].tolist())
        assert not others & set(data["seed"][agents == agent].tolist())
    episodes = to_episodes(data)
    assert [episode_success(e.terminated, e.rewards[-1]) for e in episodes] == data["success"].tolist()
    assert all(e.observations["image"].shape == (len(e) + 1, 7, 7, 3) for e in episodes)
    kind, row = describe(judged)
    assert kind.startswith("judged episodes") and row["episodes"] == 32 and row["agents"] == 4


def test_splits_are_disjoint_and_hold_out_what_they_say(judged):
    from protege.systems.sts.detector import Config, baselines, make_splits
    from protege.systems.sts.detector_data import load
    data = load(judged)
    cfg = Config(data=str(judged), heldout_agents=("bot-noise-0.5",), heldout_levels=("BabyAI-GoToObj-v0",),
                 test_fraction=0.3)
    splits = make_splits(data, cfg)
    rows = np.concatenate(list(splits.values()))
    assert len(rows) == len(set(rows.tolist())) == len(data["length"])
    assert set(data["level"][splits["unseen_levels"]]) == {"BabyAI-GoToObj-v0"}
    assert set(data["agent"][splits["unseen_agents"]]) == {"bot-noise-0.5"}
    assert set(data["level"][splits["unseen_agents"]]) == {LEVEL}
    for split in ("train", "unseen_episodes"):
        assert "bot-noise-0.5" not in set(data["agent"][splits[split]])
        assert set(data["level"][splits[split]]) <= {LEVEL}
    trivial = baselines(data, data["success"], splits["train"], splits["unseen_levels"])
    assert trivial["majority_class"] == 0.5  # one class for everything
    with pytest.raises(UserError, match="heldout_levels: BabyAI-GoToDoor-v0 has no episodes"):
        make_splits(data, Config(data=str(judged), heldout_levels=("BabyAI-GoToDoor-v0",),
                                 heldout_agents=("bot",)))


def test_balanced_accuracy_and_ece_match_naive_references():
    from protege.eval.calibration import (
        balanced_accuracy,
        bootstrap_interval,
        expected_calibration_error,
    )
    rng = np.random.default_rng(0)
    p = rng.random(200)
    y = rng.random(200) < p ** 2
    pred = p >= 0.5
    tpr = sum(a and b for a, b in zip(pred, y)) / sum(y)
    tnr = sum((not a) and (not b) for a, b in zip(pred, y)) / sum(not b for b in y)
    assert balanced_accuracy(pred, y) == pytest.approx((tpr + tnr) / 2)
    ece = 0.0
    for m in range(10):
        inside = [i for i in range(200) if m / 10 <= p[i] < (m + 1) / 10 or (m == 9 and p[i] == 1.0)]
        if inside:
            ece += len(inside) / 200 * abs(np.mean([y[i] for i in inside]) - np.mean([p[i] for i in inside]))
    assert expected_calibration_error(p, y) == pytest.approx(ece)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0
    assert expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert balanced_accuracy([True] * 10, [True] * 9 + [False]) == 0.5  # "always success"
    low, high = bootstrap_interval(balanced_accuracy, pred, y, resamples=200)
    assert low <= balanced_accuracy(pred, y) <= high


def test_bad_input_is_one_line(judged, tmp_path, capsys):
    def refused(*args) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(["sts", *args])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
        return err
    assert "valid agents are" in refused("detector-data", "--level", LEVEL, "--agent", "bot-noise-2",
                                         "--out", str(tmp_path / "d"))
    assert "is not a run directory" in refused("detector-data", "--level", LEVEL, "--agent", f"run:{tmp_path}",
                                               "--out", str(tmp_path / "d"))
    assert "unknown BabyAI level" in refused("detector-data", "--level", "BabyAI-Nope-v0", "--out", str(tmp_path / "d"))
    assert "no such judged-episodes folder" in refused("detector-train", str(tmp_path / "none"),
                                                       "--out", str(tmp_path / "r"))
    assert "has no episodes" in refused("detector-train", str(judged), "--out", str(tmp_path / "r"),
                                        "--heldout-agent", "bot-noise-0.3", "--heldout-level", LEVEL)
    assert not (tmp_path / "r").exists()
    assert "no summary.json" in refused("detector-report", str(judged))


@pytest.mark.slow
def test_detector_training_resumes_after_sigkill_and_judges_continuations(judged, tmp_path):
    from protege.systems.sts.judges import detector_judgements
    from tests.systems.sts.test_judges import play_continuations
    args = [str(judged), "--heldout-agent", "bot-noise-0.5", "--heldout-level", "BabyAI-GoToObj-v0",
            "--steps", "40"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert not main_quiet(["sts", "detector-train", *args, "--out", str(straight), "--checkpoint-every", "10"])
    at = kill_after_checkpoint(protege_cmd("sts", "detector-train", *args, "--out", killed, "--checkpoint-every", "10"),
                               killed, tmp_path, "step-00000010")
    assert at < "step-00000040"
    assert not main_quiet(["sts", "detector-train", *args, "--out", str(killed), "--checkpoint-every", "10",
                           "--resume"])
    a, b = final_weights(straight), final_weights(killed)
    assert all((a[k] == b[k]).all() for k in a)
    rows = lambda d: [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert rows(straight) == rows(killed) and [r["step"] for r in rows(killed)] == [10, 20, 30, 40]
    summary = json.loads((killed / "summary.json").read_text())
    for split in ("unseen_episodes", "unseen_agents", "unseen_levels"):
        assert 0 <= summary[split]["balanced_accuracy"] <= 1 and len(summary[split]["ece_ci"]) == 2
    from protege.systems.sts.detector import report
    table = report([straight, killed])
    assert [r["split"] for r in table] == ["unseen_episodes", "unseen_agents", "unseen_levels"]
    assert all(r["runs"] == 2 and r["balanced_accuracy"].count("[") == 1 for r in table)
    judgements = detector_judgements(play_continuations(seeds=(3,)), killed)
    assert [j["agent"] for j in judgements] == ["bot", "random"]
    assert all(0 < j["probability"] < 1 and j["success"] == (j["probability"] >= 0.5) for j in judgements)


def main_quiet(argv) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_peoples_majority_replaces_the_verifiers_label(judged, tmp_path):
    """A studio export (its episodes.jsonl) judging one episode: people's majority wins, a tie
    keeps the verifier's label, the others keep theirs."""
    from protege.data.manifest import write_manifest
    from protege.systems.sts.detector import episode_keys, labels_of
    from protege.systems.sts.detector_data import load
    data = load(judged)
    keys = episode_keys(data)
    bot = int(np.flatnonzero(data["agent"] == "bot")[0])
    tie = int(np.flatnonzero(data["agent"] == "random")[0])
    export = tmp_path / "export"
    export.mkdir()
    rows = [{"id": keys[bot], "labels": {"ann": "failure", "bob": "failure", "cy": "success"}},
            {"id": keys[tie], "labels": {"ann": "failure", "bob": "success"}}]
    (export / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_manifest(export, {"kind": "protege.feedback.export"})
    labels, from_people = labels_of(data, str(export))
    assert from_people == 1 and not labels[bot] and data["success"][bot]
    expected = data["success"].copy()
    expected[bot] = False
    assert (labels == expected).all()


def test_continuations_join_the_training_split(judged, tmp_path):
    from protege.systems.sts.detector import Config, last_frames, make_splits, with_continuations
    from protege.systems.sts.detector_data import load
    from tests.systems.sts.test_judges import play_continuations, write_continuations
    rows = play_continuations(seeds=(3,))
    write_continuations(tmp_path / "cont", rows)
    data = load(judged)
    cfg = Config(data=str(judged), heldout_agents=("bot-noise-0.5",), heldout_levels=("BabyAI-GoToObj-v0",))
    splits = make_splits(data, cfg)
    merged, labels, more = with_continuations(data, data["success"], splits, (str(tmp_path / "cont"),))
    n = len(data["length"])
    assert len(merged["length"]) == n + 2 and list(more["train"][-2:]) == [n, n + 1]
    assert labels[n:].tolist() == [r["success"] for r in rows]
    assert merged["length"][n:].tolist() == [len(r["actions"]) for r in rows]
    assert all((more[k] == splits[k]).all() for k in ("unseen_episodes", "unseen_agents", "unseen_levels"))
    inputs = last_frames(merged, 4)
    assert inputs["images"].shape[0] == n + 2
