"""Long-context recall (needle in a haystack, RULER-style tasks) for local models and served ones."""

from pathlib import Path

from protege.core.registry import System, register

SYSTEM = register(System(
    name="long_context",
    experiments={"rope_retrieval": "protege.systems.long_context.train"},
    recipes=Path(__file__).parent / "recipes",
    cli="protege.systems.long_context.cli",
))
