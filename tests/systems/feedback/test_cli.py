"""`protege studio` commands: the path a person takes (add users, token, import, assign, export,
serve), and bad input answered in one line with exit status 2, leaving nothing behind."""

import io
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from protege.cli.main import main
from tests.conftest import protege_cmd, protege_env


def _run(argv, capsys, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    main(argv)
    return capsys.readouterr().out


def _fails(argv, capsys, stdin: str | None = None, monkeypatch=None) -> str:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
    return err


def _babyai_run(folder):
    """A (random) BabyAI policy saved as a run, as `protege run babyai_bc` leaves one."""
    from protege.core.runs import Run
    from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
    run = Run(folder, {"experiment": "babyai_offline", "name": folder.name, "level": "BabyAI-GoToRedBall-v0",
                       "policy": {"dim": 16, "n_film": 1}})
    run.save_checkpoint(1, BabyAIPolicy(PolicyConfig(dim=16, n_film=1)).state_dict(), {})
    run.close()


def test_a_session_from_the_command_line(tmp_path, bot_demos, capsys, monkeypatch):
    db = str(tmp_path / "s.db")
    _run(["studio", "add-user", "ada", "--role", "admin", "--db", db, "--password-stdin"], capsys,
         "long enough password\n", monkeypatch)
    _run(["studio", "add-user", "ann", "--role", "annotator", "--db", db, "--password-stdin"], capsys,
         "another password\n", monkeypatch)
    token = _run(["studio", "token", "ada", "--db", db], capsys).strip()
    assert token.startswith("pst_") and len(token) > 40
    out = _run(["studio", "import", "--db", db, "--demos", str(bot_demos), "--episodes", "3", "--overlap", "2"], capsys)
    assert "3" in out
    _run(["studio", "import", "--db", db, "--demos", str(bot_demos)], capsys)  # one new, three known
    _babyai_run(tmp_path / "run")
    _run(["studio", "import", "--db", db, "--run", str(tmp_path / "run"), "--episodes", "2"], capsys)
    _run(["studio", "assign", "ann", "--count", "10", "--db", db], capsys)
    from sqlalchemy import select

    from protege.systems.feedback.db import Assignment, EpisodeRow, open_db
    engine, sessions = open_db(db)
    with sessions() as s:
        episodes = s.scalars(select(EpisodeRow)).all()
        assert len(episodes) == 6  # 4 demonstrations + 2 held-out rollouts, each stored once
        rollouts = [e for e in episodes if e.source.startswith("run:")]
        assert sorted(e.seed for e in rollouts) == [10**9, 10**9 + 1]
        assert all(e.length == len(e.actions) == len(e.rewards) for e in episodes)
        assert len(s.scalars(select(Assignment)).all()) == 6
    engine.dispose()
    _run(["studio", "export", "--db", db, "--out", str(tmp_path / "export")], capsys)
    header = json.loads((tmp_path / "export" / "marks.jsonl").read_text().splitlines()[0])
    assert header == {"format": "protege.feedback.marks", "version": 1}
    err = _fails(["studio", "add-user", "ann", "--role", "annotator", "--db", db, "--password-stdin"],
                 capsys, "password long\n", monkeypatch)
    assert "already exists" in err
    err = _fails(["studio", "add-user", "eve", "--role", "annotator", "--db", db, "--password-stdin"],
                 capsys, "short\n", monkeypatch)
    assert "at least 8" in err
    assert "no user 'nobody'" in _fails(["studio", "token", "nobody", "--db", db], capsys)
    assert "no user" in _fails(["studio", "assign", "nobody", "--db", db], capsys)


def test_bad_databases_are_one_line_and_create_nothing(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a database")
    cases = {("token", "x", "--db", str(tmp_path / "none.db")): "no studio database",
             ("token", "x", "--db", str(tmp_path / "notes.txt")): "not a database",
             ("token", "x", "--db", str(tmp_path)): "folder",
             ("import", "--db", str(tmp_path / "a" / "b.db"), "--demos", "x"): "does not exist",
             ("export", "--db", "mysql://u@h/d", "--out", "x"): "unsupported database",
             ("export", "--db", "postgresql://nobody:pw@127.0.0.1:1/none", "--out", str(tmp_path / "e")): "database",
             ("import", "--db", str(tmp_path / "new.db"), "--demos", str(tmp_path)): "manifest"}
    for argv, message in cases.items():
        assert message in _fails(["studio", *argv], capsys), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "not a database"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_binds_loopback_and_serves_the_login_page(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(protege_cmd("studio", "serve", "--db", tmp_path / "s.db", "--port", port),
                            cwd=tmp_path, env=protege_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    status, csp = r.status, r.headers["Content-Security-Policy"]
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200 and "script-src 'self'" in csp
        assert (tmp_path / "s-media" / "frames").is_dir()
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert listening == "" or "127.0.0.1:" in listening  # loopback only (ss may be missing)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_database_urls():
    from protege.core.errors import UserError
    from protege.systems.feedback.db import database_url
    assert database_url("postgresql://u:p@h:5/d") == "postgresql+psycopg://u:p@h:5/d"
    assert database_url("postgres://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert database_url("postgresql+psycopg://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert database_url("studio.db").startswith("sqlite:////") and database_url("studio.db").endswith("/studio.db")
    for bad in ("mysql://u@h/d", "oracle://x"):
        with pytest.raises(UserError, match="unsupported database"):
            database_url(bad)
