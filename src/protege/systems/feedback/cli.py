"""`protege studio`: serve the web app, manage people, import episodes, export what people made."""

import re
import sys
from pathlib import Path

import typer

from protege.core.cli import app, console, print_summary
from protege.core.errors import UserError

studio_app = typer.Typer(help="The studio: people demonstrate, watch episodes and mark progress, "
                              "regress and success.", no_args_is_help=True)
app.add_typer(studio_app, name="studio")

DB_HELP = "SQLite file (created if missing) or postgresql://user:password@host/dbname"
NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_PASSWORD = 8


def _open(db: str, must_exist: bool = False):
    from protege.systems.feedback.db import open_db
    return open_db(db, must_exist)[1]


def _check(db: str, must_exist: bool = False) -> None:
    """Refuse a bad --db before any work (nothing is created)."""
    from protege.systems.feedback.db import check_db
    check_db(db, must_exist)


def default_media(db: str) -> Path:
    """Frames go beside a SQLite file (`studio.db` -> `studio-media/`), else `./studio-media`."""
    return Path(db).with_name(Path(db).stem + "-media") if "://" not in db else Path("studio-media")


def _user(sessions, name: str):
    from sqlalchemy import select

    from protege.systems.feedback.db import User
    with sessions() as db:
        user = db.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserError(f"no user {name!r} (add one with `protege studio add-user {name} --role annotator`)")
    return user


@studio_app.command("serve")
def serve(db: str = typer.Option("studio.db", help=DB_HELP),
          host: str = typer.Option("127.0.0.1", help="address to bind (behind a reverse proxy keep loopback)"),
          port: int = typer.Option(8765, help="TCP port"),
          media: Path = typer.Option(None, help="folder of rendered frames (default: beside the SQLite file)"),
          secure_cookies: bool = typer.Option(False, help="mark the session cookie Secure (serving over TLS)"),
          forwarded_allow_ips: str = typer.Option("127.0.0.1", help="proxies whose X-Forwarded-* headers are trusted")) -> None:
    """Serve the studio (one process; SQLite in WAL mode with synchronous=FULL, or PostgreSQL)."""
    import uvicorn

    from protege.systems.feedback.app import create_app
    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    _check(db)
    web = create_app(db, media or default_media(db), secure_cookies=secure_cookies)
    if host not in ("127.0.0.1", "localhost", "::1") and not secure_cookies:
        console.print(f"warning: serving on {host} without --secure-cookies; put it behind a TLS proxy "
                      f"(see docs/studio.md)", style="yellow")
    console.print(f"studio at http://{host}:{port} (Ctrl-C stops)")
    uvicorn.run(web, host=host, port=port, log_level="warning", proxy_headers=True,
                forwarded_allow_ips=forwarded_allow_ips, timeout_graceful_shutdown=5)


@studio_app.command("add-user")
def add_user(name: str = typer.Argument(..., help="login name (letters, digits, _.@-)"),
             role: str = typer.Option(..., help="admin | annotator"),
             db: str = typer.Option("studio.db", help=DB_HELP),
             password_stdin: bool = typer.Option(False, help="read the password from the first line of stdin")) -> None:
    """Add a person (there is no sign-up page: an admin adds everyone)."""
    from sqlalchemy import select

    from protege.systems.feedback.auth import hash_password
    from protege.systems.feedback.db import ROLES, User
    if role not in ROLES:
        raise UserError(f"--role {role!r}: valid roles are {', '.join(ROLES)}")
    if not NAME.fullmatch(name):
        raise UserError(f"user name {name!r}: 1-64 letters, digits or _.@- characters")
    _check(db)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    sessions = _open(db)
    with sessions() as s:
        if s.scalar(select(User.id).where(User.name == name)) is not None:
            raise UserError(f"user {name!r} already exists in {db}")
        s.add(User(name=name, role=role, password_hash=hash_password(password)))
        s.commit()
    console.print(f"added {role} {name}")


@studio_app.command("token")
def token(name: str = typer.Argument(..., help="the user the token acts as"),
          db: str = typer.Option("studio.db", help=DB_HELP)) -> None:
    """Print a new API token for scripts (`Authorization: Bearer TOKEN`); it is shown once."""
    from protege.systems.feedback.auth import create_api_token
    sessions = _open(db, must_exist=True)
    user = _user(sessions, name)
    with sessions() as s:
        value = create_api_token(s, user)
        s.commit()
    print(value)


@studio_app.command("import")
def import_(db: str = typer.Option("studio.db", help=DB_HELP),
            demos: Path = typer.Option(None, help="a BabyAI demonstrations folder (`protege data demos`)"),
            run: Path = typer.Option(None, help="a trained BabyAI run: its policy plays --episodes held-out episodes"),
            episodes: int = typer.Option(None, help="with --run: episodes to play; with --demos: the first N"),
            seed_start: int = typer.Option(None, help="with --run: first seed (default 10^9, held out)"),
            overlap: int = typer.Option(None, help="annotators who mark each episode (k)"),
            media: Path = typer.Option(None, help="folder of rendered frames (default: beside the SQLite file)")) -> None:
    """Import episodes to watch and mark (stored by content hash: importing twice adds nothing)."""
    from protege.systems.feedback import assign
    from protege.systems.feedback import episodes as eps
    if (demos is None) == (run is None):
        raise UserError("give exactly one source: --demos DIR or --run RUN --episodes N")
    if run is not None and episodes is None:
        raise UserError("--run needs --episodes N (how many episodes its policy plays)")
    if episodes is not None and episodes <= 0:
        raise UserError(f"--episodes must be positive, got {episodes}")
    if overlap is not None and overlap < 1:
        raise UserError(f"--overlap must be >= 1 (annotators per episode), got {overlap}")
    if seed_start is not None and seed_start < 0:
        raise UserError(f"--seed-start must be >= 0, got {seed_start}")
    _check(db)
    # read (or play) the episodes first: a bad source leaves no database behind
    rows = eps.demo_rows(demos, episodes) if demos is not None else eps.run_rows(run, episodes, seed_start)
    sessions = _open(db)
    added, known = eps.add_episodes(sessions, rows)
    if overlap is not None:
        assign.set_overlap(sessions, overlap)
    with sessions() as s:
        k = assign.overlap(s)
    print_summary(f"imported into {db}", [{"added": added, "already stored": known, "overlap k": k}])


@studio_app.command("assign")
def assign_(name: str = typer.Argument(..., help="the annotator"),
            count: int = typer.Option(1, help="episodes to lease to them now"),
            db: str = typer.Option("studio.db", help=DB_HELP),
            lease_minutes: float = typer.Option(30.0, help="lease length")) -> None:
    """Lease episodes to a person ahead of time (people also get work with the `n` key)."""
    from protege.systems.feedback.assign import assign_to
    if lease_minutes <= 0:
        raise UserError(f"--lease-minutes must be positive, got {lease_minutes}")
    sessions = _open(db, must_exist=True)
    leased = assign_to(sessions, name, count, lease_minutes * 60)
    print_summary(f"assigned in {db}", [{"user": name, "leased": leased, "asked": count}])


@studio_app.command("export")
def export(db: str = typer.Option("studio.db", help=DB_HELP),
           out: Path = typer.Option(None, help="folder for marks.jsonl, annotators.jsonl, episodes.jsonl"),
           demos: Path = typer.Option(None, help="folder for people's successful plays as BabyAI demonstrations"),
           level: str = typer.Option(None, help="with --demos: the level to export (needed when plays span several)")) -> None:
    """Export marks, labels and annotated episodes (--out) and/or people's demonstrations (--demos)."""
    from protege.systems.feedback import export as ex
    if out is None and demos is None:
        raise UserError("give --out DIR (marks and annotated episodes) and/or --demos DIR (plays)")
    if out is not None:
        from protege.data.manifest import check_output_folder
        check_output_folder(out, ex.KIND)
    if demos is not None:
        ex.check_demos_folder(demos)
    sessions = _open(db, must_exist=True)
    rows = []
    if out is not None:
        rows.append({"output": str(out), **ex.export_marks(sessions, out)})
    if demos is not None:
        rows.append({"output": str(demos), **ex.export_demos(sessions, demos, level)})
    print_summary(f"exported from {db}", rows)


from protege.systems.feedback.simulate_cli import simulate_  # noqa: E402

studio_app.command("simulate")(simulate_)
