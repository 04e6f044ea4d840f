"""Judges of continuations (arXiv:2205.13274 item 3): the world's verifier, people, and the learned
success detector. Each writes judgements in the format of `formats.py` (one JSON line per judge and
item: {"agent", "scenario", "success", "judge"}), which `protege sts rank --judgements` reads.

    verifier   BabyAI's own success rule (`worlds/babyai/levels.episode_success`) on how the
               continuation ended
    human      people's success/failure marks from a studio export (`protege studio export`):
               every person's latest label is one judgement, so an item judged by k people has
               k lines; agreement by Cohen's kappa (2 judges) or Fleiss' kappa (k > 2)
    detector   a trained success detector's probability >= 0.5 (`systems/sts/detector.py`)

People watch continuations in the studio, which replays episodes from the level's reset: a
continuation goes there as its whole episode (the scenario's prefix, then the continuation) in a
demonstrations folder per level (`studio_set`, `protege sts studio-set`), and comes back matched by
the studio's episode id, the SHA-256 of (level, seed, actions) (`episode_key`, from `data.episodes.replay_id`).
"""

import json
from collections import Counter
from pathlib import Path

import numpy as np

from protege.core.errors import UserError
from protege.systems.sts.human_labels import agreement, episode_key, human_labels
from protege.worlds.babyai.levels import episode_success

JUDGEMENTS_FORMAT = {"format": "protege.sts.judgements", "version": 1}
JUDGES = ("verifier", "human", "detector")


# continuations ---------------------------------------------------------------------------------
def whole_actions(row: dict) -> list[int]:
    """A continuation's whole episode from the level's reset: the scenario's prefix, then its actions."""
    return [int(a) for a in row["prefix"]] + [int(a) for a in row["actions"]]


def verifier_judgements(rows: list[dict]) -> list[dict]:
    """One judgement per continuation by BabyAI's success rule on how it ended."""
    return [{"agent": r["agent"], "scenario": r["scenario"], "judge": "verifier",
             "success": episode_success(bool(r["terminated"]), float(r["rewards"][-1]) if r["rewards"] else 0.0)}
            for r in rows]


def human_judgements(rows: list[dict], export: Path) -> tuple[list[dict], dict]:
    """k judgements per continuation people judged (one per person), and their agreement. Refuses
    an export whose judged episodes are not among the continuations (another suite or set)."""
    items = human_labels(export)
    by_key: dict[str, list[dict]] = {}
    for r in rows:
        by_key.setdefault(episode_key(r["level"], r["seed"], whole_actions(r)), []).append(r)
    unknown = sorted(set(items) - set(by_key))
    if unknown:
        raise UserError(f"--export {export}: {len(unknown)} judged episode ids are not continuations of "
                        f"this set (first: {unknown[0]}); export the studio that judged these continuations")
    out = [{"agent": r["agent"], "scenario": r["scenario"], "judge": f"human:{person}", "success": label}
           for key, item in items.items() for r in by_key[key] for person, label in item.labels.items()]
    stats = agreement(list(items.values()))
    stats["unjudged"] = sum(len(v) for key, v in by_key.items() if key not in items)
    return out, stats


def detector_judgements(rows: list[dict], detector: Path) -> list[dict]:
    """One judgement per continuation: the detector's success probability >= 0.5 (kept beside it)."""
    import torch

    from protege.systems.sts.detector import last_frames, load_detector, predict
    from protege.systems.sts.detector_data import from_episodes
    from protege.systems.sts.formats import continuation_episode
    model, cfg = load_detector(detector)
    with torch.no_grad():
        data = from_episodes([continuation_episode(r) for r in rows])
        p = predict(model, last_frames(data, cfg.frames), np.arange(len(rows)))
    return [{"agent": r["agent"], "scenario": r["scenario"], "judge": f"detector:{Path(detector).name}",
             "success": bool(q >= 0.5), "probability": round(float(q), 6)} for r, q in zip(rows, p)]


def against_verifier(rows: list[dict], judgements: list[dict]) -> dict:
    """How a judge's majority per item agrees with the verifier: balanced accuracy (and, for
    judgements with a probability, ECE) over the items it judged, with bootstrap 95% intervals."""
    from protege.eval.calibration import (
        balanced_accuracy,
        bootstrap_interval,
        expected_calibration_error,
    )
    truth = {(j["agent"], j["scenario"]): j["success"] for j in verifier_judgements(rows)}
    votes: dict[tuple, list] = {}
    for j in judgements:
        votes.setdefault((j["agent"], j["scenario"]), []).append(j)
    items = sorted(votes)
    judged = np.asarray([2 * sum(j["success"] for j in votes[i]) > len(votes[i]) for i in items])
    verifier = np.asarray([truth[i] for i in items])
    out = {"vs_verifier_balanced_accuracy": balanced_accuracy(judged, verifier),
           "vs_verifier_balanced_accuracy_ci": list(bootstrap_interval(balanced_accuracy, judged, verifier))}
    if all("probability" in v[0] for v in votes.values()):
        p = np.asarray([votes[i][0]["probability"] for i in items])
        out["vs_verifier_ece"] = expected_calibration_error(p, verifier)
        out["vs_verifier_ece_ci"] = list(bootstrap_interval(expected_calibration_error, p, verifier))
    return out


def write_judgements(path: Path, judgements: list[dict]) -> None:
    from protege.core.atomic import write_text_atomic
    from protege.data.manifest import check_output_file
    check_output_file(Path(path))
    lines = [json.dumps(JUDGEMENTS_FORMAT)] + [json.dumps(j) for j in judgements]
    write_text_atomic(Path(path), "\n".join(lines) + "\n")


def judge_command(continuations: Path, by: str, export: Path | None, detector: Path | None,
                  out: Path | None) -> list[dict]:
    """`protege sts judge`: judge every continuation; (a summary row per agent, people's agreement
    ({} for the other judges))."""
    from protege.systems.sts.formats import read_continuations
    if by not in JUDGES:
        from protege.core.errors import unknown_name
        raise unknown_name("judge", by, JUDGES)
    if by == "human" and export is None:
        raise UserError("--judge human needs --export DIR (a studio export with people's success marks)")
    if by == "detector" and detector is None:
        raise UserError("--judge detector needs --detector RUN (a run of `protege sts detector-train`)")
    if out is not None:
        from protege.data.manifest import check_output_file
        check_output_file(Path(out), inputs=[continuations])
    _, rows = read_continuations(Path(continuations))
    stats = {}
    if by == "verifier":
        judgements = verifier_judgements(rows)
    elif by == "human":
        judgements, stats = human_judgements(rows, Path(export))
    else:
        judgements = detector_judgements(rows, Path(detector))
    if by != "verifier":
        stats.update(against_verifier(rows, judgements))
    if out is not None:
        write_judgements(Path(out), judgements)
    table = []
    for agent in dict.fromkeys(r["agent"] for r in rows):
        mine = [j for j in judgements if j["agent"] == agent]
        table.append({"agent": agent, "judgements": len(mine), "items": len({j["scenario"] for j in mine}),
                      "success": sum(j["success"] for j in mine) / len(mine) if mine else None})
    return table, stats


def studio_set(continuations: Path, out: Path) -> dict:
    """Write the continuations people can judge in the studio as demonstrations folders, one per
    level (`OUT/<level>`, for `protege studio import --demos`): each is its whole episode from the
    level's reset. Left out, and counted: continuations of a new instruction (the studio replays
    the level's own mission) and those running past the level's own step limit (the studio's
    replay would cut them)."""
    from protege.data.episodes import Episode
    from protege.data.manifest import check_output_folder
    from protege.systems.sts.formats import read_continuations
    from protege.worlds.babyai.demos import write_episodes
    from protege.worlds.babyai.levels import make_env
    from protege.worlds.babyai.replay import replay
    _, rows = read_continuations(Path(continuations))
    out = Path(out)
    check_output_folder(out, "protege.sts.studio-set", inputs=[continuations])
    by_level: dict[str, dict[str, Episode]] = {}
    skipped = Counter()
    for r in rows:
        actions = whole_actions(r)
        env = make_env(r["level"])
        if r.get("task"):
            skipped["new instruction"] += 1
            continue
        try:
            played = replay(r["level"], r["seed"], actions, env=env)
        except ValueError:  # the level's own limit cut the episode before its last action
            skipped["past the level's step limit"] += 1
            continue
        ended = played.terminated
        by_level.setdefault(r["level"], {})[episode_key(r["level"], r["seed"], actions)] = Episode(
            observations={"image": played.images, "direction": played.directions},
            actions=np.asarray(actions, np.int64), rewards=played.rewards, terminated=ended,
            truncated=not ended, instruction=played.mission, env_id=r["level"], seed=int(r["seed"]))
    if not by_level:
        raise UserError(f"{continuations}: no continuation can be judged in the studio "
                        f"({', '.join(f'{n} {why}' for why, n in skipped.items())})")
    from protege.data.manifest import write_manifest
    out.mkdir(parents=True, exist_ok=True)
    for level, episodes in by_level.items():
        write_episodes(list(episodes.values()), out / level, algorithm="sts continuations")
    write_manifest(out, {"kind": "protege.sts.studio-set", "continuations": str(continuations),
                         "levels": sorted(by_level)})
    return {"episodes": sum(len(e) for e in by_level.values()), "levels": len(by_level),
            **{f"left out ({why})": n for why, n in skipped.items()}}
