"""`protege studio simulate`: simulated annotators' marks on BabyAI episodes, as a studio export
(cli.py adds the command to the `studio` group)."""

from pathlib import Path

import typer

from protege.core.cli import print_summary
from protege.core.errors import UserError


def simulate_(level: str = typer.Option(None, help="BabyAI level id, e.g. BabyAI-PickupLoc-v0"),
              out: Path = typer.Option(..., help="folder for the export (marks.jsonl, episodes.jsonl, ...)"),
              episodes: int = typer.Option(200, help="episodes to play and mark, split evenly over the agents"),
              agents: str = typer.Option("random,bot:0,bot:0.25,bot:0.5,bot:0.75",
                                         help="comma-separated: random, bot:EPS (random-action rate), policy:RUN_DIR"),
              annotators: int = typer.Option(1, help="independent simulated annotators per episode"),
              stride: int = typer.Option(2, help="mark when the bot's remaining steps moved this far"),
              miss: float = typer.Option(0.0, help="probability of dropping a true mark"),
              false_rate: float = typer.Option(0.0, help="probability per frame of a spurious mark"),
              jitter: float = typer.Option(0.0, help="std (frames) of each mark's timing noise"),
              delay: int = typer.Option(0, help="frames every mark comes late (timing bias)"),
              optimism: float = typer.Option(0.0, help="probability of recording a regress mark as progress"),
              seed: int = typer.Option(0, help="seeds the agents' and annotators' randomness"),
              seed_start: int = typer.Option(None, help="first episode seed (default 2e9: no demo or eval layout)"),
              cap: int = typer.Option(100, help="most steps the bot may take to finish from a frame"),
              workers: int = typer.Option(1, help="processes computing the bot's ground truth "
                                                  "(same export for any number)"),
              reannotate: Path = typer.Option(None, help="mark the episodes of this earlier simulated export "
                                                         "again (other noise; no playing, no bot)")) -> None:
    """Play episodes with a spread of agents and mark them with simulated annotators (the bot's
    remaining steps as ground truth); writes the studio's export format."""
    from protege.data.manifest import check_output_folder
    from protege.systems.feedback import simulate as sim
    from protege.systems.feedback.export import KIND
    from protege.worlds.babyai.levels import check_level
    if (level is None) == (reannotate is None):
        raise UserError("give --level LEVEL (play new episodes) or --reannotate DIR (mark a simulated export again)")
    if level is not None:
        check_level(level)
    if episodes <= 0:
        raise UserError(f"--episodes must be positive, got {episodes}")
    if annotators <= 0:
        raise UserError(f"--annotators must be positive, got {annotators}")
    if cap <= 0:
        raise UserError(f"--cap must be positive, got {cap}")
    if workers <= 0:
        raise UserError(f"--workers must be positive, got {workers}")
    if seed_start is not None and seed_start < 0:
        raise UserError(f"--seed-start must be >= 0, got {seed_start}")
    try:
        annotator = sim.Annotator(stride=stride, miss=miss, false_rate=false_rate, jitter=jitter,
                                  delay=delay, optimism=optimism)
    except ValueError as e:
        raise UserError(f"--{str(e).split(':')[0].replace('_', '-')}: {e}") from None
    if reannotate is not None:
        check_output_folder(out, KIND, inputs=[reannotate])
        print_summary(f"simulated marks in {out}", [sim.reannotate(reannotate, out, annotator, annotators, seed)])
        return
    names = sim.parse_agents(agents)
    check_output_folder(out, KIND)
    cfg = sim.SimulationConfig(level=level, episodes=episodes, agents=tuple(names), annotator=annotator,
                               annotators=annotators, seed=seed,
                               seed_start=sim.MARKS_SEED_START if seed_start is None else seed_start, cap=cap,
                               workers=workers)
    print_summary(f"simulated marks in {out}", [sim.simulate(cfg, out)])
