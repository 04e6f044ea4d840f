"""The commands every system shares: run a recipe, list recipes, compare runs, validate a dataset."""

from pathlib import Path
from typing import List, Optional

import typer

from protege.core.cli import app, console, data_app, print_summary


@app.command()
def run(recipe: str = typer.Argument(..., help="built-in recipe name or path to a YAML recipe"),
        overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. trainer.lr=3e-4"),
        resume: bool = typer.Option(False, "--resume", help="continue a killed run from its last checkpoint")):
    """Train and evaluate one experiment from a recipe; writes runs/<name>/."""
    from protege.systems import start
    run_dir, summary = start(recipe, overrides or [], resume=resume)
    print_summary(f"run {run_dir}", [summary])


@app.command()
def recipes(show: Optional[str] = typer.Option(None, "--show", metavar="NAME",
                                               help="list every config field of this recipe: key, type, value, help")):
    """List the built-in recipes, or (--show NAME) every config field of one with what it means."""
    from protege.core.config import read_recipe
    from protege.systems import builtin_recipes
    if show is not None:
        from protege.core.config_help import describe
        from protege.systems import resolve
        experiment, config, _ = resolve(show, [])
        print_summary(f"recipe {show} (experiment {experiment})", describe(type(config), config))
        return
    builtin = builtin_recipes()
    rows = [{"recipe": name, "experiment": read_recipe(str(path), builtin)[0].get("experiment", "?")}
            for name, path in builtin.items()]
    print_summary("built-in recipes", rows)


@app.command()
def report(run_dirs: List[Path] = typer.Argument(..., help="run directories to compare"),
           out: Optional[Path] = typer.Option(None, help="report folder (default: beside the first run)")):
    """Write report.md and PNG plots comparing runs."""
    from protege.eval.report import write_report
    path, rows = write_report(run_dirs, out)
    print_summary("runs", rows)
    console.print(f"report: {path}")


@data_app.command("validate")
def data_validate(path: Path = typer.Argument(..., help="dataset file or folder written or read by protege"),
                  prompt_field: str = "prompt", completion_field: str = "completion"):
    """Check any Protégé dataset without starting a run: prompt/completion text (.jsonl, .parquet,
    HF folder), BabyAI or Control Suite demonstrations, a graph, saved walks. Checksums, then every
    record; errors name the file, line and field."""
    from protege.data.datasets import validate_dataset
    kind, row = validate_dataset(path, prompt_field, completion_field)
    print_summary(f"{path}: valid {kind}", [row])
