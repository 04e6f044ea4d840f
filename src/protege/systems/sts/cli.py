"""`protege sts`: the standardised test suite (arXiv:2205.13274).

    protege sts build SOURCE... --count N --out SET        scenarios cut from recorded episodes
    protege sts build --level L --count N --out SET        scenarios at step 0 (full online evaluation)
    protege sts run SET AGENT... --out DIR                 every agent continues every scenario
    protege sts rank DIR [--judgements F] [--against D]    ranking with intervals, McNemar, PNG
"""

from pathlib import Path

import typer

from protege.core.cli import app, console, print_summary

sts_app = typer.Typer(help="Standardised test suite: scenarios, continuations, judges, rankings.",
                      no_args_is_help=True)
app.add_typer(sts_app, name="sts")


@sts_app.command("build")
def build(sources: list[Path] = typer.Argument(None, help="demonstrations folders, studio exports or BabyAI "
                                                          "run directories to cut scenarios from"),
          out: Path = typer.Option(..., help="scenario set folder to write"),
          count: int = typer.Option(100, help="scenarios to cut"),
          budget: int = typer.Option(None, help="continuation step budget (default 64; with --level: "
                                                "the level's own limit)"),
          new_fraction: float = typer.Option(0.5, help="share of scenarios given a new instruction"),
          rollouts: int = typer.Option(0, help="episodes to play per run directory source"),
          level: str = typer.Option(None, help="instead of sources: scenarios at step 0 of held-out "
                                               "seeds of this level (the full online evaluation)"),
          seed_start: int = typer.Option(None, help="with --level: first seed (default 10^9)"),
          seed: int = typer.Option(0, help="seeds the cut points and instruction draws")) -> None:
    """Cut a scenario set (checksum manifest) from recorded episodes."""
    from protege.core.errors import UserError
    from protege.systems.sts import build as b
    if level and sources:
        raise UserError("give either sources or --level, not both")
    if level:
        row = b.build_start_scenarios(level, count, out, seed_start, budget)
    elif sources:
        row = b.build_scenarios(sources, out, count, budget or 64, new_fraction, seed, rollouts)
    else:
        raise UserError("name at least one source (demonstrations folder, studio export, run "
                        "directory) or --level for start scenarios")
    print_summary(f"scenario set {out}", [row])


@sts_app.command("run")
def run(scenarios: Path = typer.Argument(..., help="a scenario set (`protege sts build`)"),
        agents: list[str] = typer.Argument(..., help="random, bot, bot:noise=P or BabyAI run directories"),
        out: Path = typer.Option(..., help="continuations folder (rerun the same command to resume)"),
        budget: int = typer.Option(None, help="steps per continuation (default: the set's budget)"),
        workers: int = typer.Option(2, help="parallel processes"),
        chunk_size: int = typer.Option(25, help="scenarios per resumable job"),
        seed: int = typer.Option(0, help="seeds the random agent and the noisy bot")) -> None:
    """Let every agent continue every scenario; record the continuations."""
    from protege.systems.sts.continuations import run_continuations
    rows = run_continuations(scenarios, agents, out, budget, workers, seed, chunk_size)
    print_summary(f"continuations in {out}", rows)


@sts_app.command("rank")
def rank(continuations: list[Path] = typer.Argument(..., help="continuations folders of one scenario set "
                                                             "(`protege sts run`)"),
         judgements: Path = typer.Option(None, help="judgements JSONL (people, detector); default: the verifier"),
         against: list[Path] = typer.Option(None, help="continuations of the same agents (repeat for several "
                                                       "folders) to compare rankings with (Kendall's tau), "
                                                       "e.g. the online evaluation"),
         against_judgements: Path = typer.Option(None, help="judgements of --against (default: its verifier)"),
         png: Path = typer.Option(None, help="draw the ranking with intervals here"),
         resamples: int = typer.Option(2000, help="bootstrap replicates"),
         scenario_counts: str = typer.Option(None, help="with --against: Kendall's tau when only n scenarios "
                                                        "are used, for each n of this comma-separated list"),
         seed: int = typer.Option(0, help="bootstrap seed")) -> None:
    """Rank agents: Wilson intervals, bootstrap rank intervals, win probabilities, McNemar."""
    from protege.systems.sts.rank import format_tables, rank_agents
    result = rank_agents(continuations, judgements, against, against_judgements, png, seed, resamples)
    ranking, pairs, warnings = format_tables(result)
    print_summary(f"ranking of {' + '.join(map(str, continuations))} (judge: {result['judge']})", ranking)
    print_summary("pairwise comparisons (paired bootstrap, McNemar)", pairs)
    for line in warnings:
        console.print(f"warning: {line}", soft_wrap=True)
    if "agreement" in result:
        a = result["agreement"]
        console.print(f"Kendall's tau against {a['against']} ({a['against_judge']}): {a['tau']:.3f} "
                      f"[{a['tau_lo']:.3f}, {a['tau_hi']:.3f}] over {a['agents']} agents", soft_wrap=True)
        if scenario_counts:
            from protege.systems.sts.rank import parse_counts, tau_by_scenario_count
            print_summary("Kendall's tau with fewer scenarios (random subsets)",
                          tau_by_scenario_count(result, parse_counts(scenario_counts), seed=seed))
    if png:
        console.print(f"ranking drawn in {png}")


# the judge commands (detector-data, detector-train, judge) live in their own module
from protege.systems.sts import judge_cli

judge_cli.register(sts_app)
