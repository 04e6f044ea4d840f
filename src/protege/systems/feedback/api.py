"""JSON routes: assignments (leased, k annotators per episode), episodes, marks, admin progress.

Marks are upserted by the uuid the browser chose, in one statement (group-committed with other
people's marks, `marks.py`), and the answer `acked: true` is sent only after the transaction
committed: a retried PUT finds its row and updates it (never a
second row), and an acknowledged mark is on disk. Undo is the same uuid with `deleted: true`;
deletion is sticky (a late retry of the original PUT cannot revive an undone mark), so the final
state does not depend on the order in which retries arrive.
"""

import time
import uuid as uuidlib
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from protege.systems.feedback import assign
from protege.systems.feedback.auth import AdminDep, Principal, UserDep
from protege.systems.feedback.db import Assignment, EpisodeRow, Mark, iso

router = APIRouter()
COMMENT_MAX = 1000


def _assignment_json(a: Assignment, e: EpisodeRow) -> dict:
    return {"id": a.id, "episode_id": e.id, "mission": e.mission, "level": e.level, "length": e.length,
            "done": a.done, "lease_expires": iso(a.lease_expires)}


@router.post("/api/assignments/next")
def next_assignment(request: Request, who: UserDep):
    found = assign.lease_next(request.app.state.db, who.user_id, request.app.state.lease_seconds)
    if found is None:
        return Response(status_code=204)
    return _assignment_json(*found)


@router.get("/api/assignments")
def my_assignments(request: Request, who: UserDep):
    with request.app.state.db() as db:
        rows = db.execute(select(Assignment, EpisodeRow).join(EpisodeRow, EpisodeRow.id == Assignment.episode_id)
                          .where(Assignment.user_id == who.user_id).order_by(Assignment.id)).all()
        return [_assignment_json(a, e) for a, e in rows]


@router.post("/api/assignments/{assignment_id}/done")
def finish_assignment(assignment_id: int, request: Request, who: UserDep):
    with request.app.state.db() as db:
        a = db.get(Assignment, assignment_id)
        if a is None or a.user_id != who.user_id:  # someone else's: as if it did not exist
            raise HTTPException(404, "no such assignment of yours")
        a.done = True
        db.commit()
        return {"id": a.id, "done": True}


def _visible_episode(db, who: Principal, episode_id: str) -> EpisodeRow:
    """The episode, if `who` may see it: admins any, annotators only their assigned ones."""
    episode = db.get(EpisodeRow, episode_id)
    if episode is None:
        raise HTTPException(404, "no such episode")
    if who.role != "admin":
        mine = db.scalar(select(Assignment.id).where(Assignment.episode_id == episode_id,
                                                     Assignment.user_id == who.user_id))
        if mine is None:
            raise HTTPException(403, "this episode is not assigned to you")
    return episode


def _mark_json(m: Mark) -> dict:
    return {"uuid": m.uuid, "step": m.step, "kind": m.kind, "comment": m.comment,
            "created_at": iso(m.created_at), "updated_at": iso(m.updated_at)}


@router.get("/api/episodes/{episode_id}")
def get_episode(episode_id: str, request: Request, who: UserDep):
    from protege.systems.feedback.episodes import ensure_frames
    with request.app.state.db() as db:
        episode = _visible_episode(db, who, episode_id)
        marks = db.scalars(select(Mark).where(Mark.episode_id == episode_id, Mark.user_id == who.user_id,
                                              Mark.deleted.is_(False)).order_by(Mark.step, Mark.created_at)).all()
    frames = ensure_frames(request.app.state.db, request.app.state.media, episode)
    return {"id": episode.id, "mission": episode.mission, "level": episode.level,
            "length": episode.length, "frames": [f"/media/frames/{h}.png" for h in frames],
            "rewards": episode.rewards, "terminated": episode.terminated,
            "truncated": episode.truncated, "marks": [_mark_json(m) for m in marks]}


class MarkIn(BaseModel):
    episode_id: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
    step: int = Field(ge=0)
    kind: Literal["progress", "regress", "success", "failure"]
    comment: str = Field(default="", max_length=COMMENT_MAX)
    deleted: bool = False


def _canonical_uuid(text: str) -> str:
    try:
        value = uuidlib.UUID(text)
    except ValueError:
        raise HTTPException(422, "the mark id must be a UUID") from None
    if str(value) != text.lower():  # one spelling per mark: no braces, urn: prefix or missing dashes
        raise HTTPException(422, "the mark id must be a UUID in its canonical form")
    return str(value)


def _visible_length(request: Request, db, who: Principal, episode_id: str) -> int:
    """The length of an episode `who` may mark (403/404 otherwise); cached once allowed, since
    episodes never change and assignments are never taken back."""
    key = (who.user_id, episode_id)
    cache = request.app.state.visible
    if key not in cache:
        cache[key] = _visible_episode(db, who, episode_id).length
    return cache[key]


@router.put("/api/marks/{mark_uuid}")
def put_mark(mark_uuid: str, body: MarkIn, request: Request, who: UserDep):
    key = _canonical_uuid(mark_uuid)
    now = time.time()
    with request.app.state.db() as db:
        length = _visible_length(request, db, who, body.episode_id)
        if body.step > length:
            raise HTTPException(422, f"step {body.step} is past the episode's end ({length})")
        values = {"uuid": key, "episode_id": body.episode_id, "user_id": who.user_id, "step": body.step,
                  "kind": body.kind, "comment": body.comment, "deleted": body.deleted,
                  "created_at": now, "updated_at": now}
    # group commit (marks.py): returns once the transaction holding this write committed
    if not request.app.state.marks.write(values):  # the uuid exists and was not ours to update
        with request.app.state.db() as db:
            row = db.get(Mark, key)
            if row is None or row.user_id != who.user_id:
                raise HTTPException(403, "this mark belongs to another user")
            if row.episode_id != body.episode_id:
                raise HTTPException(409, "this mark id is already used for another episode")
            return {"uuid": key, "acked": True, "deleted": True}  # an undone mark stays undone
    return {"uuid": key, "acked": True, "deleted": body.deleted}


@router.get("/api/admin/progress")
def admin_progress(request: Request, who: AdminDep):
    from protege.systems.feedback.agreement import agreement_report
    from protege.systems.feedback.db import User
    now = time.time()
    with request.app.state.db() as db:
        users = db.execute(select(User.id, User.name, User.role).order_by(User.name)).all()
        assigned = dict(db.execute(select(Assignment.user_id, func.count()).group_by(Assignment.user_id)).all())
        done = dict(db.execute(select(Assignment.user_id, func.count()).where(Assignment.done.is_(True))
                               .group_by(Assignment.user_id)).all())
        leased = dict(db.execute(select(Assignment.user_id, func.count())
                                 .where(Assignment.done.is_(False), Assignment.lease_expires > now)
                                 .group_by(Assignment.user_id)).all())
        marks = dict(db.execute(select(Mark.user_id, func.count()).where(Mark.deleted.is_(False))
                                .group_by(Mark.user_id)).all())
        episodes = db.scalar(select(func.count()).select_from(EpisodeRow))
        report = agreement_report(db)
        overlap = assign.overlap(db)
    return {"episodes": episodes, "overlap": overlap,
            "annotators": [{"user": u.name, "role": u.role, "assigned": assigned.get(u.id, 0),
                            "leased": leased.get(u.id, 0), "done": done.get(u.id, 0),
                            "marks": marks.get(u.id, 0)} for u in users],
            "agreement": report}
