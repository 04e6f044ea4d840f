"""`protege sts build / run / rank` end to end on bot demonstrations: the bot outranks random with a
rank interval of width 1, an interrupted run resumes to the same continuations, and bad input is
one line."""

import contextlib
import io
import json

import numpy as np
import pytest

from protege.cli.main import main
from protege.data.episodes import Episode
from protege.data.manifest import write_manifest
from protege.systems.sts import continuations
from protege.systems.sts.continuations import _job_file, run_continuations, run_job
from protege.systems.sts.formats import continuation_episode, read_continuations, read_scenarios
from protege.worlds.babyai.demos import bot_episode, write_episodes
from protege.worlds.babyai.levels import make_env

LEVEL = "BabyAI-GoToLocal-v0"


def protege(*args) -> tuple[int, str]:
    """The CLI in-process: (exit status, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code or 0
    return code, out.getvalue() + err.getvalue()


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sts") / "demos"
    env, episodes, seed = make_env(LEVEL), [], 5000
    with contextlib.redirect_stdout(io.StringIO()):
        while len(episodes) < 25:
            e = bot_episode(env, seed)
            seed += 1
            if e is not None:
                episodes.append(Episode(observations={"image": e["images"], "direction": e["directions"]},
                                        actions=e["actions"], rewards=e["rewards"], terminated=True,
                                        instruction=e["mission"], env_id=LEVEL, seed=e["seed"]))
    write_episodes(episodes, folder, algorithm="bot")
    return folder


@pytest.fixture(scope="module")
def scenario_set(demos):
    out = demos.parent / "set"
    code, text = protege("sts", "build", demos, "--count", 20, "--budget", 8, "--out", out)
    assert code == 0, text
    return out


def test_the_bot_is_ranked_first_with_a_rank_interval_of_width_1(scenario_set, tmp_path):
    out, png = tmp_path / "cont", tmp_path / "rank.png"
    code, text = protege("sts", "run", scenario_set, "random", "bot", "--out", out, "--workers", 1)
    assert code == 0, text
    code, text = protege("sts", "rank", out, "--png", png, "--resamples", 500)
    assert code == 0, text
    first = text.split("bot ", 1)[1].splitlines()[0]
    assert "1.000 [" in first and "1 [1, 1]" in first, text
    assert "2 [2, 2]" in text.split("random", 1)[1].splitlines()[0]
    assert png.stat().st_size > 1000
    header, rows = read_continuations(out)
    assert header["agents"] == ["random", "bot"] and len(rows) == 40
    episode = continuation_episode(rows[0])  # what the judges read
    assert len(episode.observations["image"]) == len(rows[0]["actions"]) + 1
    assert episode.instruction == rows[0]["instruction"]


def test_an_interrupted_run_resumes_to_the_same_continuations(scenario_set, tmp_path, monkeypatch):
    agents = ["random", "bot:noise=0.5"]
    straight = tmp_path / "straight"
    run_continuations(scenario_set, agents, straight, workers=1, chunk_size=10, progress=False)
    resumed, calls = tmp_path / "resumed", []

    def killed_after_one_job(job):
        if calls:
            raise KeyboardInterrupt
        calls.append(job)
        return run_job(job)
    monkeypatch.setattr(continuations, "run_job", killed_after_one_job)
    with pytest.raises(KeyboardInterrupt):
        run_continuations(scenario_set, agents, resumed, workers=1, chunk_size=10, progress=False)
    monkeypatch.undo()
    assert _job_file(resumed, 0, 0).exists() and not _job_file(resumed, 0, 10).exists()
    code, text = protege("sts", "run", scenario_set, "bot", "--out", resumed, "--workers", 1)
    assert code == 2 and "interrupted run with other" in text  # other agents: refused, nothing lost
    run_continuations(scenario_set, agents, resumed, workers=1, chunk_size=10, progress=False)
    assert (straight / "continuations.jsonl").read_text() == (resumed / "continuations.jsonl").read_text()


def write_set(folder, rows) -> None:
    folder.mkdir()
    header = {"format": "protege.sts.scenarios", "version": 1, "budget": 8}
    (folder / "scenarios.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [header, *rows]))
    write_manifest(folder, {"kind": "protege.sts.scenarios"})


def test_bad_input_is_one_line(scenario_set, tmp_path):
    _, scenarios = read_scenarios(scenario_set)
    good = json.loads((scenario_set / "scenarios.jsonl").read_text().splitlines()[1])
    write_set(tmp_path / "illegal", [good, {**good, "prefix": [2, 9]}])
    code, text = protege("sts", "run", tmp_path / "illegal", "bot", "--out", tmp_path / "o1")
    assert code == 2 and text.count("\n") == 1 and "scenarios.jsonl:3" in text and "prefix" in text
    other = {**good, "prefix": [1, 1, 1, 1], "image": np.zeros((7, 7, 3), int).tolist()}
    write_set(tmp_path / "moved", [other])
    code, text = protege("sts", "run", tmp_path / "moved", "bot", "--out", tmp_path / "o2", "--workers", 1)
    assert code == 2 and text.count("\n") == 1 and "another observation" in text, text
    code, text = protege("sts", "run", scenario_set, "runs/no-such-run", "--out", tmp_path / "o3")
    assert code == 2 and text.count("\n") == 1 and "no such run directory" in text and "bot:noise=P" in text
    cont = tmp_path / "cont"
    run_continuations(scenario_set, ["random"], cont, workers=1, progress=False)
    (tmp_path / "empty.jsonl").write_text("")
    code, text = protege("sts", "rank", cont, "--judgements", tmp_path / "empty.jsonl")
    assert code == 2 and text.count("\n") == 1 and "judge set is empty" in text
    assert len(scenarios) == 20
