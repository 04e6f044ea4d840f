"""Hyperlink graphs: CSR store, builders, random walks.

The walk defaults live here, not in walks.py, so the CLI reads them without importing numba."""

DEFAULT_DEAD_END = "jump"
"""The one default of `nav walks`, `nav train` and the nav_bc recipes: the published FOLDOC runs
(docs/results/wikinav.md) trained on walks that jump; a stopped walk yields fewer examples from pages
near dead ends, and a restart over-samples its start page."""
DEAD_END_HELP = ("at a page without links: jump (default, as in the published runs) to a uniform "
                 "page, restart from the walk's start page, or stop the walk; jumps are not imitated")
