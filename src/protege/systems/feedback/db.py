"""The studio's database: SQLAlchemy 2 models, engines and the schema migration on start.

SQLite (the embedded default, a file path) runs in WAL mode with `synchronous=FULL`, so a commit
is on disk when it returns: the server acknowledges a mark only after its commit, hence an
acknowledged mark survives a SIGKILL or power loss. `postgresql://` URLs use psycopg 3. The schema
is created and upgraded by Alembic (`migrations/`), never by `create_all`, so a deployed database
moves forward with the code.

Times are Unix seconds (float); JSON columns hold lists of numbers (actions, rewards, frame hashes).
"""

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from protege.core.errors import UserError

ROLES = ("admin", "annotator")
MARK_KINDS = ("progress", "regress", "success", "failure")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class Session(Base):
    """A browser login: the cookie holds a random token, the table its SHA-256 (a leaked database
    does not hand out live sessions)."""
    __tablename__ = "sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[float] = mapped_column(Float)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class EpisodeRow(Base):
    """An episode to watch: identified by the content hash of (level, seed, actions), so importing
    the same episode twice stores it once. `frames` are the SHA-256 names of its rendered PNGs
    (length + 1 of them), filled the first time the episode is opened."""
    __tablename__ = "episodes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[str] = mapped_column(String(128))
    seed: Mapped[int] = mapped_column(BigInteger)
    mission: Mapped[str] = mapped_column(Text)
    actions: Mapped[list] = mapped_column(JSON)
    rewards: Mapped[list] = mapped_column(JSON)
    terminated: Mapped[bool] = mapped_column(Boolean)
    truncated: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(Text)
    length: Mapped[int] = mapped_column(Integer)
    frames: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("episode_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    leased_at: Mapped[float] = mapped_column(Float)
    lease_expires: Mapped[float] = mapped_column(Float)
    done: Mapped[bool] = mapped_column(Boolean, default=False)


class Mark(Base):
    """One mark of one person on one step; the browser picks the uuid, so a retried PUT updates
    the same row. Undo sets `deleted` (the row stays: a late retry of the original cannot revive
    it unless it says so)."""
    __tablename__ = "marks"
    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Play(Base):
    """A person playing a level to demonstrate. `frames` and `rewards` hold each step's recorded
    result, so a retried step (same `seq`) is answered without stepping again."""
    __tablename__ = "plays"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(128))
    seed: Mapped[int] = mapped_column(BigInteger)
    mission: Mapped[str] = mapped_column(Text)
    actions: Mapped[list] = mapped_column(JSON)
    rewards: Mapped[list] = mapped_column(JSON)
    frames: Mapped[list] = mapped_column(JSON)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="playing")
    """playing | success | failure | truncated"""
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def database_url(db: str) -> str:
    """A SQLAlchemy URL from what the user typed: a file path (SQLite), `sqlite:///...`, or a
    PostgreSQL URL (`postgresql://` is mapped to the psycopg 3 driver)."""
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    try:
        url = make_url(db)
    except ArgumentError:
        raise UserError(f"--db {db!r}: not a database URL (a file path for SQLite, or "
                        f"postgresql://user:password@host/dbname)") from None
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.drivername == "sqlite":
        return db
    raise UserError(f"--db {db!r}: unsupported database {url.drivername!r} (valid: a SQLite file "
                    f"path or sqlite:///PATH, postgresql://...)")


def make_engine(db: str) -> Engine:
    """An engine for `db` (see `database_url`), with SQLite's durable settings on every connection."""
    url = check_db(db)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=20, max_overflow=20)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit: acked = on disk
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic, run in-process)."""
    from alembic import command
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except Exception as e:  # server down, wrong password, a file that is not a database
        import sqlite3

        import psycopg
        from sqlalchemy.exc import DBAPIError
        if isinstance(e, DBAPIError | sqlite3.Error | psycopg.Error):
            reason = " ".join(str(getattr(e, "orig", None) or e).split())[:300]
            raise UserError(f"database {engine.url.render_as_string(hide_password=True)}: {reason}") from None
        raise


def check_db(db: str, must_exist: bool = False) -> str:
    """The SQLAlchemy URL of `db`, refused in one line (touching nothing) when malformed, in a
    missing folder, or (`must_exist`) a SQLite file that does not exist yet."""
    url = database_url(db)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            if not Path(path).parent.is_dir():
                raise UserError(f"--db {db}: folder {Path(path).parent} does not exist")
            if Path(path).is_dir():
                raise UserError(f"--db {db} is a folder, not a SQLite file")
            if must_exist and not Path(path).is_file():
                raise UserError(f"--db {db}: no studio database there (create one with "
                                f"`protege studio add-user NAME --role admin --db {db}`)")
    return url


def open_db(db: str, must_exist: bool = False) -> tuple[Engine, sessionmaker]:
    """Engine + session factory of an upgraded database: what every command starts with."""
    check_db(db, must_exist)
    engine = make_engine(db)
    upgrade(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)


def get_setting(session, key: str, default: str) -> str:
    row = session.get(Setting, key)
    return default if row is None else row.value


def set_setting(session, key: str, value: str) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value


def iso(t: float) -> str:
    """Unix seconds as ISO 8601 UTC, e.g. 2026-11-30T03:24:00.123Z (milliseconds: marks made in one
    second keep their order)."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
