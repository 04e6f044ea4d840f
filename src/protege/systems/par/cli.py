"""Planner-Actor-Reporter commands: `protege par eval` (success of a Planner + Actor with a Reporter
on held-out examine-world seeds) and `protege par show` (the Planner/Reporter dialogue of an
episode, played live or read from an evaluation's episodes file)."""

from pathlib import Path

import typer

from protege.core.cli import app, console, print_summary

par_app = typer.Typer(help="Planner-Actor-Reporter in the examine world.", no_args_is_help=True)
app.add_typer(par_app, name="par")

REPORTER_HELP = "none, oracle (hand-written), colour (truthful, useless) or a par_reporter run directory"
PLANNER_HELP = "rule, a model folder (par_planner run or Hugging Face folder) or an http(s):// endpoint"


def _parts(planner, planner_model, planner_cache, offline, actor, reporter):
    from protege.core.errors import UserError
    from protege.systems.par.dialogue import CaptionReporter, NoReporter, OracleReporter
    from protege.systems.par.episode import load_actor
    from protege.systems.par.planners import make_planner
    from protege.systems.par.reporter_rl import load_reporter
    fixed = {"none": NoReporter, "oracle": OracleReporter, "colour": CaptionReporter}
    if reporter in fixed:
        chosen = fixed[reporter]()
    elif Path(reporter).is_dir():
        chosen = load_reporter(reporter)
    else:
        raise UserError(f"--reporter {reporter!r}: not one of {sorted(fixed)} nor a run directory")
    return (make_planner(planner, planner_model, planner_cache or "", offline), load_actor(actor), chosen)


@par_app.command("eval")
def par_eval(planner: str = typer.Option("rule", help=PLANNER_HELP),
             actor: str = typer.Option("scripted", help="scripted (privileged expert) or a par_actor run directory"),
             reporter: list[str] = typer.Option(["none", "oracle"], help=REPORTER_HELP + " (repeatable)"),
             episodes: int = typer.Option(200, help="held-out episodes (seeds from 10^9)"),
             size: int = typer.Option(6, help="room side, walls included"),
             n_objects: int = typer.Option(3, help="objects in the room (2-4)"),
             planner_model: str = typer.Option("", help="served model name (http planners)"),
             planner_cache: str = typer.Option("", help="JSONL cache of planner replies by prompt hash"),
             offline: bool = typer.Option(False, help="replay the planner from the cache only"),
             out: Path = typer.Option(None, help="folder for each Reporter's episodes (<reporter>.jsonl)")) -> None:
    """Success (95% Wilson) of Planner + Actor with each Reporter, and malformed planner replies."""
    from protege.core.errors import UserError
    from protege.systems.par.episode import evaluate
    from protege.worlds.babyai.examine import check_world
    if episodes <= 0:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    try:
        check_world(size, n_objects)
    except ValueError as e:
        raise UserError(f"--size/--n-objects: {e}") from None
    rows = []
    for name in reporter:
        p, a, r = _parts(planner, planner_model, planner_cache, offline, actor, name)
        file = None if out is None else Path(out) / f"{Path(name).name}.jsonl"
        res = evaluate(p, a, r, episodes, size, n_objects, out=file)
        rows.append({"planner": p.name, "actor": a.name, "reporter": name, "episodes": episodes,
                     "success (95% Wilson)": f"{res['success']:.3f} [{res['success_low']:.3f}, {res['success_high']:.3f}]",
                     "malformed replies": res["malformed_replies"],
                     "failed (malformed)": res["failed_malformed"], "mean steps": f"{res['mean_steps']:.1f}"})
    print_summary("Planner + Actor + Reporter, examine world", rows)


@par_app.command("show")
def par_show(source: Path = typer.Option(None, help="an episodes file (JSONL from `par eval --out` or a "
                                                      "par_reporter run's eval_*.jsonl); else played live"),
             episode: int = typer.Option(0, help="episode index (live: held-out seed 10^9 + index)"),
             planner: str = typer.Option("rule", help=PLANNER_HELP),
             actor: str = typer.Option("scripted", help="scripted or a par_actor run directory"),
             reporter: str = typer.Option("oracle", help=REPORTER_HELP),
             planner_model: str = typer.Option("", help="served model name (http planners)"),
             planner_cache: str = typer.Option("", help="JSONL cache of planner replies"),
             offline: bool = typer.Option(False, help="replay the planner from the cache only")) -> None:
    """Print the Planner/Reporter dialogue of one episode."""
    from protege.systems.par.show import dialogue_lines, live_episode, stored_episode
    if source is not None:
        record = stored_episode(source, episode)
    else:
        record = live_episode(episode, *_parts(planner, planner_model, planner_cache, offline, actor, reporter))
    for line in dialogue_lines(record):
        console.print(line, markup=False, highlight=False)


@par_app.command("codebook")
def par_codebook(reporter: str = typer.Argument(..., help=REPORTER_HELP)) -> None:
    """What a Reporter says facing each kind of object (unexamined, or each revealed property)."""
    from protege.systems.par.show import reporter_codebook
    _, _, chosen = _parts("rule", "", "", False, "scripted", reporter)
    print_summary(f"reports of {reporter}", reporter_codebook(chosen))
