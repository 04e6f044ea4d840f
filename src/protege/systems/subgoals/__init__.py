"""Agents with language subgoals (arXiv:2309.11564): a high level that names a subgoal in words and a
low level that reaches it, trained by BC from the bot's annotated demonstrations."""

from pathlib import Path

from protege.core.registry import System, register

SYSTEM = register(System(
    name="subgoals",
    experiments={"subgoals_bc": "protege.systems.subgoals.experiment",
                 "subgoals_rl": "protege.systems.subgoals.finetune",
                 "subgoals_dagger": "protege.systems.subgoals.dagger"},
    recipes=Path(__file__).parent / "recipes",
    cli="protege.systems.subgoals.cli",
    datasets={"protege-babyai-subgoals-v1": "protege.worlds.babyai.subgoals:describe"},
    evaluators={"subgoals_bc": "protege.systems.subgoals.evaluate:babyai_rows",
                "subgoals_rl": "protege.systems.subgoals.evaluate:babyai_rows",
                "subgoals_dagger": "protege.systems.subgoals.evaluate:babyai_rows"},
))
