"""Command groups shared by every domain: each domain's CLI module adds its commands to these."""

import gc
import sys
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table

# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 200)

app = typer.Typer(help="Protégé: learning behaviour from people.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Build, inspect and validate datasets.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate trained agents and models.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")


@contextmanager
def heavy_imports():
    """Import torch (and what a command imports with it) with the garbage collector paused, then
    freeze what the imports made. Why: importing torch creates ~10^5 long-lived objects and no
    garbage, yet its allocations trigger collections that walk all of them, and every later full
    collection walks them again: ~0.2 CPU s of a short command such as `eval lm` on a small model
    (docs/results/lm_eval_speed.md). Nothing to gain once torch is loaded (an in-process caller such
    as the tests): then it does nothing, so a long-lived process never freezes its own objects."""
    if "torch" in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def summary_table(title: str, rows: list[dict]) -> Table:
    """A rich table with one column per key of the first row; every command ends with one."""
    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for column in columns:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    return table


def print_summary(title: str, rows: list[dict]) -> None:
    """One row prints as a two-column key/value table (it stays readable however many keys)."""
    if len(rows) == 1 and len(rows[0]) > 6:
        rows = [{"key": k, "value": v} for k, v in rows[0].items()]
    console.print(summary_table(title, rows))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
