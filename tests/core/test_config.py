from dataclasses import dataclass, field
from typing import Literal

import pytest

from protege.core.config import apply_overrides, from_dict
from protege.core.errors import UserError


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10
    schedule: Literal["constant", "cosine"] = "cosine"


@dataclass
class Outer:
    name: str = "x"
    seed: int = 0
    trainer: Inner = field(default_factory=Inner)
    layers: list[int] = field(default_factory=list)


def test_overrides_are_applied_and_typed():
    data = apply_overrides({"trainer": {"lr": 0.1}}, ["trainer.lr=3e-4", "seed=2", "layers=[1, 2]"])
    cfg = from_dict(Outer, data, "r.yaml")
    assert cfg.trainer.lr == pytest.approx(3e-4) and cfg.seed == 2 and cfg.layers == [1, 2]


@pytest.mark.parametrize("data,message", [
    ({"trainer": {"lrr": 1}}, "unknown key trainer.'lrr'"),
    ({"seed": "two"}, "seed expects int"),
    ({"trainer": {"schedule": "cosin"}}, "trainer.schedule must be one of constant, cosine"),
    ({"trainer": 3}, "trainer must be a mapping"),
])
def test_bad_configs_name_the_key(data, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
        from_dict(Outer, data, "r.yaml")


def test_override_without_equals_is_rejected():
    with pytest.raises(UserError, match="key=value"):
        apply_overrides({}, ["trainer.lr"])


def assert_one_line_error(code, out, *needles):
    assert code != 0
    lines = [l for l in out.strip().splitlines() if l.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("error:") and "Traceback" not in out
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_missing_recipe_file(cli):
    assert_one_line_error(*cli("run", "no-such.yaml"), "no-such.yaml", "does not exist")


def test_cli_unknown_builtin_recipe_lists_close_matches(cli):
    assert_one_line_error(*cli("run", "lm_arithmetic_ml"), "lm_arithmetic_mle")


def test_cli_unknown_override_key(cli):
    assert_one_line_error(*cli("run", "lm_arithmetic_mle", "trainer.lrr=1"), "trainer.'lrr'", "valid keys")


def test_cli_recipe_with_wrong_type(cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("experiment: lm\nname: bad\ntrainer: {steps: many}\n")
    assert_one_line_error(*cli("run", "bad.yaml"), "bad.yaml", "trainer.steps expects int")


def test_cli_bad_hyperparameter_leaves_no_run_dir(cli, tmp_path):
    assert_one_line_error(*cli("run", "lm_arithmetic_iqlearn", "objective.lam=-1"), "lambda")
    assert not (tmp_path / "runs").exists()


def test_cli_missing_option_is_a_usage_error_without_traceback(cli):
    code, out = cli("data", "arithmetic")
    assert code == 2 and "Missing argument" in out and "Traceback" not in out


def test_cli_width_not_divisible_by_heads_fails_before_any_work(cli, tmp_path):
    assert_one_line_error(*cli("run", "lm_arithmetic_mle", "model.n_embd=30", "model.n_head=4"),
                          "model: n_embd must be divisible by n_head", "n_embd=30")
    assert not (tmp_path / "runs").exists()


def test_cli_batch_not_divisible_by_accumulation_fails_before_any_work(cli, tmp_path):
    assert_one_line_error(*cli("run", "lm_arithmetic_mle", "trainer.batch_size=10", "trainer.grad_accum=3"),
                          "trainer: batch_size must be divisible by grad_accum")
    assert not (tmp_path / "runs").exists()
