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


# values that pass a range check and fail later -------------------------------------------------
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "nan", "inf", "1e999"])
def test_non_finite_floats_fail_at_load_for_every_float_field(value):
    import yaml
    with pytest.raises(UserError, match="trainer.lr must be a finite number"):
        from_dict(Outer, {"trainer": {"lr": yaml.safe_load(value)}}, "r.yaml")


def test_a_bad_override_is_blamed_not_the_recipe():
    from protege.core.config import override_sources
    overrides = ["trainer.lr=nan", "seed=1"]
    data = apply_overrides({"trainer": {"steps": 3}}, overrides)
    with pytest.raises(UserError, match=r"^override trainer.lr=nan: trainer.lr must be a finite"):
        from_dict(Outer, data, "r.yaml", overrides=override_sources(overrides))
    data = apply_overrides({}, ["trainer.lrr=1"])
    with pytest.raises(UserError, match=r"^override trainer.lrr=1: unknown key"):
        from_dict(Outer, data, "r.yaml", overrides=override_sources(["trainer.lrr=1"]))
    with pytest.raises(UserError, match=r"^r.yaml: trainer.lr must be a finite"):  # from the file
        from_dict(Outer, {"trainer": {"lr": float("inf")}}, "r.yaml", overrides={"seed": "1"})


@pytest.mark.parametrize("name", ["", "  ", "a/b", "../x", ".", "..", "a\\b"])
def test_run_names_that_are_not_one_folder_are_refused(name):
    from protege.core.config import check_run_name
    with pytest.raises(UserError, match="name"):
        check_run_name(name, "r.yaml")


@pytest.mark.parametrize("content,message", [
    (None, "is a folder"), (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"), (b"a: 1\x00\x00", "binary"),
    (b"caf\xe9: 1\n", "not UTF-8"), (b"", "is empty"), (b"- a\n- b\n", "expected a mapping"),
])
def test_recipe_files_that_are_not_yaml_text(tmp_path, content, message):
    from protege.core.config import read_recipe
    path = tmp_path / "r.yaml"
    path.mkdir() if content is None else path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_recipe(str(path), {})
