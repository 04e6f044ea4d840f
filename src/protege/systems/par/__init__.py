"""Planner-Actor-Reporter (arXiv:2302.00763) in the examine world: a Planner that cannot see the
objects' hidden properties instructs an Actor, and a Reporter tells it what the Actor found."""

from pathlib import Path

from protege.core.registry import System, register

SYSTEM = register(System(
    name="par",
    experiments={"par_reporter": "protege.systems.par.reporter_rl",
                 "par_actor": "protege.systems.par.actor_bc",
                 "par_planner": "protege.systems.par.planner_lm"},
    recipes=Path(__file__).parent / "recipes",
    cli="protege.systems.par.cli",
    evaluators={key: "protege.systems.par.evaluate:babyai_rows"
                for key in ("par_reporter", "par_actor", "par_planner")},
))
