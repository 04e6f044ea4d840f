"""Navigating hyperlinked text by cloning random walks (arXiv:2211.00177)."""

from pathlib import Path

from protege.core.registry import System, register

SYSTEM = register(System(
    name="wikinav",
    experiments={"nav_bc": "protege.systems.wikinav.experiment"},
    recipes=Path(__file__).parent / "recipes",
    cli="protege.systems.wikinav.cli",
    datasets={"protege.nav.graph": "protege.worlds.graphs.store:describe",
              "protege.worlds.graphs.walks": "protege.worlds.graphs.walks:describe",
              "protege.nav.page-embeddings": "protege.worlds.graphs.page_store:describe"},
))
