"""Typed configs: frozen-free dataclasses filled from YAML recipes plus dotted overrides.

A recipe is a YAML mapping with an `experiment` key naming a registered experiment (see
`protege.core.registry`) and the fields of that experiment's config dataclass. Overrides such as
`trainer.lr=3e-4 seed=2` are applied to the mapping before it is type-checked, so an unknown key
or a wrong type is reported the same way wherever it came from.
"""

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from protege.core.errors import UserError


def read_recipe(name_or_path: str, builtin: dict[str, Path]) -> tuple[dict, str]:
    """The raw mapping of a recipe given as a path or a name in `builtin`, and where it came from."""
    path = Path(name_or_path)
    if not path.exists():
        if name_or_path in builtin:
            path = builtin[name_or_path]
        elif path.suffix in (".yaml", ".yml") or "/" in name_or_path:
            raise UserError(f"recipe file {name_or_path} does not exist "
                            f"(built-in recipes: {', '.join(builtin)})")
        else:
            from protege.core.errors import unknown_name
            raise unknown_name("recipe", name_or_path, builtin)
    if path.is_dir():
        raise UserError(f"recipe {path} is a folder, not a YAML file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"recipe {path}: not UTF-8 text (byte {e.start}); a recipe is a YAML file") from None
    except OSError as e:
        raise UserError(f"recipe {path}: cannot be read ({e.strerror})") from None
    if "\x00" in text:
        raise UserError(f"recipe {path}: a binary file, not YAML text")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"recipe {path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        raise UserError(f"recipe {path} is empty (expected a mapping of config keys)")
    if not isinstance(data, dict):
        raise UserError(f"recipe {path}: expected a mapping of config keys, got {type(data).__name__}")
    return data, str(path)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of `data` with each `a.b.c=value` applied; values are parsed as YAML scalars."""
    data = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. trainer.lr=3e-4)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return data


def override_sources(overrides: list[str]) -> dict[str, str]:
    """{dotted key: raw text} of command-line overrides, so errors can blame the override."""
    return dict(item.split("=", 1) for item in overrides if "=" in item)


def _blame(where: str, key: str, overrides: dict[str, str] | None) -> str:
    """Where a bad value at `key` came from: the override that set it, else the recipe."""
    for name, raw in (overrides or {}).items():
        if name == key or key.startswith(name + "."):
            return f"override {name}={raw}"
    return where


def _blame_section(where: str, section: str, overrides: dict[str, str] | None) -> str:
    """Where a value rejected by a section's `__post_init__` may have come from: the one override
    inside the section, else the recipe (with the overrides inside the section, if several)."""
    inside = [f"{k}={v}" for k, v in (overrides or {}).items()
              if not section or k.startswith(section + ".") or k == section]
    if len(inside) == 1:
        return f"override {inside[0]}"
    return f"{where} with overrides {', '.join(inside)}" if inside else where


def from_dict(cls, data: dict, where: str, prefix: str = "", overrides: dict[str, str] | None = None):
    """Build dataclass `cls` from `data`, checking every key and type; errors name `where` and the
    key, or the override that set it (`overrides`: see `override_sources`)."""
    section = prefix.rstrip(".")
    if not isinstance(data, dict):
        raise UserError(f"{_blame(where, section, overrides)}: {section or 'config'} must be a "
                        f"mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise UserError(f"{_blame(where, prefix + str(key), overrides)}: unknown key "
                            f"{prefix}{key!r} (valid keys{' in ' + section if prefix else ''}: "
                            f"{', '.join(fields)})")
    kwargs = {key: _coerce(hints[key], value, where, prefix + key, overrides)
              for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise UserError(f"{_blame_section(where, section, overrides)}: {section or 'config'}: {e}") from None


def check_run_name(name: str, where: str, overrides: dict[str, str] | None = None) -> str:
    """A run's `name` becomes one folder under runs/: an empty name made runs/ itself the run
    directory, and a separator or `..` would put it somewhere else."""
    blame = _blame(where, "name", overrides)
    if not name.strip():
        raise UserError(f"{blame}: name must not be empty (it names the run's folder under runs/)")
    if "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise UserError(f"{blame}: name {name!r} must be a plain folder name (no path separators, "
                        f"not . or ..)")
    return name


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def _coerce(tp, value, where: str, key: str, overrides: dict[str, str] | None = None):
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, key + ".", overrides)
    where = _blame(where, key, overrides)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where, key)
            except UserError as e:
                errors.append(e)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            raise UserError(f"{where}: {key} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _type_error(where, key, tp, value)
        inner = args[0] if args else Any
        items = [_coerce(inner, v, where, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _type_error(where, key, tp, value)
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(where, key, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(where, key, tp, value)
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise _type_error(where, key, tp, value)
        if not math.isfinite(number):  # passes every `x > 0` check, then poisons training
            raise UserError(f"{where}: {key} must be a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise _type_error(where, key, tp, value)
    return value


def _type_error(where: str, key: str, tp, value) -> UserError:
    name = getattr(tp, "__name__", str(tp))
    return UserError(f"{where}: {key} expects {name}, got {value!r} ({type(value).__name__})")


def _deep_copy(data):
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data
