"""Typed configs: frozen-free dataclasses filled from YAML recipes plus dotted overrides.

A recipe is a YAML mapping with an `experiment` key naming a registered experiment (see
`protege.core.registry`) and the fields of that experiment's config dataclass. Overrides such as
`trainer.lr=3e-4 seed=2` are applied to the mapping before it is type-checked, so an unknown key
or a wrong type is reported the same way wherever it came from.
"""

import dataclasses
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
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"recipe {path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
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


def from_dict(cls, data: dict, where: str, prefix: str = ""):
    """Build dataclass `cls` from `data`, checking every key and type; errors name `where` and the key."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: {prefix.rstrip('.') or 'config'} must be a mapping, "
                        f"got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise UserError(f"{where}: unknown key {prefix}{key!r} "
                            f"(valid keys{' in ' + prefix.rstrip('.') if prefix else ''}: "
                            f"{', '.join(fields)})")
    kwargs = {key: _coerce(hints[key], value, where, prefix + key) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise UserError(f"{where}: {prefix.rstrip('.') or 'config'}: {e}") from None


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def _coerce(tp, value, where: str, key: str):
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, key + ".")
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
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _type_error(where, key, tp, value)
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
