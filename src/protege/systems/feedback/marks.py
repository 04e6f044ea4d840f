"""Group commit of marks: many people's mark writes share one transaction and one fsync.

With SQLite every commit waits for an fsync of the WAL (`synchronous=FULL`), a few milliseconds on
ordinary disks, and commits are serial, so one commit per mark caps a server at a few hundred
marks per second however many people mark at once. Here request threads hand their upsert to one
writer thread, which takes every write waiting at that moment, runs them in one transaction (if it
fails, each write again alone, so one bad write fails only its own request), commits once, and
only then answers each request thread:
a mark is still acknowledged only after the transaction holding it committed, and a retry is still
an upsert by uuid. PostgreSQL gets the same path (its own group commit would also do).
"""

import queue
import threading
from concurrent.futures import Future

from sqlalchemy import and_, bindparam
from sqlalchemy.dialects import postgresql, sqlite

from protege.systems.feedback.db import Mark

COLUMNS = ("uuid", "episode_id", "user_id", "step", "kind", "comment", "deleted", "created_at", "updated_at")
MAX_BATCH = 512


def upsert_statement(dialect: str):
    """Insert a mark, or update the row of the same uuid when it is the same person's, on the same
    episode and not undone (deletion is sticky); RETURNING yields the uuid only when a row was
    written. Bound parameters: `COLUMNS`."""
    table = Mark.__table__
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    stmt = stmt.values({c: bindparam(c) for c in COLUMNS})
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.uuid],
        set_={c: stmt.excluded[c] for c in ("step", "kind", "comment", "deleted", "updated_at")},
        where=and_(table.c.user_id == stmt.excluded.user_id, table.c.episode_id == stmt.excluded.episode_id,
                   table.c.deleted.is_(False)))
    return stmt.returning(table.c.uuid)


class MarkWriter:
    """One thread that writes marks in batches. `write(values)` blocks until the batch holding
    the write committed and returns True (written) or False (the uuid is someone else's, of
    another episode, or undone: nothing written); it raises what the database raised."""

    def __init__(self, engine):
        self.engine = engine
        self.statement = upsert_statement(engine.dialect.name)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mark-writer", daemon=True)
        self._thread.start()

    def write(self, values: dict, timeout: float = 60.0) -> bool:
        future: Future = Future()
        self._queue.put((values, future))
        return future.result(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list) -> None:
        """One transaction for the batch; if it fails, each half alone, recursively (so one bad
        write fails only its own request, and the others still share a few commits rather than
        taking one each). Answers go out only after the commit returned."""
        try:
            with self.engine.begin() as connection:
                results = [connection.execute(self.statement, values).first() is not None
                           for values, _ in batch]
        except Exception as e:
            if len(batch) == 1:
                batch[0][1].set_exception(e)
            else:
                half = len(batch) // 2
                self._commit(batch[:half])
                self._commit(batch[half:])
            return
        for (_, future), written in zip(batch, results):
            future.set_result(written)
