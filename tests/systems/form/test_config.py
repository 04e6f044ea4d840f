"""The control experiment's configs: every field has a help line, and a bad value fails at load, in one
line naming the key, before any work (no run directory is made)."""

import pytest

from protege.core.config import from_dict
from protege.core.config_help import missing_help
from protege.core.errors import UserError
from protege.rl.online import LoopConfig
from protege.rl.sac import SACConfig
from protege.systems.form import experiment as ce


@pytest.mark.parametrize("cls", [ce.Config, ce.DistractorsConfig, ce.FORMConfig, ce.GAILConfig, ce.BCConfig,
                                 SACConfig, LoopConfig])
def test_every_field_has_a_help_line(cls):
    assert missing_help(cls) == []


@pytest.mark.parametrize("data, fragment", [
    ({"form": {"components": 0}}, "components must be >= 1"),
    ({"form": {"log_std_min": 3.0}}, "log_std_min must be below"),
    ({"form": {"scale": float("nan")}}, "scale must be a finite number"),
    ({"gail": {"disc_every": 0}}, "disc_every must be >= 1"),
    ({"gail": {"reward_kind": "logit"}}, "reward_kind must be one of gail, airl"),
    ({"gail": {"gp_space": "whitened"}}, "gp_space must be one of"),
    ({"bc": {"checkpoint_every": -1}}, "checkpoint_every must be >= 0"),
    ({"sac": {"gamma": 1.5}}, "gamma must be in [0, 1]"),
    ({"sac": {"tau": 0.0}}, "tau must be in (0, 1]"),
    ({"sac": {"batch_size": 0}}, "batch_size must be >= 1"),
    ({"loop": {"checkpoint_every": -5}}, "checkpoint_every must be >= 0"),
    ({"loop": {"steps": 0}}, "steps must be >= 1"),
    ({"distractors": {"count": -1}}, "count must be >= 0"),
    ({"distractors": {"kind": "noise"}}, "kind must be one of ou, sine, body"),
    ({"method": "dagger"}, "method must be one of"),
    ({"task": "cartpole-swing"}, "unknown control task 'cartpole-swing'. Did you mean cartpole-swingup"),
    ({"action_repeat": 0}, "action_repeat must be >= 1"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"eval_episodes": 0}, "eval_episodes must be >= 1"),
])
def test_bad_values_fail_at_load(data, fragment):
    with pytest.raises(UserError, match=None) as err:
        from_dict(ce.Config, data, "recipe.yaml")
    message = str(err.value)
    assert fragment in message and "\n" not in message, message


def test_python_construction_checks_choices_too():
    with pytest.raises(ValueError, match="reward_kind must be one of gail, airl"):
        ce.GAILConfig(reward_kind="logit")


def test_cli_refuses_a_bad_override_in_one_line_before_any_work(cli, tmp_path):
    code, out = cli("run", "form_cartpole", "form.components=0", "name=bad", timeout=120)
    assert code == 2 and "components must be >= 1" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "runs").exists()
