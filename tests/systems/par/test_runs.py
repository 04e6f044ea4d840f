import json
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from protege.core.config import from_dict, to_dict
from protege.core.errors import UserError
from protege.core.runs import Run, read_metrics
from protege.systems.par import actor_bc, planner_lm, reporter_rl
from protege.systems.par.dialogue import REPORTS, LearntReporter, OracleReporter
from protege.systems.par.episode import ScriptedActor, evaluate, load_actor
from protege.systems.par.planners import RulePlanner, make_planner
from tests.conftest import kill_after_checkpoint, protege_cmd, protege_env


def _run(module, tmp_path, name, **fields):
    config = from_dict(module.Config, {"name": name, **fields}, "test")
    return module.run(config, Run(tmp_path / name, to_dict(config)))


def test_reporter_run_reports_every_reporter_and_the_gap(tmp_path):
    summary = _run(reporter_rl, tmp_path, "rep", iterations=2, episodes=3, eval_episodes=4)
    for key in ("none", "oracle", "learnt"):
        assert 0 <= summary[f"eval/{key}/success"] <= 1
    assert summary["eval/oracle/success"] > summary["eval/none/success"]
    assert "eval/gap_closed" in summary
    reporter = reporter_rl.load_reporter(tmp_path / "rep")
    assert isinstance(reporter, LearntReporter)
    rows = [r for r in read_metrics(tmp_path / "rep") if "train/success" in r]
    assert len(rows) == 2 and all("reinforce/entropy" in r for r in rows)
    with pytest.raises(UserError, match="par_reporter run"):
        reporter_rl.load_reporter(tmp_path)
    from protege.systems.par.evaluate import (
        babyai_rows,  # `protege eval babyai` on the run
    )
    row = babyai_rows(tmp_path / "rep", None, 2)[0]
    assert row["episodes"] == 2 and row["level"] == "Protege-Examine-v0"
    with pytest.raises(UserError, match="examine world only"):
        babyai_rows(tmp_path / "rep", "BabyAI-GoToLocal-v0", 2)


def test_actor_bc_run_and_load(tmp_path):
    summary = _run(actor_bc, tmp_path, "actor", demo_episodes=6, eval_episodes=2,
                   policy={"dim": 16, "n_film": 1}, trainer={"steps": 2, "batch_size": 4, "log_every": 1})
    assert summary["segments"] >= 12 and "eval/oracle/success" in summary
    actor = load_actor(str(tmp_path / "actor"))
    result = evaluate(RulePlanner(), actor, OracleReporter(), 2)
    assert result["episodes"] == 2
    with pytest.raises(UserError, match="par_actor run"):
        load_actor(str(tmp_path))


def test_demo_segments_end_as_the_expert_does():
    segments = actor_bc.demo_segments(5, 6, 3, seed=0)
    for s in segments:
        assert len(s["images"]) == len(s["actions"]) == len(s["directions"])
        last = int(s["actions"][-1])
        assert last == (3 if s["instruction"].startswith("pick up") else 6)  # pickup / done


@pytest.mark.slow
def test_builtin_planner_run_is_a_local_planner_and_malformed_is_counted(tmp_path):
    summary = _run(planner_lm, tmp_path, "planner", episodes=8, eval_episodes=2,
                   model={"n_layer": 1, "n_embd": 16, "n_head": 2, "context": 256},
                   trainer={"steps": 2, "batch_size": 4, "log_every": 1})
    assert summary["pairs"] > 8
    # an (almost) untrained decoder: whatever it says, every episode ends, malformed ones counted
    total = summary["eval/none/malformed_replies"] + summary["eval/oracle/malformed_replies"]
    assert total >= summary["eval/none/failed_malformed"] + summary["eval/oracle/failed_malformed"]
    cache = tmp_path / "cache.jsonl"
    live = make_planner(str(tmp_path / "planner"), cache=str(cache))
    first = evaluate(live, ScriptedActor(), OracleReporter(), 2, out=tmp_path / "a.jsonl")
    replay = make_planner(str(tmp_path / "planner"), cache=str(cache), offline=True)
    again = evaluate(replay, ScriptedActor(), OracleReporter(), 2, out=tmp_path / "b.jsonl")
    assert first == again and (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_bad_planner_spec_is_one_line(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        make_planner(str(tmp_path))
    with pytest.raises(UserError, match="planner_model"):
        make_planner("https://example.invalid/v1")


def test_reply_targets_are_the_reply_tokens_shifted():
    examples = [([5, 6, 7], [8, 9, 1]), ([5], [4, 1])]
    batch = planner_lm.make_batch(examples, [0, 1], pad=0)
    assert batch["ids"].tolist() == [[5, 6, 7, 8, 9, 1], [5, 4, 1, 0, 0, 0]]
    # position t predicts token t+1: only the reply's tokens (and <eos>) are targets
    assert batch["targets"][0][batch["mask"][0]].tolist() == [8, 9, 1]
    assert batch["targets"][1][batch["mask"][1]].tolist() == [4, 1]
    assert batch["mask"][0].tolist() == [False, False, True, True, True, False]


def test_viewer_prints_the_dialogue(tmp_path):
    from protege.systems.par.dialogue import NoReporter
    from protege.systems.par.show import dialogue_lines, live_episode, stored_episode
    evaluate(RulePlanner(), ScriptedActor(), OracleReporter(), 2, out=tmp_path / "e.jsonl")
    lines = dialogue_lines(stored_episode(tmp_path / "e.jsonl", 1))
    assert lines[0].startswith("seed 1000000001") and any(ln.strip().startswith("Reporter: it is") for ln in lines)
    live = dialogue_lines(live_episode(1, RulePlanner(), ScriptedActor(), OracleReporter()))
    assert live == lines
    quiet = dialogue_lines(live_episode(1, RulePlanner(), ScriptedActor(), NoReporter()))
    assert not any("Reporter:" in ln for ln in quiet)
    with pytest.raises(UserError, match="holds episodes 0..1"):
        stored_episode(tmp_path / "e.jsonl", 5)
    (tmp_path / "bad.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match="line 1"):
        stored_episode(tmp_path / "bad.jsonl", 0)


@pytest.mark.slow
def test_cli_eval_and_show(cli, tmp_path):
    code, out = cli("par", "eval", "--episodes", "4", "--reporter", "none", "--reporter", "oracle",
                    "--out", "episodes")
    assert code == 0, out
    assert "oracle" in out and "malformed" in out
    code, out = cli("par", "show", "--source", "episodes/oracle.jsonl", "--episode", "1")
    assert code == 0 and "Planner:" in out and "Reporter: it is" in out, out
    code, out = cli("par", "show", "--episode", "0", "--reporter", "none")
    assert code == 0 and "Planner:" in out and "Reporter:" not in out, out
    code, out = cli("par", "eval", "--episodes", "2", "--reporter", "psychic")
    assert code != 0 and "psychic" in out and "Traceback" not in out
    code, out = cli("par", "show", "--source", "episodes/oracle.jsonl", "--episode", "99")
    assert code != 0 and "holds episodes 0..3" in out and "Traceback" not in out
    code, out = cli("par", "eval", "--episodes", "2", "--n-objects", "9")
    assert code != 0 and "n_objects" in out and "Traceback" not in out


@pytest.mark.slow
def test_reporter_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    args = ["iterations=6", "episodes=3", "checkpoint_every=1", "eval_episodes=0"]

    def finish(*extra):
        proc = subprocess.run(protege_cmd("run", "par_reporter", *args, *extra), cwd=tmp_path,
                              env=protege_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr

    finish("name=straight")
    kill_after_checkpoint(protege_cmd("run", "par_reporter", *args, "name=killed"),
                          tmp_path / "runs" / "killed", tmp_path, "step-00000002")
    finish("name=killed", "--resume")
    a = load_file(str(tmp_path / "runs/straight/checkpoints/step-00000006/model.safetensors"))
    b = load_file(str(tmp_path / "runs/killed/checkpoints/step-00000006/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda d: [{k: v for k, v in r.items() if not k.startswith("time/")}
                       for r in read_metrics(d, wall_clock=False)]
    assert strip(tmp_path / "runs/straight") == strip(tmp_path / "runs/killed")


@pytest.mark.slow
def test_rl_reporter_learns_to_report_the_property(tmp_path):
    """Bounded and seeded: 40 iterations of 32 episodes take the greedy Reporter from no better than
    no Reporter to most of the oracle's success."""
    summary = _run(reporter_rl, tmp_path, "learn", iterations=40, episodes=32, eval_episodes=60)
    assert summary["eval/learnt/success"] > summary["eval/none/success"] + 0.2
    spec = json.loads((tmp_path / "learn" / reporter_rl.REPORTER_FILE).read_text())
    assert spec["reports"] == REPORTS
