"""The registry of experiments that `protege run` can start from a recipe.

Each entry names a module that exposes
    Config                     a dataclass with at least `name: str` and `seed: int`
    run(config, run) -> dict   trains/evaluates inside the `protege.runs.Run` and returns a summary
Modules are imported lazily so that the CLI starts fast and one domain's heavy imports do not
slow another's.
"""

import importlib

from protege.errors import unknown_name

EXPERIMENTS = {
    "lm": "protege.learners.lm.experiment",
    "control_imitation": "protege.learners.control_experiment",
}


def experiment_module(name: str):
    if name not in EXPERIMENTS:
        raise unknown_name("experiment", name, EXPERIMENTS)
    return importlib.import_module(EXPERIMENTS[name])
