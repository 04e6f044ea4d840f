"""BabyAI commands: `protege data demos` (bot demonstrations) and `protege eval babyai`."""

from pathlib import Path

import typer

from protege.core.cli import data_app, eval_app, print_summary


@data_app.command("demos")
def demos(env: str = typer.Option(..., help="BabyAI level id, e.g. BabyAI-GoToLocal-v0"),
          episodes: int = typer.Option(1000, help="episodes to try (seeds seed_start..)"),
          workers: int = typer.Option(2, help="parallel bot processes"),
          out: Path = typer.Option(..., help="dataset folder (rerun the same command to resume)"),
          seed_start: int = typer.Option(0, help="first seed"),
          chunk_size: int = typer.Option(50, help="episodes per resumable chunk")) -> None:
    """Record BabyAI bot demonstrations (with subgoal annotations) as a Minari dataset."""
    from protege.worlds.babyai.demos import DemoConfig, generate_demos
    stats = generate_demos(DemoConfig(env, episodes, out, workers, seed_start, chunk_size))
    print_summary(f"demonstrations in {out}", [stats])
    from protege.core.cli import console
    from protege.data.minari_io import minari_load_hint
    console.print(minari_load_hint(out, stats["minari_dataset_id"]), soft_wrap=True)


@eval_app.command("babyai")
def babyai(checkpoints: list[Path] = typer.Argument(..., help="run directories or checkpoint folders"),
           level: str = typer.Option(None, help="BabyAI level (default: the run's level)"),
           episodes: int = typer.Option(500, help="held-out episodes (seeds from 10^9)"),
           workers: int = typer.Option(2, help="parallel evaluation processes"),
           greedy: bool = typer.Option(True, help="argmax actions (else sample)"),
           seed_start: int = typer.Option(None, help="first evaluation seed (default 10^9)")) -> None:
    """Success rate, mean return and episode length with 95% intervals over held-out seeds
    (one table, a row per run)."""
    from protege.systems.agent_imitation.evaluate import evaluate_checkpoint
    rows = [row for path in checkpoints
            for row in evaluate_checkpoint(path, level, episodes, workers, greedy, seed_start)]
    print_summary("BabyAI held-out evaluation", rows)
