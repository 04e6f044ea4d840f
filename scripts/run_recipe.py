"""Run a recipe the way `protege run RECIPE k=v ...` does, for use before the `run` command lands.

    PYTHONPATH=src python scripts/babyai_run.py babyai_bc seed=1 name=bc-s1
"""
import sys
from pathlib import Path

from protege.config import apply_overrides, from_dict, read_recipe, to_dict
from protege.experiments import experiment_module
from protege.runs import Run


def main(recipe: str, overrides: list[str]) -> None:
    data, where = read_recipe(recipe)
    data = apply_overrides(data, overrides)
    name = data.pop("experiment")
    module = experiment_module(name)
    config = from_dict(module.Config, data, where)
    root = Path("runs") / config.name
    run = Run(root, {"experiment": name, **to_dict(config)}, resume=(root / "config.yaml").exists())
    print(module.run(config, run))


if __name__ == "__main__":  # guard: evaluation workers are spawned and re-import this file
    main(sys.argv[1], sys.argv[2:])
