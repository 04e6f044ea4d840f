"""The core commands: run a recipe, the demo, reports, text-dataset tools."""

from pathlib import Path
from typing import List, Optional

import typer

from protege.cli.apps import app, console, data_app, print_summary


@app.command()
def run(recipe: str = typer.Argument(..., help="built-in recipe name or path to a YAML recipe"),
        overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. trainer.lr=3e-4"),
        resume: bool = typer.Option(False, "--resume", help="continue a killed run from its last checkpoint")):
    """Train and evaluate one experiment from a recipe; writes runs/<name>/."""
    from protege.experiments import start
    run_dir, summary = start(recipe, overrides or [], resume=resume)
    print_summary(f"run {run_dir}", [summary])


@app.command()
def recipes():
    """List the built-in recipes."""
    from protege.config import builtin_recipes, read_recipe
    rows = [{"recipe": name, "experiment": read_recipe(str(path))[0].get("experiment", "?")}
            for name, path in builtin_recipes().items()]
    print_summary("built-in recipes", rows)


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), help="where the demo's runs and report go"),
         quick: bool = typer.Option(False, help="a much shorter run, for smoke tests")):
    """The main job: MLE against offline IQLearn on arithmetic word problems, with a report."""
    from protege.demo import run_demo
    rows, report = run_demo(out, quick=quick)
    print_summary("demo: MLE vs IQLearn (arithmetic, held-out prompts)", rows)
    console.print(f"report: {report}")


@app.command()
def report(run_dirs: List[Path] = typer.Argument(..., help="run directories to compare"),
           out: Optional[Path] = typer.Option(None, help="report folder (default: beside the first run)")):
    """Write report.md and PNG plots comparing runs."""
    from protege.evaluation.report import write_report
    path, rows = write_report(run_dirs, out)
    print_summary("runs", rows)
    console.print(f"report: {path}")


@data_app.command("validate")
def data_validate(path: Path, prompt_field: str = "prompt", completion_field: str = "completion"):
    """Check a prompt/completion dataset (.jsonl, .parquet, HF folder); errors name file, line, field."""
    from protege.data.text import load_text_dataset
    examples = load_text_dataset(path, prompt_field, completion_field)
    print_summary(f"{path}", [{"examples": len(examples),
                               "mean prompt chars": sum(len(e.prompt) for e in examples) / len(examples),
                               "mean completion chars": sum(len(e.completion) for e in examples) / len(examples)}])


@data_app.command("arithmetic")
def data_arithmetic(out: Path, n: int = 1000, seed: int = 0):
    """Write built-in arithmetic word problems as a JSONL dataset folder (with checksum manifest)."""
    from protege.data.tasks.arithmetic import generate
    from protege.data.text import save_text_dataset
    save_text_dataset(generate(n, seed), out)
    print_summary(f"{out}", [{"examples": n, "seed": seed}])
