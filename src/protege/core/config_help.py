"""What every config field means and which values it takes.

The help is the docstring line under the field (CleanRL style):

    steps: int = 1000
    \"\"\"optimiser steps in total\"\"\"

The help lives in one place, the source of the dataclass, so it cannot drift from the field it
describes. `describe` lists a config's fields (nested sections as dotted keys) with type, value and
help; `protege recipes --show NAME` prints that list for a recipe. `check_fields` holds a config's
values to their ranges in its `__post_init__`, so a bad value fails at load, before any work, with
a message naming the key.
"""

import ast
import dataclasses
import functools
import inspect
import math
import textwrap
import types
import typing
from typing import Literal, Union, get_args, get_origin


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """{field name: its docstring} for dataclass `cls`, including fields inherited from bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(klass) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):  # defined interactively: no source to read
        return {}
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    docs = {}
    for stmt, after in zip(node.body, node.body[1:] + [None]):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                and isinstance(after.value.value, str):
            docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs


def type_name(tp) -> str:
    """A short readable type: int, float, str | None, list[int], a | b | c for a Literal."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return " | ".join(map(str, args))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]" if args else origin.__name__
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def describe(cls, config=None, prefix: str = "") -> list[dict]:
    """One row per field of `cls` (nested dataclass sections first as their own row, then their
    fields under dotted keys): key, type, value (of `config`, else the default) and help."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        value = getattr(config, f.name) if config is not None else _default(f)
        key = prefix + f.name
        if dataclasses.is_dataclass(tp):
            rows.append({"key": key, "type": tp.__name__, "value": "", "help": docs.get(f.name, "")})
            rows += describe(tp, value, key + ".")
        else:
            rows.append({"key": key, "type": type_name(tp), "value": _show(value),
                         "help": docs.get(f.name, "")})
    return rows


def missing_help(cls) -> list[str]:
    """Dotted keys of the fields of `cls` (recursively) without a help line."""
    return [row["key"] for row in describe(cls) if not row["help"]]


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _show(value) -> str:
    if isinstance(value, str):
        return repr(value) if value == "" or value != value.strip() else value
    return repr(value)


# rule -> (test, how the rule reads in an error message)
RULES = {
    ">0": (lambda v: v > 0, "> 0"),
    ">=0": (lambda v: v >= 0, ">= 0"),
    ">=1": (lambda v: v >= 1, ">= 1"),
    "[0,1]": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "[0,1)": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "(0,1]": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "nonempty": (lambda v: len(v) > 0, "non-empty"),
}


def check_fields(config, **rules: str) -> None:
    """Raise ValueError naming the first field of `config` that breaks its rule (a key of RULES),
    or that holds a float that is not finite (NaN or infinity is never a setting). The message
    ends with the field's help, so it says what the field is as well as what is wrong with it."""
    docs = field_docs(type(config))

    def fail(name: str, what: str):
        about = f" ({docs[name]})" if docs.get(name) else ""
        raise ValueError(f"{name} must be {what}{about}")

    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            fail(f.name, f"a finite number, got {value}")
    for name, rule in rules.items():
        test, text = RULES[rule]
        value = getattr(config, name)
        if not test(value):
            fail(name, f"{text}, got {value!r}")
