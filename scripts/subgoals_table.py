"""The seed-level tables of docs/results/subgoals.md: each agent's held-out success on each level,
per training seed and as a mean with its 95% Student-t interval over seeds, and each agent's paired
difference to the first (same seed, same evaluation episodes).

    PYTHONPATH=src .venv/bin/python scripts/subgoals_table.py --seeds 0 1 2 \
        --agent "flat BC=runs/mb_flat_s{seed}" --agent "hierarchical BC=runs/mb_hier_s{seed}" \
        --level BabyAI-MiniBossLevel-v0 --level BabyAI-GoToSeqS5R2-v0

A run's success on a level is read from where the run's own evaluation wrote it: `summary.json`
(`eval/<level>/success` for the hierarchical runs; `eval/success` when the run was trained on and
evaluated at that level), else `protege eval babyai`'s file under `<run>/eval/`; a path ending
`@done_other` reads `protege eval subgoals --replan done_other`'s file instead (`@done_other-sampled`:
with `--sample-chooser`; `@sampled`: `protege eval babyai --no-greedy`'s; `@bot`, `@bot-at-done`,
`@bot-at-done-keep`, `@chooser-at-bot-RULE`: the diagnostics `--bot-chooser`, `--bot-at-done`,
`--chooser-at-bot`). With `--agreement`, the table is of the chosen phrases' agreement with the bot's
at its boundaries instead (`agreement/<level>/boundaries` of a run's summary). Last line: JSON.
"""

import argparse
import json
from pathlib import Path

import yaml

from protege.eval.stats import mean_interval
from protege.worlds.babyai.levels import EVAL_SEED_START


def saved_success(run: Path, pattern: str) -> float | None:
    """The success an evaluation kept under `<run>/eval/` (file name `pattern`, held-out seeds)."""
    for path in sorted((run / "eval").glob(f"{pattern}-from{EVAL_SEED_START}.json")):
        return float(json.loads(path.read_text())["results"]["success"])
    return None


def read_summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}


def success(run: Path, level: str, replan: str | None = None) -> float | None:
    """The run's greedy held-out success on `level`, or None when it was not evaluated there;
    with `replan`, what `protege eval subgoals --replan RULE` kept for the run."""
    if replan:  # eval subgoals' file (replan rule, "-sampled"), or eval babyai's "sampled" one
        # "*ep-RULE": the episodes field then RULE, so "done" never matches "...-bot-at-done"
        found = saved_success(run, f"subgoals-{level}-*ep-{replan}")
        return found if found is not None else saved_success(run, f"babyai-{level}-*ep-{replan}")
    summary = read_summary(run)
    if f"eval/{level}/success" in summary:
        return float(summary[f"eval/{level}/success"])
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
    if "eval/success" in summary and summary.get("eval/level", config.get("level")) == level:
        return float(summary["eval/success"])
    return saved_success(run, f"babyai-{level}-*-greedy")


def agreement(run: Path, level: str) -> float | None:
    """The run's boundary agreement with the bot on `level`, as its own evaluation kept it."""
    value = read_summary(run).get(f"agreement/{level}/boundaries")
    return None if value is None else float(value)


def cell(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    mean, low, high = mean_interval(got)
    seeds = " / ".join("-" if v is None else f"{v:.3f}" for v in values)
    return f"{seeds} | **{mean:.3f}** [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", action="append", required=True,
                        help="LABEL=run path with {seed}[@RULE: the subgoals agent acting by replan RULE]")
    parser.add_argument("--level", action="append", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--agreement", action="store_true", help="boundary agreement instead of success")
    args = parser.parse_args()
    read = (lambda run, level, rule: agreement(run, level)) if args.agreement else success
    agents = [a.split("=", 1) for a in args.agent]
    agents = [(label, *pattern.partition("@")[::2]) for label, pattern in agents]
    table = {label: {level: [read(Path(pattern.format(seed=s)), level, rule) for s in args.seeds]
                     for level in args.level} for label, pattern, rule in agents}
    what = "agreement" if args.agreement else "success"
    print(f"| level | agent | {what} per seed ({' / '.join(map(str, args.seeds))}) | mean [95% t over seeds] "
          f"| minus {agents[0][0]}, paired [95% t] |")
    print("|---|---|---|---|---|")
    for level in args.level:
        base = table[agents[0][0]][level]
        for label, _, _ in agents:
            mine = table[label][level]
            pairs = [m - b for m, b in zip(mine, base) if m is not None and b is not None]
            diff = "-"
            if label != agents[0][0] and pairs:
                d, lo, hi = mean_interval(pairs)
                diff = f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            print(f"| {level.removeprefix('BabyAI-')} | {label} | {cell(mine)} | {diff} |")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
