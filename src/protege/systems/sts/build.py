"""`protege sts build`: a scenario set cut from recorded episodes (format: `formats.py`).

Sources, recognised by their folder:
    a BabyAI demonstrations folder (`protege data demos`, or a studio `--demos` export): the bot's or
        people's successful plays, observations as recorded;
    a studio export (`protege studio export --out DIR`, docs/studio.md): people's episodes from
        DIR/episodes.jsonl (level, seed, actions), observations rebuilt by replay;
    a BabyAI run directory (`protege run babyai_bc ...`): `--rollouts` episodes played greedily by
        the policy from seeds ROLLOUT_SEED_START.., observations rebuilt by replay.
Episodes are taken in order, round robin over the sources. Each is cut once at a uniformly drawn
step k in [0, T-1] (T its length): the state after k actions. With probability `new_fraction` the
continuation gets a new instruction of the level's own kind (go to / pick up) about another object
of the layout, kept when the bot achieves it within the budget; otherwise the original mission,
kept when the bot can still complete it. The replayed observation after k actions must equal the
recorded one (`worlds.babyai.scenarios.cut_scenario`).
"""

import contextlib
import io
import json
from itertools import zip_longest
from pathlib import Path

import numpy as np

from protege.core.atomic import write_text_atomic
from protege.core.errors import UserError
from protege.core.progress import progress_bar
from protege.core.seeds import stream_seed
from protege.data.manifest import output_folder, read_manifest, write_manifest
from protege.data.text import read_jsonl
from protege.systems.sts.formats import SCENARIOS_FILE, SCENARIOS_KIND, scenario_row
from protege.systems.sts.human_labels import STUDIO_EXPORT_KIND
from protege.worlds.babyai.demos import FORMAT as DEMOS_FORMAT
from protege.worlds.babyai.demos import read_episodes
from protege.worlds.babyai.replay import replay
from protege.worlds.babyai.scenarios import cut_scenario

ROLLOUT_SEED_START = 1_600_000_000
"""seeds of agent rollouts used as sources: apart from demonstrations (0..) and evaluation (10^9..)"""


def _recorded(level, seed, actions, images, directions, mission, source) -> dict:
    return {"level": level, "seed": int(seed), "actions": np.asarray(actions, np.int64),
            "images": images, "directions": directions, "mission": mission, "source": source}


def _replayed(level, seed, actions, source) -> dict:
    r = replay(level, seed, actions)
    return _recorded(level, seed, actions, r.images, r.directions, r.mission, source)


def source_episodes(path: Path, rollouts: int) -> list[dict]:
    """The recorded episodes of one source, each {level, seed, actions, images, directions,
    mission, source}."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"source {path}: no such folder (a demonstrations folder, a studio export or a "
                        f"BabyAI run directory)")
    manifest = read_manifest(path)
    meta = (manifest or {}).get("meta", {})
    if meta.get("format") == DEMOS_FORMAT:
        return [_recorded(e.env_id, e.seed, e.actions, e.observations["image"], e.observations["direction"],
                          e.instruction, f"{path} episode {i}") for i, e in enumerate(read_episodes(path))]
    if meta.get("kind") == STUDIO_EXPORT_KIND:
        return _studio_episodes(path)
    if (path / "config.yaml").exists():
        return _rollouts(path, rollouts)
    raise UserError(f"source {path}: not a demonstrations folder, a studio export or a BabyAI run directory")


def _studio_episodes(path: Path) -> list[dict]:
    from protege.data.manifest import verify_manifest
    verify_manifest(path)
    file = path / "episodes.jsonl"
    out = []
    for number, row in read_jsonl(file, "episodes of a studio export"):
        if "actions" not in row:  # the header line
            continue
        if not all(k in row for k in ("level", "seed", "actions")):
            raise UserError(f"{file}:{number}: an episode needs level, seed and actions")
        with contextlib.redirect_stdout(io.StringIO()):
            out.append(_replayed(row["level"], row["seed"], row["actions"], f"{file}:{number}"))
    return out


def _rollouts(run_dir: Path, count: int) -> list[dict]:
    from protege.rl.babyai_rollout import load_policy, play_episodes
    from protege.worlds.babyai.levels import make_env
    if count < 1:
        raise UserError(f"source {run_dir}: a run directory needs --rollouts >= 1")
    model, _, config = load_policy(run_dir)
    level = config.get("level")
    if not level:
        raise UserError(f"{run_dir / 'config.yaml'}: names no level")
    seeds = list(range(ROLLOUT_SEED_START, ROLLOUT_SEED_START + count))
    with contextlib.redirect_stdout(io.StringIO()):
        played = play_episodes(model, lambda: make_env(level), seeds)
        return [_replayed(level, p["seed"], p["actions"], f"{run_dir} rollout seed {p['seed']}")
                for p in played if p["actions"]]


def _verb(mission: str) -> str:
    return "pickup" if mission.startswith("pick up") else "goto"


def build_scenarios(sources: list[Path], out: Path, count: int, budget: int = 64, new_fraction: float = 0.5,
                    seed: int = 0, rollouts: int = 0, progress: bool = True) -> dict:
    """Cut `count` scenarios from `sources` into the scenario set `out`; returns a summary row."""
    if not sources:
        raise UserError("name at least one source (a demonstrations folder, a studio export or a run directory)")
    if count < 1 or budget < 1 or not 0 <= new_fraction <= 1:
        raise UserError(f"--count and --budget must be >= 1 and --new-fraction in [0, 1] "
                        f"(got {count}, {budget}, {new_fraction})")
    episodes_by_source = [source_episodes(Path(s), rollouts) for s in sources]
    levels = sorted({e["level"] for src in episodes_by_source for e in src})
    order = [e for group in zip_longest(*episodes_by_source) for e in group if e is not None]
    rng = np.random.default_rng(stream_seed(seed, "sts/build"))
    scenarios, skipped = [], 0
    with progress_bar(progress) as bar, contextlib.redirect_stdout(io.StringIO()):
        task = bar.add_task("scenarios", total=count)
        for e in order:
            if len(scenarios) == count:
                break
            cut = int(rng.integers(0, len(e["actions"])))
            short = e["level"].removeprefix("BabyAI-").removesuffix("-v0")
            s = cut_scenario(f"{short}-{len(scenarios):04d}", e["level"], e["seed"], e["actions"], e["images"],
                             e["directions"], cut, budget, bool(rng.random() < new_fraction), rng,
                             source=e["source"], verb=_verb(e["mission"]))
            if s is None:
                skipped += 1
                continue
            scenarios.append(s)
            bar.advance(task)
    if len(scenarios) < count:
        raise UserError(f"the sources give {len(scenarios)} scenarios, fewer than --count {count} "
                        f"({skipped} cuts had no achievable instruction); add episodes or lower --count")
    header = {"format": SCENARIOS_KIND, "version": 1, "budget": budget, "seed": seed,
              "sources": [str(s) for s in sources]}
    with output_folder(Path(out), SCENARIOS_KIND, inputs=sources) as tmp:
        write_text_atomic(tmp / SCENARIOS_FILE, "".join(json.dumps(r) + "\n" for r in
                                                        [header] + [scenario_row(s) for s in scenarios]))
        write_manifest(tmp, {"kind": SCENARIOS_KIND, "levels": levels, "scenarios": count, "budget": budget})
    new = sum(s.task is not None for s in scenarios)
    return {"scenarios": count, "levels": ", ".join(levels), "new instructions": new,
            "original missions": count - new, "skipped cuts": skipped, "budget": budget}



def build_start_scenarios(level: str, count: int, out: Path, seed_start: int | None = None,
                          budget: int | None = None) -> dict:
    """The full online evaluation as a scenario set: `count` scenarios cut at step 0 of held-out
    seeds (from EVAL_SEED_START, as `protege eval babyai`), each with its own mission and the
    level's own step limit as budget, so `sts run` on it plays whole episodes."""
    from protege.worlds.babyai.levels import EVAL_SEED_START, check_level, make_env
    from protege.worlds.babyai.scenarios import Scenario
    check_level(level)
    if count < 1:
        raise UserError(f"--count must be >= 1, got {count}")
    start = EVAL_SEED_START if seed_start is None else seed_start
    env = make_env(level)
    short = level.removeprefix("BabyAI-").removesuffix("-v0")
    scenarios = []
    with contextlib.redirect_stdout(io.StringIO()):
        for i, seed in enumerate(range(start, start + count)):
            obs, _ = env.reset(seed=seed)
            scenarios.append(Scenario(id=f"{short}-start-{i:04d}", level=level, seed=seed, prefix=(),
                                      instruction=str(obs["mission"]), image=np.asarray(obs["image"], np.uint8),
                                      direction=int(obs["direction"]), source=f"{level} reset seed {seed}"))
    budget = budget or int(env.unwrapped.max_steps)
    header = {"format": SCENARIOS_KIND, "version": 1, "budget": budget, "seed_start": start, "sources": ["start"]}
    with output_folder(Path(out), SCENARIOS_KIND) as tmp:
        write_text_atomic(tmp / SCENARIOS_FILE, "".join(json.dumps(r) + "\n" for r in
                                                        [header] + [scenario_row(s) for s in scenarios]))
        write_manifest(tmp, {"kind": SCENARIOS_KIND, "levels": [level], "scenarios": count, "budget": budget})
    return {"scenarios": count, "levels": level, "seeds": f"{start}..{start + count - 1}", "budget": budget,
            "new instructions": 0}
