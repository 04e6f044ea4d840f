import torch
from typer.testing import CliRunner

import protege.systems.agent_imitation.cli  # noqa: F401  (registers the commands)
from protege.core.cli import app
from protege.core.runs import Run
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig


def test_demos_and_eval_commands(tmp_path):
    runner = CliRunner()
    out = tmp_path / "demos"
    result = runner.invoke(app, ["data", "demos", "--env", "BabyAI-GoToRedBall-v0", "--episodes", "6",
                                 "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "demonstrations in" in result.output and (out / "protege-manifest.json").exists()

    torch.manual_seed(0)
    cfg = {"experiment": "babyai_offline", "name": "r", "level": "BabyAI-GoToRedBall-v0",
           "policy": {"dim": 16, "n_film": 1}}
    run = Run(tmp_path / "run", cfg)
    run.save_checkpoint(1, BabyAIPolicy(PolicyConfig(dim=16, n_film=1)).state_dict(), {})
    result = runner.invoke(app, ["eval", "babyai", str(tmp_path / "run"), "--episodes", "8",
                                 "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "BabyAI held-out evaluation" in result.output and "Wilson" in result.output
    assert "0.324]" in result.output  # this untrained policy: 0/8 successes, Wilson upper bound 0.324
    bad = runner.invoke(app, ["eval", "babyai", str(tmp_path), "--episodes", "8"])
    assert bad.exit_code != 0 and "not a BabyAI run directory" in str(bad.exception)


def _terminal_signals() -> None:
    """In the child before exec: Ctrl-C handled by default and no signal blocked, as a terminal
    starts a command, whatever the test process inherited or blocked."""
    import signal
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_demos_stops_quietly_and_resumes(tmp_path):
    """Ctrl-C reaches every process of the group: the bot workers and the Minari writer leave it to
    the parent (no traceback from each of them), the command exits 130, and the finished chunks
    stay for a rerun to reuse (test_minari_writer checks the reuse)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "d"
    cmd = [sys.executable, "-m", "protege", "data", "demos", "--env", "BabyAI-GoToLocal-v0",
           "--episodes", "20000", "--workers", "2", "--out", str(out)]
    # PYTHONFAULTHANDLER: a hang is reported with every thread's stack (SIGABRT below), not a timeout
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,  # its own process group, as a terminal gives
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
                            preexec_fn=_terminal_signals)
    deadline = time.time() + 120
    while len(list((out / ".chunks").glob("*.npz"))) < 4 and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        output = proc.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGABRT)
        raise AssertionError("no exit 60 s after Ctrl-C:\n" + proc.communicate(timeout=30)[0]) from None
    assert proc.returncode == 130 and "aborted" in output, output
    assert "Traceback" not in output, output
    assert not (out / "data").exists() and len(list((out / ".chunks").glob("*.npz"))) >= 4
