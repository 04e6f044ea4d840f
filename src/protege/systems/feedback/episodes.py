"""Episodes into the studio, and their frames out.

An episode is stored as (level, seed, actions) plus what the world returned (mission, rewards, how
it ended); its id is the SHA-256 of its identity (level, seed, actions), so importing the same
episode twice keeps one row. Sources: a BabyAI demonstrations folder (`protege data demos`) and a
trained BabyAI run, whose policy plays N held-out episodes (`--run RUN --episodes N`).

Frames are rendered server-side by replaying the episode with minigrid's renderer and written once
as PNG to `MEDIA/frames/<sha256 of the PNG bytes>.png`: the name is the content, so a frame shared
by many episodes (or many plays) is stored once, and a file is never rewritten with other bytes.
"""

import contextlib
import hashlib
import io
import os
import re
import threading
from pathlib import Path

from sqlalchemy import select

from protege.core.errors import UserError
from protege.data.episodes import replay_id
from protege.systems.feedback.db import EpisodeRow

FRAME_NAME = re.compile(r"([0-9a-f]{64})\.png")
_render_lock = threading.Lock()  # one replay at a time per process: renders are CPU-bound anyway


episode_id = replay_id  # SHA-256 of (level, seed, actions): importing twice stores once


def frame_path(media: Path, name: str) -> Path | None:
    """The file of frame `name` ("<64 hex>.png"), or None for any other name: the path is built
    from the validated digest only, never joined from user input."""
    match = FRAME_NAME.fullmatch(name)
    return None if match is None else Path(media) / "frames" / f"{match.group(1)}.png"


def store_png(media: Path, png: bytes) -> str:
    """Write `png` under its content hash (once; atomically) and return the hash."""
    digest = hashlib.sha256(png).hexdigest()
    path = Path(media) / "frames" / f"{digest}.png"
    if not path.exists():
        tmp = path.with_name(f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(png)
        os.replace(tmp, path)  # same bytes whoever wins a race
    return digest


def render_pngs(media: Path, level: str, seed: int, actions) -> list[str]:
    """Replay (level, seed, actions), store every frame as PNG; the T+1 hashes in order."""
    from protege.worlds.babyai.replay import png_bytes, replay
    with _render_lock:
        frames = replay(level, seed, actions, render=True).frames
    return [store_png(media, png_bytes(frame)) for frame in frames]


def ensure_frames(sessions, media: Path, episode: EpisodeRow) -> list[str]:
    """The episode's frame hashes, rendering them the first time (or again when the media folder
    lost a file: the hashes stay the same since rendering is deterministic)."""
    frames = episode.frames
    if frames and all((Path(media) / "frames" / f"{h}.png").exists() for h in frames):
        return frames
    frames = render_pngs(media, episode.level, episode.seed, episode.actions)
    with sessions() as db:
        row = db.get(EpisodeRow, episode.id)
        row.frames = frames
        db.commit()
    return frames


def add_episodes(sessions, rows: list[dict]) -> tuple[int, int]:
    """Insert episode rows (dicts of EpisodeRow fields without id) not stored yet; (added, known)."""
    added = 0
    with sessions() as db:
        for row in rows:
            eid = episode_id(row["level"], row["seed"], row["actions"])
            if db.get(EpisodeRow, eid) is None:
                db.add(EpisodeRow(id=eid, length=len(row["actions"]), **row))
                added += 1
        db.commit()
    return added, len(rows) - added


def rows_from_episodes(episodes, source: str) -> list[dict]:
    """Episode rows of `protege.data.episodes.Episode`s (with level and seed)."""
    return [{"level": e.env_id, "seed": int(e.seed), "mission": e.instruction or "",
             "actions": [int(a) for a in e.actions], "rewards": [float(r) for r in e.rewards],
             "terminated": bool(e.terminated), "truncated": bool(e.truncated), "source": source}
            for e in episodes]


def demo_rows(folder: Path, limit: int | None = None) -> list[dict]:
    """Episode rows of a BabyAI demonstrations folder (its first `limit` episodes)."""
    from protege.worlds.babyai.demos import read_episodes
    episodes = read_episodes(Path(folder))
    if any(e.seed is None for e in episodes):
        raise UserError(f"{folder}: episodes without a seed cannot be replayed for frames")
    return rows_from_episodes(episodes[:limit], f"demos:{Path(folder).resolve()}")


def run_rows(run: Path, episodes: int, seed_start: int | None = None, greedy: bool = True) -> list[dict]:
    """Episode rows of `episodes` held-out episodes played by a trained BabyAI run's policy."""
    from protege.rl.babyai_rollout import load_policy, play_episodes
    from protege.worlds.babyai.levels import EVAL_SEED_START, make_env
    if episodes <= 0:
        raise UserError(f"--episodes must be positive, got {episodes}")
    model, _, config = load_policy(Path(run))
    model.eval()
    level = config.get("level")
    if not level:
        raise UserError(f"{run}: the run's config names no level")
    start = EVAL_SEED_START if seed_start is None else seed_start
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints rejected layouts
        played = play_episodes(model, lambda: make_env(level), list(range(start, start + episodes)), greedy)
    return [{"level": level, "seed": p["seed"], "mission": p["mission"], "actions": p["actions"],
             "rewards": p["rewards"], "terminated": p["terminated"], "truncated": p["truncated"],
             "source": f"run:{Path(run).resolve()}"} for p in played]


def import_demos(sessions, folder: Path, limit: int | None = None) -> tuple[int, int]:
    """Store a demonstrations folder's episodes; (added, already known)."""
    return add_episodes(sessions, demo_rows(folder, limit))


def episode_ids(sessions) -> list[str]:
    with sessions() as db:
        return list(db.scalars(select(EpisodeRow.id).order_by(EpisodeRow.created_at, EpisodeRow.id)))
