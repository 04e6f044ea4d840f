"""The files of the standardised test suite: scenario sets, continuations and judgements.

Scenario set (`protege sts build --out DIR`), manifest kind `protege.sts.scenarios`:
    DIR/scenarios.jsonl   line 1: {"format": "protege.sts.scenarios", "version": 1, "budget": B}
                          then one scenario per line:
                          {"id": "GoToLocal-0007", "level": "BabyAI-GoToLocal-v0", "seed": 1500000003,
                           "prefix": [1, 2], "instruction": "go to the red ball",
                           "task": null | ["goto" | "pickup", colour, type],
                           "image": [[[...]]] (7x7x3 ints: the view after the prefix),
                           "direction": 0..3, "source": "bot demos data/... episode 3"}
    Restore with `scenario_from_row` + `protege.worlds.babyai.scenarios.restore` (replays the
    prefix and checks the observation equals `image`/`direction`).

Continuations (`protege sts run SCENARIOS AGENT... --out DIR`), manifest kind
`protege.sts.continuations`:
    DIR/continuations.jsonl  line 1: {"format": "protege.sts.continuations", "version": 1,
                             "scenarios": path, "scenarios_sha256": sha of scenarios.jsonl,
                             "budget": B, "agents": [name, ...]}
                             then one continuation per (agent, scenario), agents in the header's
                             order, scenarios in the set's order:
                             {"agent": "bot:noise=0.3", "scenario": "GoToLocal-0007",
                              "level", "seed", "prefix", "instruction", "task" (as the scenario),
                              "budget": B (the episode limit was len(prefix) + B, which sets
                              minigrid's reward 1 - 0.9 t / limit),
                              "actions": [...] (the continuation only, at most B),
                              "rewards": [...], "terminated": bool, "truncated": bool,
                              "success": bool (the world's verifier: `episode_success`)}
    `read_continuations(DIR)` gives the rows (checked); `continuation_episode(row)` replays one as
    an `Episode` whose observations start at the scenario's state (T+1 of them for T continuation
    actions), instruction = the scenario's instruction, env_id = level, seed = the layout seed,
    annotations {"scenario": [id] * T, "agent": [name] * T}.

Judgements (`protege sts rank --judgements FILE`): JSONL, one judgement per line
    {"agent": name, "scenario": id, "success": bool, "judge": "who or what judged"}
    several lines for one (agent, scenario) are k judges of one item: a majority decides (a tie is
    a failure). Lines starting with {"format": ...} are headers and skipped. Without a judgements
    file, `rank` judges by the verifier (`success` of each continuation).
"""

from pathlib import Path

import numpy as np

from protege.core.errors import UserError
from protege.data.episodes import Episode
from protege.data.manifest import verify_manifest
from protege.data.text import read_jsonl as read_lines
from protege.worlds.babyai.scenarios import Scenario

SCENARIOS_KIND = "protege.sts.scenarios"
CONTINUATIONS_KIND = "protege.sts.continuations"
SCENARIOS_FILE = "scenarios.jsonl"
CONTINUATIONS_FILE = "continuations.jsonl"
CONTINUATION_KEYS = ("agent", "scenario", "level", "seed", "prefix", "instruction", "task", "budget",
                     "actions", "rewards", "terminated", "truncated", "success")


def read_jsonl(path: Path, kind: str) -> tuple[dict, list[tuple[int, dict]]]:
    """(header, [(line number, row)]) of a JSONL file whose first line names `kind`."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    rows = list(read_lines(path, f"a {kind} file"))
    if not rows or rows[0][1].get("format") != kind:
        raise UserError(f"{path}:1: expected a header {{\"format\": \"{kind}\", ...}}")
    return rows[0][1], rows[1:]


def scenario_row(s: Scenario) -> dict:
    return {"id": s.id, "level": s.level, "seed": s.seed, "prefix": list(s.prefix),
            "instruction": s.instruction, "task": list(s.task) if s.task else None,
            "image": s.image.tolist(), "direction": s.direction, "source": s.source}


def scenario_from_row(row: dict, where: str) -> Scenario:
    """A `Scenario` from one line of scenarios.jsonl; `where` ("FILE:LINE") names it in errors."""
    missing = [k for k in ("id", "level", "seed", "prefix", "instruction", "image", "direction")
               if k not in row]
    if missing:
        raise UserError(f"{where}: scenario lacks {missing[0]!r}")
    prefix = row["prefix"]
    if not isinstance(prefix, list) or not all(isinstance(a, int) and 0 <= a < 7 for a in prefix):
        raise UserError(f"{where}: scenario {row['id']}: prefix must be a list of actions in [0, 7), "
                        f"got {str(prefix)[:60]}")
    try:
        return Scenario(id=str(row["id"]), level=str(row["level"]), seed=int(row["seed"]),
                        prefix=tuple(prefix), instruction=str(row["instruction"]),
                        image=np.asarray(row["image"], np.uint8), direction=int(row["direction"]),
                        task=tuple(row["task"]) if row.get("task") else None,
                        source=str(row.get("source", "")))
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: {e}") from None


def read_scenarios(folder: Path) -> tuple[dict, list[Scenario]]:
    """(header, scenarios) of a scenario set folder, its checksums verified."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such scenario set (make one with `protege sts build`)")
    manifest = verify_manifest(folder)
    if manifest["meta"].get("kind") != SCENARIOS_KIND:
        raise UserError(f"{folder}: not a scenario set (manifest kind {manifest['meta'].get('kind')!r})")
    path = folder / SCENARIOS_FILE
    header, rows = read_jsonl(path, SCENARIOS_KIND)
    scenarios = [scenario_from_row(row, f"{path}:{n}") for n, row in rows]
    if not scenarios:
        raise UserError(f"{path}: the set holds no scenarios")
    return header, scenarios


def read_continuations(folder: Path) -> tuple[dict, list[dict]]:
    """(header, rows) of a continuations folder, checksums and row fields checked."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such continuations folder (make one with `protege sts run`)")
    manifest = verify_manifest(folder)
    if manifest["meta"].get("kind") != CONTINUATIONS_KIND:
        raise UserError(f"{folder}: not a continuations folder (manifest kind "
                        f"{manifest['meta'].get('kind')!r})")
    path = folder / CONTINUATIONS_FILE
    header, rows = read_jsonl(path, CONTINUATIONS_KIND)
    for n, row in rows:
        missing = [k for k in CONTINUATION_KEYS if k not in row]
        if missing:
            raise UserError(f"{path}:{n}: continuation lacks {missing[0]!r}")
    if not rows:
        raise UserError(f"{path}: no continuations")
    return header, [row for _, row in rows]


def continuation_episode(row: dict) -> Episode:
    """One continuation as an `Episode` from the scenario's state (observations rebuilt by replay;
    the replayed rewards and ending must match the recorded ones)."""
    from protege.worlds.babyai.scenarios import replay_prefix, set_task
    env, obs = replay_prefix(row["level"], row["seed"], row["prefix"], row["budget"], str(row["scenario"]))
    if row.get("task"):
        obs = {**obs, "mission": set_task(env, tuple(row["task"]))}
    images, directions, rewards = [obs["image"]], [int(obs["direction"])], []
    terminated = False
    for action in row["actions"]:
        obs, reward, terminated, _, _ = env.step(int(action))
        images.append(obs["image"]); directions.append(int(obs["direction"])); rewards.append(float(reward))
    if bool(terminated) != bool(row["terminated"]) or not np.allclose(rewards, row["rewards"], atol=1e-6):
        raise UserError(f"continuation {row['agent']} / {row['scenario']}: replay does not reproduce "
                        f"the recorded rewards and ending")
    steps = len(row["actions"])
    return Episode(observations={"image": np.stack(images).astype(np.uint8),
                                 "direction": np.asarray(directions, np.int64)},
                   actions=np.asarray(row["actions"], np.int64).reshape(-1),
                   rewards=np.asarray(row["rewards"], np.float32).reshape(-1),
                   terminated=bool(row["terminated"]), truncated=not row["terminated"],
                   instruction=row["instruction"], env_id=row["level"], seed=int(row["seed"]),
                   annotations={"scenario": [row["scenario"]] * steps, "agent": [row["agent"]] * steps})


def read_judgements(path: Path) -> dict[tuple[str, str], bool]:
    """{(agent, scenario): majority success} from a judgements JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--judgements {path}: no such file")
    votes: dict[tuple[str, str], list[bool]] = {}
    for number, row in read_lines(path, "judgements (`protege sts judge`)"):
        if "format" in row:
            continue
        if not all(k in row for k in ("agent", "scenario", "success")) or not isinstance(row["success"], bool):
            raise UserError(f"{path}:{number}: a judgement needs agent, scenario and success "
                            f"(true/false)")
        votes.setdefault((str(row["agent"]), str(row["scenario"])), []).append(row["success"])
    if not votes:
        raise UserError(f"--judgements {path}: the judge set is empty (no judgements)")
    return {key: 2 * sum(v) > len(v) for key, v in votes.items()}


def describe_scenarios(folder: Path) -> tuple[str, dict]:
    """`protege data validate` of a scenario set: checksums, every row, and every prefix replayed
    to the recorded observation."""
    import contextlib
    import io

    from protege.worlds.babyai.scenarios import restore
    header, scenarios = read_scenarios(folder)
    with contextlib.redirect_stdout(io.StringIO()):
        for s in scenarios:
            try:
                restore(s, header.get("budget"))
            except UserError as e:
                raise UserError(f"{Path(folder) / SCENARIOS_FILE}: {e}") from None
    return "STS scenario set", {"scenarios": len(scenarios), "levels": ", ".join(sorted({s.level for s in scenarios})),
                                "new instructions": sum(s.task is not None for s in scenarios),
                                "budget": header.get("budget")}


def describe_continuations(folder: Path) -> tuple[str, dict]:
    """`protege data validate` of a continuations folder: checksums and every row's fields."""
    header, rows = read_continuations(folder)
    return "STS continuations", {"agents": len(header.get("agents", [])), "continuations": len(rows),
                                 "budget": header.get("budget"),
                                 "verifier successes": sum(bool(r["success"]) for r in rows)}
