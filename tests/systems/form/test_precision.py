"""A run's saved config records the precision `auto` resolved to, the run says so once, and resuming where
`auto` resolves differently is refused in one line naming the key, unless the saved value is passed."""

import platform

import pytest
import torch
import yaml

from protege.core import precision
from protege.core.errors import UserError
from protege.core.registry import resolve
from protege.systems import start


@pytest.fixture(autouse=True)
def auto_follows_the_hardware(monkeypatch):
    """The suite pins `auto` to fp32 (tests/conftest.py); these tests are about `auto` itself."""
    monkeypatch.delenv("PROTEGE_AUTO_PRECISION", raising=False)


TINY = ["time_limit=0.5", "action_repeat=4", "demo_episodes=1", "random_episodes=1", "eval_episodes=1",
        "loop.steps=30", "loop.eval_every=30", "loop.eval_episodes=1", "loop.log_every=10",
        "loop.checkpoint_every=10", "sac.learning_starts=10", "sac.batch_size=8", "sac.hidden=8",
        "gail.hidden=8", "gail.gp_batch=4"]


def pretend(monkeypatch, native: bool) -> None:
    flags = {"avx2", "avx512f", "avx512_bf16"} if native else {"avx2"}
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512" if native else "AVX2")
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(precision, "_ANNOUNCED", set())


def test_saved_config_records_the_resolved_precision_and_resume_needs_the_same(tmp_path, monkeypatch, capsys):
    pretend(monkeypatch, native=True)
    run_dir, _ = start("gail_sa_cartpole", [*TINY, "gail.precision=auto"], run_dir=tmp_path / "run")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (saved["sac"]["precision"], saved["gail"]["precision"], saved["form"]["precision"]) == ("bf16", "bf16", "fp32")
    err = capsys.readouterr().err
    assert err.count("precision sac.precision=bf16, gail.precision=bf16") == 1, err
    # the same recipe on a CPU without native bfloat16: auto resolves to fp32, the saved run used bf16
    pretend(monkeypatch, native=False)
    with pytest.raises(UserError) as refused:
        start("gail_sa_cartpole", [*TINY, "gail.precision=auto"], resume=True, run_dir=run_dir)
    message = str(refused.value)
    assert "sac.precision: saved 'bf16', now 'fp32'" in message and "pass sac.precision=bf16" in message
    assert "gail.precision: saved 'bf16'" in message and "bc.precision: saved 'bf16'" in message  # every auto
    assert "\n" not in message
    # with the saved values passed, it resumes (bf16 as it started) and warns of the emulated bf16
    start("gail_sa_cartpole", [*TINY, "gail.precision=bf16", "sac.precision=bf16", "bc.precision=bf16"],
          resume=True, run_dir=run_dir)
    err = capsys.readouterr().err
    assert "warning: precision sac.precision=bf16, gail.precision=bf16" in err and "slower" in err


@pytest.mark.parametrize("native, expected", [(False, "fp32"), (True, "bf16")])
def test_every_recipe_resolves_its_auto_settings(monkeypatch, native, expected):
    """The LM loop's trainer.precision and the control recipes' SAC resolve on load; the control recipes
    keep the reward models (and BC) in fp32, the settings the results table ran with."""
    pretend(monkeypatch, native)
    _, _, lm = resolve("lm_arithmetic_mle", [])
    assert lm["trainer"]["precision"] == expected
    _, _, form = resolve("form_cartpole", [])
    assert form["sac"]["precision"] == expected and form["form"]["precision"] == "fp32"
    _, _, bc = resolve("bc_control_cartpole", [])
    assert bc["bc"]["precision"] == "fp32"
