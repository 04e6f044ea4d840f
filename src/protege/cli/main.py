"""Entry point of the `protege` command: imports the shared commands and every registered system's
command group, and maps user errors to one line on stderr with exit status 2 (no traceback)."""

import atexit
import gc
import importlib
import sys

import click
import typer

from protege.core.cli import app
from protege.core.errors import UserError

# Python's exit runs the cyclic garbage collector over every object still alive, torch's hundreds of
# thousands of module objects among them: ~0.3-0.4 CPU s of every command that imported torch (~9% of
# a fresh `eval lm` of a small model, docs/results/lm_eval_speed.md). The process is ending and its
# memory goes back to the system anyway, so at exit the collector is told to skip them. (At exit
# only: freezing after a command would keep later garbage of an in-process caller, e.g. tests.)
atexit.register(gc.freeze)


def load_commands() -> None:
    """Each CLI module adds its commands on import (heavy imports stay inside the commands)."""
    import protege.cli.commands  # noqa: F401
    from protege.systems import SYSTEMS
    for system in SYSTEMS.values():
        if system.cli:
            importlib.import_module(system.cli)


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


def _one_line(message: str) -> str:
    """An error is one line on stderr, whatever a library put in the message it wrapped."""
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> None:
    load_commands()
    try:
        code = app(args=argv, standalone_mode=False)
    except UserError as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        sys.exit(2)
    except ABORTS:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except USAGE_ERRORS as e:  # click's own print is four lines (usage, hint, blank, error): one
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        print(f"error: {_one_line(e.format_message())}{hint}", file=sys.stderr)
        sys.exit(e.exit_code)
    except EXITS as e:
        sys.exit(e.exit_code)
    # Not standalone, typer turns Ctrl-C (and any `Exit`) into a returned exit code, 130 for Ctrl-C;
    # ignoring it made an interrupted command exit 0
    if isinstance(code, int) and code:
        if code == 130:
            print("aborted", file=sys.stderr)
        sys.exit(code)
