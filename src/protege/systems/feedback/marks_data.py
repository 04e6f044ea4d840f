"""The marks of a studio export (people's or simulated) as training data for rewards from marks.

`load_marks(DIR)` checks every mark row against its episode and refuses, with file, line and field,
a mark on an episode the export does not hold, a kind other than progress / regress / success /
failure, and a step (frame index) outside the episode's frames 0..T. Episodes come from
`export.load_export` (observations by replay); `truth.jsonl`, written only by simulated
annotators, adds the bot's remaining steps per frame for evaluation.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.core.errors import UserError
from protege.data.episodes import Episode

KINDS = ("progress", "regress", "success", "failure")


@dataclass(frozen=True)
class MarkedEpisode:
    """An episode and its marks: (frame, kind, user) sorted by frame; remaining: the bot's steps
    to finish from each frame (-1 unknown), or None for people's exports; agent: who played it."""
    episode: Episode
    marks: tuple
    remaining: tuple | None = None
    agent: str = ""

    @property
    def success(self) -> bool:
        from protege.worlds.babyai.levels import episode_success
        return episode_success(self.episode.terminated, float(self.episode.rewards[-1])) if len(self.episode) else False


def _read(path: Path, what: str):
    from protege.data.text import read_jsonl
    return read_jsonl(path, what)


def load_marks(folder: Path) -> list[MarkedEpisode]:
    """Marked episodes of a studio export, each mark checked (see the module docstring)."""
    from protege.systems.feedback.episodes import episode_id
    from protege.systems.feedback.export import load_export
    folder = Path(folder)
    episodes = load_export(folder)
    by_id = {episode_id(e.env_id, e.seed, e.actions): e for e in episodes}
    marks: dict[str, list] = {i: [] for i in by_id}
    path = folder / "marks.jsonl"
    for number, row in _read(path, "marks.jsonl rows of a studio export"):
        if number == 1:
            continue  # the header, checked by load_export
        eid, kind, step = row["episode"], row["kind"], row["step"]
        if eid not in by_id:
            raise UserError(f"{path} line {number}: field 'episode': {str(eid)[:16]!r} is not an episode "
                            f"of {folder / 'episodes.jsonl'}")
        if kind not in KINDS:
            raise UserError(f"{path} line {number}: field 'kind': unknown mark kind {kind!r}; "
                            f"valid: {', '.join(KINDS)}")
        T = len(by_id[eid])
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= T:
            raise UserError(f"{path} line {number}: field 'step': {step!r} is outside episode "
                            f"{eid[:12]}'s frames 0..{T}")
        marks[eid].append((step, kind, str(row["user"])))
    truth = _truth(folder, by_id)
    return [MarkedEpisode(e, tuple(sorted(marks[i])), *truth.get(i, (None, ""))) for i, e in by_id.items()]


def _truth(folder: Path, by_id: dict) -> dict:
    path = folder / "truth.jsonl"
    if not path.exists():
        return {}
    out = {}
    for number, row in _read(path, "truth.jsonl rows of a simulated export"):
        eid = row.get("episode")
        if eid not in by_id or len(row.get("remaining", ())) != len(by_id[eid]) + 1:
            raise UserError(f"{path} line {number}: field 'remaining' does not match an episode of the export")
        out[eid] = (tuple(int(d) for d in row["remaining"]), str(row.get("agent", "")))
    return out


def split(episodes: list[MarkedEpisode], held_out: float, seed: int) -> tuple[list, list]:
    """(train, held-out) by a seeded permutation; held-out gets round(held_out * n) episodes."""
    order = np.random.default_rng(seed).permutation(len(episodes))
    n = int(round(held_out * len(episodes)))
    return [episodes[i] for i in order[n:]], [episodes[i] for i in order[:n]]


def subsample_marks(episodes: list[MarkedEpisode], n: int, seed: int) -> list[MarkedEpisode]:
    """Keep n marks in all (a seeded random subset; 0: all), for learning curves over marks."""
    flat = [(i, m) for i, e in enumerate(episodes) for m in e.marks]
    if n <= 0 or n >= len(flat):
        return episodes
    keep = set(np.random.default_rng(seed).choice(len(flat), n, replace=False).tolist())
    kept: dict[int, list] = {i: [] for i in range(len(episodes))}
    for j, (i, m) in enumerate(flat):
        if j in keep:
            kept[i].append(m)
    return [MarkedEpisode(e.episode, tuple(kept[i]), e.remaining, e.agent) for i, e in enumerate(episodes)]
