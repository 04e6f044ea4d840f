"""`protege eval babyai` on a Planner-Actor-Reporter run: its agent (the trained part with the
others as in training) on held-out examine-world seeds, one row like a flat policy's.

    par_reporter  the run's Planner and Actor with its learnt Reporter (greedy)
    par_actor     the rule Planner and the oracle Reporter with the run's Actor
    par_planner   the run's decoder as Planner, the scripted Actor and the oracle Reporter
"""

from pathlib import Path

from protege.core.errors import UserError
from protege.worlds.babyai.levels import EVAL_SEED_START

LEVEL = "Protege-Examine-v0"


def babyai_rows(path: Path, level: str | None, episodes: int, workers: int = 1, greedy: bool = True,
                seed_start: int | None = None) -> list[dict]:
    from protege.core.runs import read_run_config, save_eval
    from protege.systems.par.dialogue import OracleReporter
    from protege.systems.par.episode import ScriptedActor, evaluate, load_actor
    from protege.systems.par.planners import LocalPlanner, RulePlanner, make_planner
    from protege.systems.par.reporter_rl import load_reporter
    path = Path(path)
    if level not in (None, LEVEL):
        raise UserError(f"--level {level}: a par run acts in the examine world only ({LEVEL})")
    if not greedy:
        raise UserError("--no-greedy: par agents are evaluated greedily only")
    config = read_run_config(path)
    from protege.systems.par.episode import ACTOR_FILE
    from protege.systems.par.reporter_rl import REPORTER_FILE
    if (path / REPORTER_FILE).is_file():
        parts = (make_planner(config["planner"], config.get("planner_model", ""), config.get("planner_cache", "")),
                 load_actor(config["actor"]), load_reporter(path))
    elif (path / ACTOR_FILE).is_file():
        parts = (RulePlanner(), load_actor(str(path)), OracleReporter())
    else:
        parts = (LocalPlanner(path), ScriptedActor(), OracleReporter())
    start = EVAL_SEED_START if seed_start is None else seed_start
    r = evaluate(*parts, episodes, config.get("size", 6), config.get("n_objects", 3), seed_start=start)
    save_eval(path, f"babyai-{LEVEL}-{episodes}ep-greedy-from{start}",
              {"path": str(path), "level": LEVEL, "episodes": episodes, "seed_start": start}, r)
    return [{"run": path.name, "level": LEVEL, "episodes": episodes,
             "success (95% Wilson)": f"{r['success']:.3f} [{r['success_low']:.3f}, {r['success_high']:.3f}]",
             "malformed replies": r["malformed_replies"], "length": f"{r['mean_steps']:.1f}",
             "seeds": f"{start}..{start + episodes - 1}"}]
