"""The registry of experiments that `protege run` can start from a recipe.

Each entry names a module that exposes
    Config                     a dataclass with at least `name: str` and `seed: int`
    run(config, run) -> dict   trains/evaluates inside the `protege.runs.Run` and returns a summary
Modules are imported lazily so that the CLI starts fast and one domain's heavy imports do not
slow another's.
"""

import importlib
import os
import shutil
from pathlib import Path

from protege.errors import UserError, unknown_name

EXPERIMENTS = {
    "lm": "protege.learners.lm.experiment",
    "nav_bc": "protege.nav.train",
    "babyai_offline": "protege.learners.babyai.experiment",
    "babyai_gail": "protege.learners.babyai.gail",
    "control_imitation": "protege.learners.control_experiment",
}


def experiment_module(name: str):
    if name not in EXPERIMENTS:
        raise unknown_name("experiment", name, EXPERIMENTS)
    return importlib.import_module(EXPERIMENTS[name])


def resolve(recipe: str, overrides: list[str]) -> tuple[str, object, dict]:
    """(experiment name, typed config, resolved mapping) of a recipe plus overrides."""
    from protege.config import apply_overrides, from_dict, read_recipe, to_dict
    data, where = read_recipe(recipe)
    data = apply_overrides(data, overrides)
    name = data.pop("experiment", None)
    if name is None:
        raise UserError(f"{where}: missing key 'experiment' (valid: {', '.join(EXPERIMENTS)})")
    module = experiment_module(name)
    config = from_dict(module.Config, data, where)
    return name, config, {"experiment": name, **to_dict(config)}


def start(recipe: str, overrides: list[str], resume: bool = False, run_dir: Path | None = None):
    """Run a recipe in its run directory (runs_dir/name); returns (run directory, summary).

    Launched under `accelerate launch` or `torchrun`, the gloo/NCCL process group is set up here
    through Accelerate, and only rank 0 writes to the run directory.
    """
    from protege.runs import Run
    name, config, resolved = resolve(recipe, overrides)
    rank = _init_distributed()
    run_dir = Path(run_dir or Path(getattr(config, "runs_dir", "runs")) / config.name)
    if not resume and rank == 0 and (run_dir / "summary.json").exists():
        raise UserError(f"run {run_dir} already finished; choose another name=... or delete it")
    run = Run(run_dir, resolved, resume=resume, is_main=rank == 0)
    try:
        summary = experiment_module(name).run(config, run)
        run.finish(summary)
    except UserError:
        run.close()
        if rank == 0 and not resume and run.latest_checkpoint() is None:
            shutil.rmtree(run_dir, ignore_errors=True)  # leave no half-made run behind
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
