import json

import pytest
import torch

from protege.core.errors import UserError
from protege.core.runs import Run, load_state
from protege.core.seeds import rng_state, set_rng_state


def test_checkpoints_round_trip_and_keep_the_newest(tmp_path):
    run = Run(tmp_path / "r", {"a": 1})
    for step in (1, 2, 3):
        run.save_checkpoint(step, {"w": torch.full((2,), float(step))}, {"opt": {"lr": 0.1 * step}})
    weights, state = run.load_checkpoint()
    assert torch.equal(weights["w"], torch.full((2,), 3.0)) and state["step"] == 3
    assert sorted(p.name for p in run.ckpt_dir.glob("step-*")) == ["step-00000002", "step-00000003"]
    assert not list(run.ckpt_dir.glob(".*tmp"))  # no temporary left behind


def test_tied_weights_are_saved(tmp_path):
    shared = torch.ones(3)
    run = Run(tmp_path / "r", {})
    run.save_checkpoint(1, {"emb": shared, "head": shared}, {})
    weights, _ = run.load_checkpoint()
    assert torch.equal(weights["emb"], weights["head"])


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    import random

    import numpy as np
    state = rng_state()
    torch.save(state, tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(load_state(tmp_path / "s.pt"))
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_resume_drops_metrics_after_the_checkpoint_and_a_torn_last_line(tmp_path):
    run = Run(tmp_path / "r", {"a": 1})
    for step in (1, 2, 3):
        run.log(step, {"loss": float(step)})
    run.save_checkpoint(2, {"w": torch.zeros(1)}, {})
    run.close()
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')  # killed mid-write
    resumed = Run(tmp_path / "r", {"a": 1}, resume=True)
    assert [row["step"] for row in resumed.metrics()] == [1, 2]


def test_existing_run_and_changed_config_are_refused(tmp_path):
    Run(tmp_path / "r", {"a": 1}).log(1, {"x": 1.0})
    with pytest.raises(UserError, match="already exists"):
        Run(tmp_path / "r", {"a": 1})
    with pytest.raises(UserError, match="config differs"):
        Run(tmp_path / "r", {"a": 2}, resume=True)
    assert json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])["x"] == 1.0


def test_a_tuple_in_the_config_resumes_as_the_list_yaml_saved(tmp_path):
    Run(tmp_path / "r", {"ks": (2, 4)}).close()
    Run(tmp_path / "r", {"ks": (2, 4)}, resume=True).close()  # saved as [2, 4]: the same config
    with pytest.raises(UserError, match="config differs"):
        Run(tmp_path / "r", {"ks": (2, 6)}, resume=True)


# one writer per run directory -------------------------------------------------------------------
HOLD = """
import sys, time
from protege.core.runs import Run
run = Run(sys.argv[1], {"a": 1}, resume=sys.argv[2] == "resume")
print("holding", flush=True)
time.sleep(120)
"""


def hold_run(path, resume=False):
    """A second process that opens the run and keeps it (as a run still training would)."""
    import subprocess
    import sys

    from tests.conftest import protege_env
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "resume" if resume else "new"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=protege_env())
    line = proc.stdout.readline()
    assert line.strip() == "holding", proc.stderr.read()
    return proc


def test_a_running_run_refuses_a_second_writer_until_its_process_dies(tmp_path):
    import signal
    proc = hold_run(tmp_path / "r")
    try:
        with pytest.raises(UserError, match=f"in use by process {proc.pid}"):
            Run(tmp_path / "r", {"a": 1}, resume=True)
        with pytest.raises(UserError, match="already exists"):
            Run(tmp_path / "r", {"a": 1})
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resumed = Run(tmp_path / "r", {"a": 1}, resume=True)  # the OS dropped the killed run's lock
    resumed.close()


def test_resume_of_a_resumed_running_run_is_refused(tmp_path):
    Run(tmp_path / "r", {"a": 1}).close()
    proc = hold_run(tmp_path / "r", resume=True)
    try:
        with pytest.raises(UserError, match=f"process {proc.pid}"):
            Run(tmp_path / "r", {"a": 1}, resume=True)
    finally:
        proc.kill()
        proc.wait()


RACE = """
import sys, time
from pathlib import Path
from protege.core.errors import UserError
from protege.core.runs import Run
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
try:
    run = Run(sys.argv[1], {"who": sys.argv[3]})
    print("created", flush=True)
    time.sleep(1)
except UserError as e:
    print("refused", e, flush=True)
"""


def test_two_processes_creating_one_run_one_wins(tmp_path):
    import subprocess
    import sys

    from tests.conftest import protege_env
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path / "r"), str(go), str(i)],
                              stdout=subprocess.PIPE, text=True, env=protege_env()) for i in range(2)]
    import time
    time.sleep(2)  # both are importing, then waiting on the start line
    go.touch()
    outs = sorted(p.communicate(timeout=60)[0].split()[0] for p in procs)
    assert outs == ["created", "refused"]
    who = (tmp_path / "r" / "config.yaml").read_text()
    assert who in ("who: '0'\n", "who: '1'\n")


def test_an_empty_or_separator_name_never_becomes_the_runs_folder(tmp_path):
    (tmp_path / "r").write_text("a file")
    with pytest.raises(UserError, match="is an existing file"):
        Run(tmp_path / "r", {})
    assert (tmp_path / "r").read_text() == "a file"


# atomic writes never delete a folder ----------------------------------------------------------
def test_atomic_path_refuses_to_replace_a_folder(tmp_path):
    from protege.core.atomic import atomic_path, write_text_atomic
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    with pytest.raises(UserError, match="existing folder"):
        write_text_atomic(tmp_path / "d", "text")
    with pytest.raises(UserError, match="existing folder"), atomic_path(tmp_path / "d") as tmp:
        tmp.mkdir()
    assert (tmp_path / "d" / "keep").read_text() == "x"
    (tmp_path / "f").write_text("file")
    with pytest.raises(UserError, match="existing file"), atomic_path(tmp_path / "f") as tmp:
        tmp.mkdir()
    assert (tmp_path / "f").read_text() == "file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]  # no temporaries left


# reading a run back -----------------------------------------------------------------------------
def test_truncated_weights_and_missing_config_are_named(tmp_path):
    from protege.core.runs import check_safetensors, read_run_config
    run = Run(tmp_path / "r", {"a": 1})
    run.save_checkpoint(1, {"w": torch.zeros(100)}, {})
    run.close()
    weights = run.latest_checkpoint() / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-40])
    with pytest.raises(UserError, match="model.safetensors: not a complete safetensors file"):
        run.load_checkpoint()
    with pytest.raises(UserError, match="missing"):
        check_safetensors(tmp_path / "nothing.safetensors")
    (tmp_path / "r" / "config.yaml").write_text("")
    with pytest.raises(UserError, match="config.yaml: expected the run's config"):
        read_run_config(tmp_path / "r")
    (tmp_path / "r" / "config.yaml").unlink()
    with pytest.raises(UserError, match="config.yaml: missing"):
        read_run_config(tmp_path / "r")


def test_resume_drops_rows_logged_after_the_checkpoint_at_its_own_step(tmp_path):
    """A final evaluation logged at the last step after the last checkpoint, then a kill: the
    resumed run must not keep that row (it logs it again), or metrics.jsonl holds it twice."""
    import torch

    from protege.core.runs import Run, read_metrics
    run = Run(tmp_path / "r", {"a": 1})
    run.log(1, {"loss": 1.0})
    run.log(2, {"loss": 0.5})
    run.save_checkpoint(2, {"w": torch.zeros(1)}, {})
    run.log(2, {"eval/return": 7.0})  # after the checkpoint, same step
    run.close()  # the process dies here, before summary.json
    resumed = Run(tmp_path / "r", {"a": 1}, resume=True)
    assert [r.get("loss", r.get("eval/return")) for r in read_metrics(tmp_path / "r")] == [1.0, 0.5]
    resumed.log(2, {"eval/return": 7.0})
    resumed.save_checkpoint(3, {"w": torch.zeros(1)}, {})
    assert resumed.restore() is not None and resumed.load_checkpoint()[1]["metrics_rows"] == 3
    resumed.close()
