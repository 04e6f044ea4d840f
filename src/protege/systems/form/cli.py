"""`protege data control-demos`: scripted-expert demonstrations on a Control Suite task (Minari)."""

from pathlib import Path

import typer

from protege.core.cli import data_app, eval_app, print_summary


@data_app.command("control-demos")
def control_demos(
    task: str = typer.Option("cartpole-swingup", help="Control Suite task as domain-task"),
    episodes: int = typer.Option(10, help="number of expert episodes"),
    out: Path = typer.Option(..., help="output folder (Minari arrow dataset + checksum manifest)"),
    seed: int = typer.Option(0, help="seed of the first episode (episode i uses seed + i)"),
    action_repeat: int = typer.Option(1, help="simulator steps per action"),
):
    """Record expert demonstrations of a scripted controller as a Minari dataset."""
    from protege.core.progress import progress_bar
    from protege.worlds.control.demos import record_demos

    with progress_bar() as bar:
        job = bar.add_task(f"{task} demos", total=episodes)
        summary = record_demos(task, episodes, out, seed=seed, action_repeat=action_repeat,
                               progress=lambda i, n: bar.update(job, completed=i))
    print_summary("control demonstrations", [summary])
    from protege.core.cli import console
    from protege.data.minari_io import minari_load_hint
    console.print(minari_load_hint(out, summary["minari_dataset_id"]), soft_wrap=True)


@eval_app.command("control-table")
def control_table(runs: Path = typer.Argument(..., help="folder holding control_imitation run folders")):
    """Expert-normalised returns (mean and 95% t-interval over seeds) of finished control runs."""
    from protege.systems.form.results import collect, table

    summaries = collect(runs)
    if not summaries:
        from protege.core.errors import UserError
        raise UserError(f"{runs}: no finished runs (no */summary.json)")
    markdown, rows = table(summaries)
    print_summary("expert-normalised return", [{k: v for k, v in r.items() if k != "per_seed"} for r in rows])
    # kept beside the runs it summarises (atomically), with the runs it read
    from protege.core.atomic import write_json_atomic, write_text_atomic
    write_json_atomic(runs / "control-table.json", {"runs": sorted(s["run"] for s in summaries), "rows": rows})
    write_text_atomic(runs / "control-table.md", markdown)
    print(f"table: {runs / 'control-table.md'}")
