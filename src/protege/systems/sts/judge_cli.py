"""Judge commands of `protege sts`: judged episodes for the detector, training it, and judging.

    protege sts detector-data --level L [--level L2 ...] --out DIR     judged episodes of many agents
    protege sts detector-train DATA --out RUN [--resume]              the learned success detector
    protege sts detector-report RUN...                                its held-out scores over seeds
    protege sts detector-eval RUN DATA                                a detector on other judged episodes
    protege sts studio-set CONTINUATIONS --out DIR                    episodes for people (studio import)
    protege sts judge CONTINUATIONS --judge verifier|human|detector   judgements (+ people's agreement)

`register(sts_app)` adds them to the `sts` command group (called by `systems/sts/cli.py`, which owns
the group); the CLI holds no logic: every command calls one function of `detector_data`,
`detector` or `judges`.
"""

from pathlib import Path

import typer

from protege.core.cli import print_summary

DETECTOR_LEVELS = ("BabyAI-GoToLocal-v0", "BabyAI-GoToObj-v0", "BabyAI-GoToRedBallGrey-v0",
                   "BabyAI-PickupLoc-v0", "BabyAI-PickupDist-v0", "BabyAI-GoToDoor-v0",
                   "BabyAI-OpenDoor-v0", "BabyAI-PutNextLocal-v0", "BabyAI-GoToRedBlueBall-v0",
                   "BabyAI-GoToObjDoor-v0", "BabyAI-UnlockLocal-v0", "BabyAI-OpenDoorLoc-v0")
"""levels of the results' judged episodes: the last four are the detector's unseen levels"""


def detector_data(level: list[str] = typer.Option(list(DETECTOR_LEVELS), help="BabyAI levels to play (repeat)"),
                  agent: list[str] = typer.Option(None, help="agents (repeat; default: random, bot, "
                                                             "bot-noise-0.2/0.5/0.8, bot-stop)"),
                  episodes: int = typer.Option(100, help="episodes per (level, agent)"),
                  max_steps: int = typer.Option(64, help="step budget of every episode"),
                  seed: int = typer.Option(0, help="seeds the agents' random choices"),
                  out: Path = typer.Option(..., help="folder to write (rerun the same command to resume)")) -> None:
    """Episodes of a spread of agents on a spread of levels, each labelled by the world's verifier."""
    from protege.systems.sts.detector_data import AGENTS, DataConfig, generate
    cfg = DataConfig(tuple(level), out, tuple(agent or AGENTS), episodes, max_steps, seed)
    print_summary(f"judged episodes in {out}", [generate(cfg)])


def detector_train(data: Path = typer.Argument(..., help="a judged-episodes folder (`sts detector-data`)"),
                   out: Path = typer.Option(..., help="run directory"),
                   human: Path = typer.Option(None, help="a studio export: people's majority labels "
                                                         "replace the verifier's where they exist"),
                   continuations: list[Path] = typer.Option(None, help="continuations folders (`sts run`) "
                                                                        "added to the training set (repeat)"),
                   heldout_agent: list[str] = typer.Option(None, help="agents kept out of training (repeat)"),
                   heldout_level: list[str] = typer.Option(None, help="levels kept out of training (repeat)"),
                   steps: int = typer.Option(None, help="optimiser steps"),
                   checkpoint_every: int = typer.Option(None, help="steps between checkpoints and metric rows"),
                   seed: int = typer.Option(0, help="run seed"),
                   positions: bool = typer.Option(True, help="embed each cell's place in the view (PlacedViewEncoder)"),
                   resume: bool = typer.Option(False, help="continue a killed run from its last checkpoint")) -> None:
    """Train the success detector and report balanced accuracy and ECE on its three held-out splits."""
    from protege.systems.sts.detector import Config, train_command
    overrides = {k: v for k, v in {"steps": steps, "checkpoint_every": checkpoint_every, "heldout_agents": tuple(heldout_agent or ()) or None,
                                   "heldout_levels": tuple(heldout_level or ()) or None,
                                   "continuations": tuple(str(c) for c in continuations or ()) or None}.items()
                 if v is not None}
    from protege.nn.success_detector import DetectorConfig
    cfg = Config(data=str(data), human=str(human) if human else "", seed=seed,
                 model=DetectorConfig(positions=positions), **overrides)
    print_summary(f"success detector {out}", train_command(cfg, out, resume))


def detector_report(runs: list[Path] = typer.Argument(..., help="finished detector runs (seeds of one setting)")) -> None:
    """Balanced accuracy and ECE per held-out split over runs (95% intervals) beside trivial judges."""
    from protege.systems.sts.detector import report
    print_summary("success detector on held-out splits", report(runs))


def detector_eval(run: Path = typer.Argument(..., help="a trained detector run"),
                  data: Path = typer.Argument(..., help="a judged-episodes folder to score it on")) -> None:
    """A trained detector on another judged-episodes folder, per agent, beside trivial judges."""
    from protege.systems.sts.detector import evaluate
    print_summary(f"success detector {run} on {data}", evaluate(run, data))


def judge(continuations: Path = typer.Argument(..., help="a continuations folder (`protege sts run`)"),
          by: str = typer.Option("verifier", "--judge", help="verifier | human | detector"),
          export: Path = typer.Option(None, help="with --judge human: a studio export (`protege studio export`)"),
          detector: Path = typer.Option(None, help="with --judge detector: a trained detector run"),
          out: Path = typer.Option(None, help="write one JSON line per episode here")) -> None:
    """Judge every continuation (success or failure) and write judgements for `sts rank`; with
    --judge human, k judgements per item (one per person) and their agreement."""
    from protege.systems.sts.judges import judge_command
    table, agreement = judge_command(continuations, by, export, detector, out)
    print_summary(f"{by} judgements of {continuations}", table)
    if agreement:
        print_summary("people's agreement" if by == "human" else "against the verifier", [agreement])


def studio_set(continuations: Path = typer.Argument(..., help="a continuations folder (`protege sts run`)"),
               out: Path = typer.Option(..., help="folder of demonstrations folders, one per level")) -> None:
    """Continuations as whole episodes for people to judge in the studio
    (`protege studio import --demos OUT/<level> --overlap K`)."""
    from protege.systems.sts.judges import studio_set as write_set
    print_summary(f"studio set in {out}", [write_set(continuations, out)])


def register(sts_app: typer.Typer) -> None:
    """Add the judge commands to the `sts` group."""
    sts_app.command("detector-data")(detector_data)
    sts_app.command("detector-train")(detector_train)
    sts_app.command("detector-report")(detector_report)
    sts_app.command("detector-eval")(detector_eval)
    sts_app.command("judge")(judge)
    sts_app.command("studio-set")(studio_set)
