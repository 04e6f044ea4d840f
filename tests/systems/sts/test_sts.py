"""`protege sts build / run / rank` end to end on recorded plays (in the studio export's format): the bot outranks random with a
rank interval of width 1, an interrupted run resumes to the same continuations, an agent's rollouts
are a source too, and bad input is one line."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from protege.cli.main import main
from protege.core.errors import UserError
from protege.data.manifest import write_manifest
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
from protege.systems.sts import continuations
from protege.systems.sts.build import build_scenarios
from protege.systems.sts.continuations import _job_file, run_continuations, run_job
from protege.systems.sts.formats import (
    continuation_episode,
    read_continuations,
    read_scenarios,
)
from protege.systems.sts.rank import rank_agents, tau_by_scenario_count
from protege.worlds.babyai.demos import bot_episode
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


def studio_export(folder, seeds=range(5000, 5030)) -> None:
    """episodes.jsonl as `protege studio export` writes it (docs/studio.md), the bot playing."""
    env, rows = make_env(LEVEL), []
    with contextlib.redirect_stdout(io.StringIO()):
        for seed in seeds:
            e = bot_episode(env, seed)
            if e is not None:
                rows.append({"id": seed, "level": LEVEL, "seed": seed, "mission": e["mission"],
                             "actions": e["actions"].tolist(), "rewards": e["rewards"].tolist(),
                             "terminated": True, "truncated": False, "annotators": 1, "labels": {}})
    folder.mkdir()
    (folder / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_manifest(folder, {"kind": "protege.feedback.export"})


def policy_run(folder) -> None:
    """A run directory as `protege run babyai_bc` leaves it (untrained weights)."""
    torch.manual_seed(0)
    cfg = PolicyConfig(dim=16, n_film=1)
    checkpoint = folder / "checkpoints" / "step-00000001"
    checkpoint.mkdir(parents=True)
    save_file(BabyAIPolicy(cfg).state_dict(), checkpoint / "model.safetensors")
    (folder / "checkpoints" / "latest").write_text("step-00000001")
    (folder / "config.yaml").write_text(yaml.safe_dump({"level": LEVEL, "policy": {"dim": 16, "n_film": 1}}))


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sts") / "export"
    studio_export(folder)
    return folder


@pytest.fixture(scope="module")
def scenario_set(people):
    out = people.parent / "set"
    code, text = protege("sts", "build", people, "--count", 20, "--budget", 8, "--out", out)
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
    for folder in (scenario_set, out):  # both validate: checksums, rows, every prefix replayed
        code, text = protege("data", "validate", folder)
        assert code == 0 and ("STS scenario set" in text or "STS continuations" in text), text
    header, rows = read_continuations(out)
    assert header["agents"] == ["random", "bot"] and len(rows) == 40
    # three judges per item, one dissenting: the majority is the verifier, so is the ranking
    votes = [{"agent": r["agent"], "scenario": r["scenario"], "success": r["success"] != (k == 0), "judge": f"p{k}"}
             for r in rows for k in range(3)]
    (tmp_path / "judged.jsonl").write_text("".join(json.dumps(v) + "\n" for v in votes))
    judged = rank_agents(out, judgements=tmp_path / "judged.jsonl", against=out, resamples=200)
    assert [r["agent"] for r in judged["table"]] == ["bot", "random"] and judged["dropped"] == 0
    assert judged["agreement"]["tau"] == 1.0 and judged["agreement"]["paired"]
    assert tau_by_scenario_count(judged, [20], draws=5)[0]["tau mean"] == "1.000"  # all scenarios
    with pytest.raises(UserError, match="not in"):
        tau_by_scenario_count(judged, [21])
    won = next(r for r in rows if r["success"])
    episode = continuation_episode(won)  # what the judges read: its replay reproduces the rewards
    assert len(episode.observations["image"]) == len(won["actions"]) + 1 and episode.terminated
    assert episode.instruction == won["instruction"] and episode.rewards[-1] > 0


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


def test_scenarios_from_a_studio_export_and_rollouts_continued_by_a_policy(tmp_path):
    studio_export(tmp_path / "export", range(9000, 9012))
    policy_run(tmp_path / "bc")
    row = build_scenarios([tmp_path / "export", tmp_path / "bc"], tmp_path / "set", count=8, budget=16,
                          rollouts=6, progress=False)
    _, scenarios = read_scenarios(tmp_path / "set")
    sources = {s.source.split(" ")[0].split(":")[0] for s in scenarios}
    assert row["scenarios"] == 8 and sources == {str(tmp_path / "export" / "episodes.jsonl"), str(tmp_path / "bc")}
    run_continuations(tmp_path / "set", [str(tmp_path / "bc"), "bot"], tmp_path / "cont", workers=1,
                      progress=False)
    header, rows = read_continuations(tmp_path / "cont")
    assert header["agents"] == ["bc", "bot"] and len(rows) == 16
    assert all(0 < len(r["actions"]) <= 16 for r in rows)


@pytest.mark.slow
def test_a_sigkilled_run_resumes_to_the_same_continuations(scenario_set, tmp_path):
    import signal
    import subprocess
    import time

    from tests.conftest import protege_cmd, protege_env
    args = ("sts", "run", scenario_set, "random", "bot:noise=0.5", "--workers", 1, "--chunk-size", 2)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert subprocess.run(protege_cmd(*args, "--out", straight), env=protege_env(), capture_output=True).returncode == 0
    proc = subprocess.Popen(protege_cmd(*args, "--out", killed), env=protege_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((killed / ".chunks").glob("000-*.jsonl")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list((killed / ".chunks").glob("*.jsonl"))
    assert 0 < len(done) < 20, "killed before the first or after the last job"
    assert subprocess.run(protege_cmd(*args, "--out", killed), env=protege_env(), capture_output=True).returncode == 0
    assert (straight / "continuations.jsonl").read_text() == (killed / "continuations.jsonl").read_text()
