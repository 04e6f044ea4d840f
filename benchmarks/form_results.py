"""The FORM-vs-GAIL-vs-BC sweep behind docs/results/form.md, run one job at a time.

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/form_results.py --seeds 0 1 2 --out runs/form \
        [--tasks cartpole point_mass reacher] [--distractors 0 8] [--set loop.steps=6000 sac.hidden=64 ...]

The recipes are `<method>_<task>` (no distractors) and `<method>_<task>_distractors` (8 OU dims) for
method in form, gail_so, gail_sa, bc_control; `--recipes` names them explicitly instead.

Each job is exactly `protege run <recipe> seed=<s> name=<recipe>-s<s> <--set overrides>` (same recipe
reading, override and type checking), run in this process, in the order seed 0 of every recipe first,
so a sweep cut short still covers every row. A job whose run directory already holds a summary.json
is skipped (the sweep can be restarted; a job killed part-way is moved aside and rerun). The table is regenerated after every job and written to
`<out>/table.md`; the last line printed is one JSON object with the rows.
"""

import argparse
import json
import time
from pathlib import Path

METHODS = ["form", "gail_so", "gail_sa", "bc_control"]
TASKS = ["cartpole", "point_mass", "reacher"]


def recipes(tasks: list[str], distractors: list[int]) -> list[str]:
    """Recipe names, no-distractor rows before distractor rows, tasks in the order given."""
    return [f"{m}_{t}{'_distractors' if d else ''}" for d in distractors for t in tasks for m in METHODS]


def run_job(recipe: str, seed: int, out: Path, overrides: list[str]) -> dict:
    from protege.core.config import apply_overrides, from_dict, read_recipe, to_dict
    from protege.core.registry import experiment_module
    from protege.core.runs import Run
    from protege.systems import builtin_recipes
    data, where = read_recipe(recipe, builtin_recipes())
    name = f"{recipe}-s{seed}"
    data = apply_overrides(data, [f"seed={seed}", f"name={name}", *overrides])
    module = experiment_module(data.pop("experiment"))
    cfg = from_dict(module.Config, data, where)
    run = Run(out / name, {"experiment": module.__name__, **to_dict(cfg)})
    summary = module.run(cfg, run)
    run.finish(summary)
    return summary


def main():
    import torch
    torch.set_num_threads(1)
    from protege.core.precision import machine_info
    from protege.systems.form.results import collect, table
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/form"))
    parser.add_argument("--tasks", nargs="+", default=["cartpole"], choices=TASKS)
    parser.add_argument("--distractors", type=int, nargs="+", default=[0, 8], choices=[0, 8])
    parser.add_argument("--recipes", nargs="+", default=None, help="explicit recipe names (overrides the two above)")
    parser.add_argument("--set", nargs="*", default=[], help="overrides applied to every job")
    args = parser.parse_args()
    for seed in args.seeds:
        for recipe in args.recipes or recipes(args.tasks, args.distractors):
            folder = args.out / f"{recipe}-s{seed}"
            if (folder / "summary.json").exists():
                continue
            if folder.exists():  # a job killed part-way: keep its files aside, start it again
                folder.rename(folder.with_name(f"{folder.name}.killed-{int(time.time())}"))
            start = time.time()
            summary = run_job(recipe, seed, args.out, args.set)
            print(f"{recipe} seed {seed}: {json.dumps(summary)} ({time.time() - start:.0f} s)", flush=True)
            markdown, rows = table(collect(args.out))
            (args.out / "table.md").write_text(markdown + "\n")
    markdown, rows = table(collect(args.out))
    print(markdown)
    # where it ran; each run's config.yaml records the precision it resolved to
    print(json.dumps({"rows": rows, "overrides": args.set, "seeds": args.seeds, **machine_info()}))


if __name__ == "__main__":
    main()
