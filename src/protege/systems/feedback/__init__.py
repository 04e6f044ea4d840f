"""People in the loop: the studio (a web app where people demonstrate, watch episodes and mark
progress, regress and success) and what is learned from their marks (rewards by inter-temporal
Bradley-Terry and its baselines, `ibt`; PPO against them, `ibt_rl`)."""

from pathlib import Path

from protege.core.registry import System, register

SYSTEM = register(System(
    name="feedback",
    experiments={"ibt": "protege.systems.feedback.ibt", "ibt_rl": "protege.systems.feedback.ibt_rl"},
    recipes=Path(__file__).parent / "recipes",
    cli="protege.systems.feedback.cli",
    datasets={"protege.feedback.export": "protege.systems.feedback.export:describe"},
))
