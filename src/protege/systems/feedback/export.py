"""What people made, out of the studio: marks, labels and annotated episodes; demonstrations.

`protege studio export --out DIR` writes (through `data.manifest.output_folder`, with checksums):
    marks.jsonl       line 1 {"format": "protege.feedback.marks", "version": 1}; then one row per
                      live mark: uuid, episode, user, step, kind, comment, created_at, updated_at
                      (step = frame index 0..T of the episode's T+1 frames; times ISO 8601 UTC)
    annotators.jsonl  one row per person: user, role, assigned, done, marks
    episodes.jsonl    one row per episode with at least one live mark: id, level, seed, mission,
                      actions, rewards, terminated, truncated, annotators, labels (each annotator's
                      latest success/failure label), annotations {"progress": [T], "success": [T]}
Per-step annotations follow `Episode.annotations` (length T, one entry per action): a mark on frame
f (the observation after f actions) annotates the action that led there, step f - 1 (frame 0,
before any action, annotates step 0). "progress" sums +1 per progress and -1 per regress mark over
annotators; "success" sums +1 per success and -1 per failure mark.

`load_export(DIR)` returns those episodes as `Episode`s (observations rebuilt by replaying level,
seed and actions); `describe(DIR)` checks a folder for `protege data validate`.
`--demos DIR`: people's successful plays as a BabyAI demonstrations folder (`load_demos`).
"""

import json
from collections import defaultdict
from pathlib import Path

from sqlalchemy import func, select

from protege.core.errors import UserError
from protege.data.manifest import output_folder, read_kind, write_manifest
from protege.systems.feedback.db import Assignment, EpisodeRow, Mark, Play, User, iso

KIND = "protege.feedback.export"
MARKS_FORMAT = {"format": "protege.feedback.marks", "version": 1}
FILES = ("marks.jsonl", "annotators.jsonl", "episodes.jsonl")
SIGN = {"progress": ("progress", 1), "regress": ("progress", -1),
        "success": ("success", 1), "failure": ("success", -1)}


def _write_jsonl(path: Path, rows) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n


def per_step(length: int, marks: list[tuple[int, str]]) -> dict[str, list[int]]:
    """The per-step annotations (length T) of an episode's marks [(frame index, kind)]."""
    out = {"progress": [0] * length, "success": [0] * length}
    for frame, kind in marks:
        if length:
            key, sign = SIGN[kind]
            out[key][min(max(frame - 1, 0), length - 1)] += sign
    return out


def export_marks(sessions, out: Path) -> dict:
    """Write marks, annotators and annotated episodes to `out`; a summary row."""
    with sessions() as db:  # one transaction: a consistent snapshot while people keep marking
        users = {u.id: u for u in db.scalars(select(User))}
        marks = db.scalars(select(Mark).where(Mark.deleted.is_(False))
                           .order_by(Mark.episode_id, Mark.user_id, Mark.step, Mark.created_at, Mark.uuid)).all()
        assigned = dict(db.execute(select(Assignment.user_id, func.count()).group_by(Assignment.user_id)).all())
        done = dict(db.execute(select(Assignment.user_id, func.count()).where(Assignment.done.is_(True))
                               .group_by(Assignment.user_id)).all())
        ids = sorted({m.episode_id for m in marks})
        episodes = {e.id: e for e in db.scalars(select(EpisodeRow).where(EpisodeRow.id.in_(ids)))} if ids else {}
    by_episode = defaultdict(list)
    for m in marks:
        by_episode[m.episode_id].append(m)
    counts = defaultdict(int)
    for m in marks:
        counts[m.user_id] += 1
    with output_folder(Path(out), KIND) as tmp:
        n_marks = _write_jsonl(tmp / "marks.jsonl", [MARKS_FORMAT, *(
            {"uuid": m.uuid, "episode": m.episode_id, "user": users[m.user_id].name, "step": m.step,
             "kind": m.kind, "comment": m.comment, "created_at": iso(m.created_at),
             "updated_at": iso(m.updated_at)} for m in marks)]) - 1
        _write_jsonl(tmp / "annotators.jsonl", (
            {"user": u.name, "role": u.role, "assigned": assigned.get(u.id, 0), "done": done.get(u.id, 0),
             "marks": counts.get(u.id, 0)} for u in sorted(users.values(), key=lambda u: u.name)))
        n_episodes = _write_jsonl(tmp / "episodes.jsonl", (_episode_row(episodes[i], by_episode[i], users) for i in ids))
        write_manifest(tmp, {"kind": KIND, "version": MARKS_FORMAT["version"], "marks": n_marks,
                             "episodes": n_episodes, "annotators": len(users)})
    return {"marks": n_marks, "episodes": n_episodes, "annotators": len(users)}


def _episode_row(e: EpisodeRow, marks: list[Mark], users: dict) -> dict:
    labels = {}
    for m in sorted(marks, key=lambda m: (m.updated_at, m.uuid)):
        if m.kind in ("success", "failure"):
            labels[users[m.user_id].name] = m.kind  # the latest label of each person
    return {"id": e.id, "level": e.level, "seed": e.seed, "mission": e.mission, "actions": e.actions,
            "rewards": e.rewards, "terminated": e.terminated, "truncated": e.truncated,
            "annotators": sorted({users[m.user_id].name for m in marks}), "labels": labels,
            "annotations": per_step(e.length, [(m.step, m.kind) for m in marks])}


def _rows(folder: Path, name: str):
    from protege.data.text import read_jsonl
    return read_jsonl(Path(folder) / name, f"{name} rows of a studio export")


def _check(folder: Path) -> dict:
    folder = Path(folder)
    meta = read_kind(folder, KIND, "studio export folder", "protege studio export --out")
    for number, row in _rows(folder, "marks.jsonl"):
        if number == 1:
            if row != MARKS_FORMAT:
                raise UserError(f"{folder / 'marks.jsonl'} line 1: header {row!r:.80} is not {MARKS_FORMAT}")
            continue
        if not isinstance(row, dict) or set(row) != {"uuid", "episode", "user", "step", "kind", "comment",
                                                      "created_at", "updated_at"}:
            raise UserError(f"{folder / 'marks.jsonl'} line {number}: not a mark row")
    return meta


def load_export(folder: Path) -> list:
    """The annotated episodes of a studio export as `Episode`s with per-step "progress" and
    "success" annotations (observations by replay; the replay must reproduce the rewards)."""
    import numpy as np

    from protege.worlds.babyai.levels import make_env
    from protege.worlds.babyai.replay import replay_episode
    _check(folder)
    episodes, envs = [], {}
    for number, row in _rows(folder, "episodes.jsonl"):
        try:
            level, actions = row["level"], row["actions"]
            env = envs.setdefault(level, make_env(level))
            episode = replay_episode(level, row["seed"], actions, row["annotations"], env=env)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{Path(folder) / 'episodes.jsonl'} line {number}: {type(e).__name__}: {e}") from None
        if not np.allclose(episode.rewards, row["rewards"], atol=1e-6):
            raise UserError(f"{Path(folder) / 'episodes.jsonl'} line {number}: replaying the actions does "
                            f"not give the recorded rewards (another minigrid version?)")
        episodes.append(episode)
    return episodes


def describe(folder: Path) -> tuple[str, dict]:
    """Check a studio export (`protege data validate`): manifest, marks header and rows, episodes."""
    meta = _check(folder)
    episodes = load_export(folder)
    return "studio export (marks + annotated episodes)", {
        "marks": meta.get("marks"), "episodes": len(episodes), "annotators": meta.get("annotators"),
        "steps": sum(len(e) for e in episodes)}


def check_demos_folder(out: Path) -> None:
    """Refuse (before any work) a --demos path that is a file or someone's folder: only a new or
    empty folder, or an earlier demonstrations folder, is written."""
    from protege.data.manifest import MANIFEST, manifest_kind
    from protege.worlds.babyai.demos import FORMAT as DEMOS_FORMAT
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--demos {out} is an existing file, not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()):
        try:
            kind = manifest_kind(out) if (out / MANIFEST).exists() else None
        except UserError:
            kind = None
        if kind != DEMOS_FORMAT:
            raise UserError(f"--demos {out} already exists and is not a demonstrations folder "
                            f"written before; choose another path")


def export_demos(sessions, out: Path, level: str | None = None) -> dict:
    """People's successful plays (of `level`, or of the one level they played) as a BabyAI
    demonstrations folder; a summary row."""
    from protege.worlds.babyai.demos import write_episodes
    from protege.worlds.babyai.levels import make_env
    from protege.worlds.babyai.replay import replay_episode
    with sessions() as db:
        plays = db.execute(select(Play, User.name).join(User, User.id == Play.user_id)
                           .where(Play.status == "success").order_by(Play.created_at, Play.id)).all()
    levels = sorted({p.level for p, _ in plays})
    if level is None and len(levels) > 1:
        raise UserError(f"people played several levels ({', '.join(levels)}); pick one with --level")
    level = level or (levels[0] if levels else None)
    chosen = [(p, name) for p, name in plays if p.level == level]
    if not chosen:
        raise UserError(f"no successful plays{f' of {level}' if level else ''} to export "
                        f"(levels played to success: {', '.join(levels) or 'none'})")
    env = make_env(level)
    episodes = [replay_episode(level, p.seed, p.actions, env=env) for p, _ in chosen]
    stats = write_episodes(episodes, out, algorithm="people (protege studio)",
                           meta={"players": sorted({name for _, name in chosen})})
    return {"level": level, "demonstrations": stats["episodes"], "steps": stats["steps"]}
