"""Every system of the mission, one folder each. Importing this package registers them all.

A system's folder holds its config + recipes, experiment(s), evaluation and CLI group, and declares
them in its `__init__.py` with `protege.core.registry.register`. A system never imports another
system: what two systems share lives one layer down (core, data, worlds, nn, losses, rl, eval).
"""

from protege.core.registry import SYSTEMS, builtin_recipes, resolve, start  # noqa: F401
from protege.systems import (  # noqa: F401  (each registers itself)
    agent_imitation,
    feedback,
    form,
    lm_irl,
    long_context,
    par,
    sts,
    subgoals,
    wikinav,
)
