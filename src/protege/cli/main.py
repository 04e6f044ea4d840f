"""Entry point of the `protege` command: imports each domain's commands and maps user errors to
one line on stderr with exit status 2 (no traceback)."""

import importlib
import sys

import click
import typer

from protege.cli.apps import app
from protege.errors import UserError

# Each domain's CLI module registers its commands on import (heavy imports stay inside commands).
DOMAIN_CLIS = [
    "protege.cli.core",
    "protege.cli.lm",
    "protege.cli.nav",
    "protege.cli.babyai",
    "protege.cli.control",
]


def _classes(*names: str) -> tuple:
    """The exception classes of that name in click and in the click copy newer typer vendors."""
    modules = [click.exceptions, typer.exceptions]
    try:
        import typer._click.exceptions as vendored
        modules.append(vendored)
    except ImportError:
        pass
    return tuple({getattr(m, n) for m in modules for n in names if hasattr(m, n)})


USAGE_ERRORS = _classes("ClickException")
ABORTS = _classes("Abort")
EXITS = _classes("Exit")


def main(argv: list[str] | None = None) -> None:
    for module in DOMAIN_CLIS:
        importlib.import_module(module)
    try:
        code = app(args=argv, standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except ABORTS:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except USAGE_ERRORS as e:
        e.show()
        sys.exit(e.exit_code)
    except EXITS as e:
        sys.exit(e.exit_code)
    # Not standalone, typer turns Ctrl-C (and any `Exit`) into a returned exit code, 130 for Ctrl-C;
    # ignoring it made an interrupted command exit 0
    if isinstance(code, int) and code:
        if code == 130:
            print("aborted", file=sys.stderr)
        sys.exit(code)
