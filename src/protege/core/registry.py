"""The system registry: each system (a folder under `protege/systems/`) declares its experiments,
recipes and CLI module here, and `protege run` resolves a recipe through it.

A system registers a `System` from its package's `__init__.py`; `protege.systems` imports every
system, so importing it fills the registry. Experiment modules are imported lazily (the CLI starts
fast, and one system's heavy imports do not slow another's). Each experiment module exposes
    Config                     a dataclass with at least `name: str` and `seed: int`
    run(config, run) -> dict   trains/evaluates inside the `protege.core.runs.Run`, returns a summary
"""

import contextlib
import importlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from protege.core.errors import UserError, unknown_name


@dataclass(frozen=True)
class System:
    name: str
    """folder name under protege/systems/"""
    experiments: dict[str, str] = field(default_factory=dict)
    """experiment key (a recipe's `experiment:` value) -> module path"""
    recipes: Path | None = None
    """folder of the system's built-in YAML recipes"""
    cli: str | None = None
    """module that adds the system's commands to the shared command groups on import"""
    datasets: dict[str, str] = field(default_factory=dict)
    """dataset kind (its manifest's `kind`) -> "module:function" that checks a folder of that kind
    and returns (what it is, a summary row): how `protege data validate` reads it"""
    evaluators: dict[str, str] = field(default_factory=dict)
    """experiment key of a run (its config's `experiment`) -> "module:function" that evaluates such a
    run for `protege eval babyai`: (path, level, episodes, workers, greedy, seed_start) -> rows"""


SYSTEMS: dict[str, System] = {}


def register(system: System) -> System:
    if system.name in SYSTEMS:
        raise ValueError(f"system {system.name} registered twice")
    clash = set(system.experiments) & set(experiments())
    if clash:
        raise ValueError(f"system {system.name}: experiments {sorted(clash)} already registered")
    SYSTEMS[system.name] = system
    return system


def experiments() -> dict[str, str]:
    return {key: module for s in SYSTEMS.values() for key, module in s.experiments.items()}


def dataset_readers() -> dict[str, str]:
    """Every registered dataset kind -> "module:function" of its checker."""
    return {kind: reader for s in SYSTEMS.values() for kind, reader in s.datasets.items()}


def run_evaluator(experiment: str | None):
    """The `protege eval babyai` evaluator a system registered for runs of `experiment`, or None
    (then the flat-policy evaluator applies)."""
    for s in SYSTEMS.values():
        if experiment in s.evaluators:
            module, function = s.evaluators[experiment].split(":")
            return getattr(importlib.import_module(module), function)
    return None


def builtin_recipes() -> dict[str, Path]:
    """Every system's built-in recipes by name (the file stem)."""
    found = {}
    for s in SYSTEMS.values():
        if s.recipes is not None:
            found.update({p.stem: p for p in sorted(s.recipes.glob("*.yaml"))})
    return dict(sorted(found.items()))


def experiment_module(name: str):
    registered = experiments()
    if name not in registered:
        raise unknown_name("experiment", name, registered)
    return importlib.import_module(registered[name])


def resolve(recipe: str, overrides: list[str]) -> tuple[str, object, dict]:
    """(experiment name, typed config, resolved mapping) of a recipe plus overrides."""
    from protege.core.config import (
        apply_overrides,
        check_run_name,
        from_dict,
        override_sources,
        read_recipe,
        to_dict,
    )
    data, where = read_recipe(recipe, builtin_recipes())
    data = apply_overrides(data, overrides)
    sources = override_sources(overrides)
    name = data.pop("experiment", None)
    if name is None:
        raise UserError(f"{where}: missing key 'experiment' (valid: {', '.join(experiments())})")
    if not isinstance(name, str):
        raise UserError(f"{where}: experiment must be a name (valid: {', '.join(experiments())}), "
                        f"got {name!r}")
    module = experiment_module(name)
    config = from_dict(module.Config, data, where, overrides=sources)
    check_run_name(config.name, where, sources)
    return name, config, {"experiment": name, **to_dict(config)}


def start(recipe: str, overrides: list[str], resume: bool = False, run_dir: Path | None = None):
    """Run a recipe in its run directory (runs_dir/name); returns (run directory, summary).

    Launched under `accelerate launch` or `torchrun`, the gloo/NCCL process group is set up here
    through Accelerate, and only rank 0 writes to the run directory.
    """
    from protege.core.runs import Run
    name, config, resolved = resolve(recipe, overrides)
    rank = _init_distributed()
    run_dir = Path(run_dir or Path(getattr(config, "runs_dir", "runs")) / config.name)
    if not resume and rank == 0 and (run_dir / "summary.json").exists():
        raise UserError(f"run {run_dir} already finished; choose another name=... or delete it")
    made_parent = not run_dir.parent.exists()
    run = Run(run_dir, resolved, resume=resume, is_main=rank == 0)
    try:
        summary = experiment_module(name).run(config, run)
        run.finish(summary)
    except UserError:
        if rank == 0 and not resume and run.latest_checkpoint() is None:
            shutil.rmtree(run_dir, ignore_errors=True)  # leave no half-made run behind (still locked)
            if made_parent:
                with contextlib.suppress(OSError):
                    run_dir.parent.rmdir()  # runs/ too, if this run made it and it is empty
        raise
    finally:
        run.close()
    return run_dir, summary


def _init_distributed() -> int:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    import torch
    from accelerate import PartialState
    return PartialState(cpu=not torch.cuda.is_available()).process_index
