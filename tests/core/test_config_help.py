"""Every config field says what it means; `protege recipes --show NAME` lists them."""

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Literal

import pytest

from protege.core.config_help import (
    check_fields,
    describe,
    field_docs,
    missing_help,
    type_name,
)
from protege.systems import SYSTEMS, builtin_recipes, resolve
from tests.core.test_config import assert_one_line_error


@dataclass
class Inner:
    lr: float = 1e-3
    """step size"""
    schedule: Literal["constant", "cosine"] = "cosine"
    """how lr
    changes"""


@dataclass
class Outer:
    seed: int = 0
    """the seed"""
    tag: str | None = None
    inner: Inner = field(default_factory=Inner)
    """the inner section"""
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    """layer sizes"""


@dataclass
class Derived(Outer):
    extra: int = 1
    """added by the subclass"""


def test_field_docs_reads_the_string_directly_under_each_field():
    assert field_docs(Inner) == {"lr": "step size", "schedule": "how lr changes"}
    assert field_docs(Outer) == {"seed": "the seed", "inner": "the inner section", "sizes": "layer sizes"}
    assert field_docs(Derived)["seed"] == "the seed" and field_docs(Derived)["extra"] == "added by the subclass"


def test_describe_lists_nested_fields_under_dotted_keys_with_types_values_and_help():
    rows = describe(Outer, Outer(seed=3, inner=Inner(lr=0.5)))
    assert [r["key"] for r in rows] == ["seed", "tag", "inner", "inner.lr", "inner.schedule", "sizes"]
    by_key = {r["key"]: r for r in rows}
    assert by_key["seed"] == {"key": "seed", "type": "int", "value": "3", "help": "the seed"}
    assert by_key["inner.lr"]["value"] == "0.5" and by_key["inner.lr"]["type"] == "float"
    assert by_key["inner.schedule"]["type"] == "constant | cosine"
    assert by_key["tag"]["type"] == "str | None" and by_key["tag"]["value"] == "None"
    assert by_key["sizes"]["type"] == "list[int]" and by_key["sizes"]["value"] == "[1, 2]"
    assert by_key["inner"]["type"] == "Inner"
    assert describe(Outer)[0]["value"] == "0"  # no config: the defaults
    assert missing_help(Outer) == ["tag"]
    assert type_name(dict[str, float]) == "dict[str, float]"


def test_check_fields_names_the_key_its_rule_and_its_help():
    with pytest.raises(ValueError, match=r"^lr must be > 0, got -1\.0 \(step size\)$"):
        check_fields(Inner(lr=-1.0), lr=">0")
    with pytest.raises(ValueError, match=r"^lr must be a finite number, got inf \(step size\)$"):
        check_fields(Inner(lr=float("inf")))
    check_fields(Inner(lr=1.0), lr="(0,1]")  # the closed end of a range is in it


def experiment_configs():
    for system in SYSTEMS.values():
        for experiment, module in system.experiments.items():
            yield f"{system.name}/{experiment}", importlib.import_module(module).Config


CONFIGS = list(experiment_configs())


@pytest.mark.parametrize("name,config", CONFIGS, ids=[name for name, _ in CONFIGS])
def test_every_config_field_of_every_experiment_has_help(name, config):
    assert dataclasses.is_dataclass(config)
    missing = missing_help(config)
    assert not missing, f"{name}: fields without a docstring line under them: {', '.join(missing)}"


def test_every_builtin_recipe_passes_its_checks():
    for recipe in builtin_recipes():
        resolve(recipe, [])


def test_recipes_show_prints_every_field_with_value_and_help(cli):
    code, out = cli("recipes", "--show", "lm_arithmetic_iqlearn")
    assert code == 0, out
    _, config, _ = resolve("lm_arithmetic_iqlearn", [])
    for row in describe(type(config), config):
        assert row["key"] in out
    line = next(l for l in out.splitlines() if " objective.lam " in l)
    assert "0.01" in line and "float" in line and "lambda" in line  # the recipe's value, not the default
    assert "trainer.warmup_steps" in out and "warm-up" in out


def test_recipes_show_of_an_unknown_name_lists_close_matches(cli):
    assert_one_line_error(*cli("recipes", "--show", "lm_arithmetic_iqlearm"), "unknown recipe",
                          "lm_arithmetic_iqlearn")
