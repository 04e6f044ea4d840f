"""Who marks which episode: leases with expiry and k annotators per episode (overlap).

An episode needs marks while fewer than k annotators hold it, where holding means a finished
assignment or a lease that has not expired. `lease_next` gives a person their oldest unfinished
assignment (renewing its lease) or else leases them an episode they have never been assigned that
still needs marks, least-held first. Allocation is serialised (a lock per process, plus a
transaction-scoped advisory lock on PostgreSQL where several server processes may share the
database), so two people asking at once never push an episode past k.
"""

import threading
import time

from sqlalchemy import func, or_, select, text

from protege.core.errors import UserError
from protege.systems.feedback.db import (
    Assignment,
    EpisodeRow,
    User,
    get_setting,
    set_setting,
)

_lock = threading.Lock()
DEFAULT_OVERLAP = 1


def overlap(db) -> int:
    return int(get_setting(db, "overlap", str(DEFAULT_OVERLAP)))


def set_overlap(sessions, k: int) -> None:
    if k < 1:
        raise UserError(f"--overlap must be >= 1 (annotators per episode), got {k}")
    with sessions() as db:
        set_setting(db, "overlap", str(k))
        db.commit()


def _holders(now: float):
    """episode id -> number of annotators holding it (done, or leased and not expired)"""
    return (select(Assignment.episode_id, func.count().label("n"))
            .where(or_(Assignment.done.is_(True), Assignment.lease_expires > now))
            .group_by(Assignment.episode_id).subquery())


def _serialise(db) -> None:
    if db.bind.dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(14014)"))


def lease_next(sessions, user_id: int, lease_seconds: float):
    """(Assignment, EpisodeRow) leased to `user_id`, or None when nothing needs their marks."""
    with _lock, sessions() as db:
        _serialise(db)
        now = time.time()
        own = db.execute(select(Assignment, EpisodeRow).join(EpisodeRow, EpisodeRow.id == Assignment.episode_id)
                         .where(Assignment.user_id == user_id, Assignment.done.is_(False))
                         .order_by(Assignment.id).limit(1)).first()
        if own is not None:
            a, episode = own
            a.leased_at, a.lease_expires = now, now + lease_seconds
            db.commit()
            return a, episode
        return _lease_new(db, user_id, now, lease_seconds)


def _lease_new(db, user_id: int, now: float, lease_seconds: float):
    """Lease to `user_id` the least-held episode they were never assigned that has < k holders."""
    k, held = overlap(db), _holders(now)
    mine = select(Assignment.episode_id).where(Assignment.user_id == user_id)
    n = func.coalesce(held.c.n, 0)
    episode = db.scalars(select(EpisodeRow).outerjoin(held, held.c.episode_id == EpisodeRow.id)
                         .where(n < k, EpisodeRow.id.not_in(mine))
                         .order_by(n, EpisodeRow.created_at, EpisodeRow.id).limit(1)).first()
    if episode is None:
        return None
    a = Assignment(episode_id=episode.id, user_id=user_id, leased_at=now,
                   lease_expires=now + lease_seconds, done=False)
    db.add(a)
    db.commit()
    return a, episode


def assign_to(sessions, name: str, count: int, lease_seconds: float) -> int:
    """Lease up to `count` episodes to user `name` at once (an admin preparing work); the number
    leased."""
    if count < 1:
        raise UserError(f"--count must be >= 1, got {count}")
    with sessions() as db:
        user = db.scalar(select(User).where(User.name == name))
        if user is None:
            raise UserError(f"no user {name!r} (add one with `protege studio add-user {name} --role annotator`)")
        user_id = user.id
    leased = 0
    for _ in range(count):
        with _lock, sessions() as db:
            _serialise(db)
            if _lease_new(db, user_id, time.time(), lease_seconds) is None:
                break
        leased += 1
    return leased
