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
    kind, row = validate_dataset(path, prompt_field, completion_field)
    print_summary(f"{path}: valid {kind}", [row])


def validate_dataset(path: Path, prompt_field: str = "prompt",
                     completion_field: str = "completion") -> tuple[str, dict]:
    """(what the dataset is, a summary row), read by the reader of its kind (its manifest says
    which); a `UserError` names what is wrong."""
    from protege.core.errors import UserError
    from protege.data.manifest import read_manifest
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    meta = (read_manifest(path) or {}).get("meta", {}) if path.is_dir() else {}
    kind = meta.get("kind") or meta.get("format")
    if kind == "protege-babyai-demos-v1":  # worlds.babyai.demos.FORMAT (minigrid loads slowly)
        from protege.worlds.babyai.demos import read_episodes
        episodes = read_episodes(path)
        return "BabyAI demonstrations", {"level": meta["level"], "episodes": len(episodes),
                                         "steps": sum(len(e) for e in episodes)}
    if kind == "protege.control.demos" or (kind is None and "task" in meta):
        from protege.worlds.control.demos import load_demos
        demos = load_demos(path)
        return "Control Suite demonstrations", {"task": demos.task, "transitions": len(demos.obs),
                                                "episodes": len(set(demos.episode.tolist()))}
    if kind == "protege.nav.graph":
        from protege.worlds.graphs.store import check_graph
        return "graph", check_graph(path)
    if kind == "protege.worlds.graphs.walks":
        from protege.worlds.graphs.walks import load_walks
        return "random walks", load_walks(path)
    if kind not in (None, "protege.text.dataset"):
        raise UserError(f"{path}: unknown dataset kind {kind!r} in its manifest")
    if kind is None and (path / "config.yaml").is_file():
        raise UserError(f"{path}: a run directory, not a dataset")
    from protege.data.text import load_text_dataset
    examples = load_text_dataset(path, prompt_field, completion_field)
    return "prompt/completion dataset", {
        "examples": len(examples),
        "mean prompt chars": sum(len(e.prompt) for e in examples) / len(examples),
        "mean completion chars": sum(len(e.completion) for e in examples) / len(examples)}
