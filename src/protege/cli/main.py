"""Entry point of the `protege` command: imports each domain's commands and maps user errors to
one line on stderr with exit status 2 (no traceback)."""

import importlib
import sys

import click

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


def main(argv: list[str] | None = None) -> None:
    for module in DOMAIN_CLIS:
        importlib.import_module(module)
    try:
        app(args=argv, standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
