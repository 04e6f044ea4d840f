"""Studio test helpers: a database with users, an in-process client, and a real server on loopback.

    add_user(db, name, role, password)       a user straight into the (migrated) database
    serve_in_thread(db, media) -> base_url   uvicorn on 127.0.0.1, a free port, in a daemon thread
                                             (a context manager: the server stops on exit)
    login(client, name, password) -> csrf    logs an httpx/TestClient client in; returns its CSRF token
Fixtures: `studio` (db path, media folder, users admin/annotator/other with PASSWORD) and
`studio_url` (the same, served by `serve_in_thread`).
"""

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "correct horse battery"
USERS = {"admin": "admin", "ann": "annotator", "bob": "annotator"}


def add_user(db: str, name: str, role: str, password: str = PASSWORD) -> None:
    from protege.systems.feedback.auth import hash_password
    from protege.systems.feedback.db import User, open_db
    engine, sessions = open_db(db)
    with sessions() as s:
        s.add(User(name=name, role=role, password_hash=hash_password(password)))
        s.commit()
    engine.dispose()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """argon2id with small costs in tests (the production defaults take ~0.3 s per hash on two busy
    cores); the hashing code path is the same."""
    from argon2 import PasswordHasher

    from protege.systems.feedback import auth
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@contextlib.contextmanager
def serve_in_thread(db: str, media: Path, **app_options):
    """Serve `create_app(db, media)` with uvicorn on 127.0.0.1 (a free port); yields the base URL."""
    import uvicorn

    from protege.systems.feedback.app import create_app
    app = create_app(db, Path(media), **app_options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the studio server did not start within 20 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        app.state.engine.dispose()


def login(client, name: str, password: str = PASSWORD) -> str:
    response = client.post("/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["csrf_token"]


@dataclass
class Studio:
    db: str
    media: Path
    tmp: Path


@pytest.fixture
def studio(tmp_path) -> Studio:
    db = str(tmp_path / "studio.db")
    for name, role in USERS.items():
        add_user(db, name, role)
    return Studio(db=db, media=tmp_path / "media", tmp=tmp_path)


@pytest.fixture
def studio_url(studio):
    with serve_in_thread(studio.db, studio.media) as url:
        yield url


@pytest.fixture(scope="session")
def bot_demos(tmp_path_factory) -> Path:
    """Four BabyAI bot demonstrations of GoToRedBall (a few seconds, made once per session)."""
    from protege.worlds.babyai.demos import DemoConfig, generate_demos
    out = tmp_path_factory.mktemp("demos") / "GoToRedBall"
    generate_demos(DemoConfig("BabyAI-GoToRedBall-v0", 4, out, workers=1, chunk_size=4), progress=False)
    return out


def client(studio: Studio, **app_options):
    """An in-process client of a fresh app over the studio's database (use as a context manager)."""
    from fastapi.testclient import TestClient

    from protege.systems.feedback.app import create_app
    return TestClient(create_app(studio.db, studio.media, **app_options), follow_redirects=False)


def import_demos(studio: Studio, folder: Path, limit: int | None = None, overlap: int | None = None) -> list[str]:
    """Import demonstrations into the studio's database; the stored episode ids."""
    from protege.systems.feedback import assign, episodes
    from protege.systems.feedback.db import open_db
    engine, sessions = open_db(studio.db)
    episodes.import_demos(sessions, folder, limit)
    if overlap is not None:
        assign.set_overlap(sessions, overlap)
    ids = episodes.episode_ids(sessions)
    engine.dispose()
    return ids
