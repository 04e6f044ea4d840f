"""Imitation from observations on the Control Suite: FORM (arXiv:2107.03851) against GAIL/GAIfO and BC, on SAC."""

from pathlib import Path

from protege.core.registry import System, register

SYSTEM = register(System(
    name="form",
    experiments={"control_imitation": "protege.systems.form.experiment"},
    recipes=Path(__file__).parent / "recipes",
    cli="protege.systems.form.cli",
    datasets={"protege.control.demos": "protege.worlds.control.demos:describe"},
))
