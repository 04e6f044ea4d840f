"""People in the loop: the studio (a web app where people demonstrate, watch episodes and mark
progress, regress and success) and what is learned from their marks."""

from protege.core.registry import System, register

SYSTEM = register(System(
    name="feedback",
    experiments={},
    recipes=None,
    cli="protege.systems.feedback.cli",
    datasets={"protege.feedback.export": "protege.systems.feedback.export:describe"},
))
