"""The Planner/Reporter dialogue of one episode as lines of text (`protege par show`)."""

import json
from dataclasses import asdict
from pathlib import Path

from protege.core.errors import UserError
from protege.worlds.babyai.levels import EVAL_SEED_START


def stored_episode(path: Path, index: int) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such episodes file (write one with `protege par eval --out`)")
    lines = path.read_text().splitlines()
    if not 0 <= index < len(lines):
        raise UserError(f"--episode {index}: {path} holds episodes 0..{len(lines) - 1}")
    try:
        record = json.loads(lines[index])
        record["turns"], record["success"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}, line {index + 1}: not a Planner-Actor-Reporter episode") from None
    return record


def live_episode(index: int, planner, actor, reporter) -> dict:
    from protege.systems.par.episode import play_episode
    from protege.worlds.babyai.examine import make_examine_env
    if index < 0:
        raise UserError(f"--episode must be >= 0, got {index}")
    result = play_episode(make_examine_env(), EVAL_SEED_START + index, planner, actor, reporter)
    return asdict(result)


def dialogue_lines(record: dict) -> list[str]:
    outcome = "success" if record["success"] else "failure"
    head = (f"seed {record['seed']}: {record['mission']!r}; objects: {', '.join(record['objects'])} "
            f"(the {record['target']} is the one); {outcome} in {record['steps']} steps, "
            f"{record['malformed']} malformed replies")
    lines = [head]
    for turn in record["turns"]:
        if turn["instruction"] is None:
            lines.append(f"  Planner:  {turn['reply']!r}  (malformed: re-asked)")
            continue
        lines.append(f"  Planner:  {turn['instruction']}")
        lines.append(f"  Actor:    {turn['actor_steps']} steps")
        if turn["report"] is not None:
            lines.append(f"  Reporter: {turn['report']}")
    if record.get("failed_malformed"):
        lines.append("  (episode failed: no usable Planner reply)")
    return lines


def reporter_codebook(reporter) -> list[dict]:
    """What a Reporter says facing each object state (the object's type and colour pooled): per
    state (unexamined or a revealed property), how often it names that property, and its reports."""
    from collections import Counter

    import numpy as np
    from minigrid.core.constants import OBJECT_TO_IDX

    from protege.worlds.babyai.examine import (
        FRONT_CELL,
        OBJECT_TYPES,
        PROPERTIES,
        REVEALED_STATE,
    )
    rows = []
    for state in [0] + [REVEALED_STATE + i for i in range(len(PROPERTIES))]:
        said = Counter()
        for kind in OBJECT_TYPES:
            for colour in range(6):
                view = np.zeros((7, 7, 3), np.uint8)
                view[FRONT_CELL] = (OBJECT_TO_IDX[kind], colour, state)
                said[reporter.report(view)] += 1
        prop = PROPERTIES[state - REVEALED_STATE] if state else None
        rows.append({"faced object": f"examined, {prop}" if prop else "not examined",
                     "names its property": f"{said[f'it is {prop}']}/{sum(said.values())}" if prop else "-",
                     "reports": ", ".join(f"{r!r} x{n}" for r, n in said.most_common())})
    return rows
