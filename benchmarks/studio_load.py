"""Benchmark: the studio under load and faults. N simulated annotators (default 20) log in and PUT
marks over HTTP to `protege studio serve` (uvicorn on 127.0.0.1, a free port), per database:

  1. steady   `--seconds` of load, no faults: `marks_per_s` (acknowledged mark writes, a new mark or
              an undo, per wall second) and `p50_ms`/`p99_ms` (latency of each acknowledged PUT).
  2. faults   `--fault-seconds` more, where each request is cut with probability `--drop` (half of
              them after part of the request was sent, half after all of it was sent and before the
              answer was read: the server may have committed, the client cannot know; the socket is
              closed with a TCP reset), and the server is SIGKILLed `--kills` times mid-way and
              restarted on the same database. Every annotator retries a mark with the same UUID until
              it gets 200 with `acked: true`; 10% of the acknowledged marks are undone (same
              UUID, `deleted: true`; the server keeps an undone mark undone, so a stale retry of
              the original still in flight cannot revive it).
  3. check    the server stopped, the database is read directly and through `protege studio
              export`: every acknowledged mark must be there exactly once, as last acknowledged.
              `marks_lost`: acknowledged marks missing or different (a live mark absent from the
              export, an undone one still in it); `duplicates`: rows of one logical mark beyond the
              first (by uuid in the export, by the mark's unique comment in the database).

    PYTHONPATH=src .venv/bin/python benchmarks/studio_load.py [--annotators 20] [--seconds 20]
        [--fault-seconds 10] [--db sqlite] [--db postgresql | --db postgresql://...]

By default SQLite, and PostgreSQL too when PROTEGE_TEST_POSTGRES_URL is set (`.ci/run` sets it; the
benchmark makes a database of its own on that server and drops it afterwards). The client is a
minimal HTTP/1.1 client over asyncio streams, one keep-alive connection per annotator, all in this
process: it costs a fraction of httpx's CPU per request (on 2 cores the server, not the load
generator, should get the CPU) and it can cut a connection at an exact point of a request.
`--keep DIR` runs in DIR and keeps the database, server log, export and `acked.jsonl` (the
acknowledged marks, which the durability test checks on its own). The last line printed is one JSON
object: per database (`sqlite`, `postgresql`) the counts and rates above, then where it ran
(`protege.core.precision.machine_info`: CPU model, thread count, load average).
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

KINDS = ("progress", "regress", "success", "failure")
PASSWORD = "load-test-password-1"
ROOT = Path(__file__).resolve().parents[1]
PG_ENV = "PROTEGE_TEST_POSTGRES_URL"


class Dropped(Exception):
    """This client cut the connection on purpose."""


# ---------------------------------------------------------------------------------------------
# the client: one keep-alive HTTP/1.1 connection per annotator


class Conn:
    def __init__(self, port: int):
        self.port, self.reader, self.writer = port, None, None

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0): what a dropped network or a killed browser leaves."""
        if self.writer is not None:
            with contextlib.suppress(OSError):
                sock = self.writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict, body: bytes = b"",
                      cut: str | None = None) -> tuple[int, dict, bytes]:
        """(status, lower-cased headers, body). `cut`: "partial" sends part of the request then
        resets; "unread" sends all of it and resets before reading the answer."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
        data = head.encode() + body
        if cut == "partial":
            self.writer.write(data[:random.randrange(1, len(data))])
            await self.writer.drain()
            self.reset()
            raise Dropped
        self.writer.write(data)
        await self.writer.drain()
        if cut == "unread":
            await asyncio.sleep(random.uniform(0, 0.005))  # sometimes before, sometimes after commit
            self.reset()
            raise Dropped
        status = int((await self.reader.readline()).split()[1])
        reply_headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            reply_headers.setdefault(key.strip().lower(), []).append(value.strip())
        if "chunked" in reply_headers.get("transfer-encoding", [""])[0]:
            reply = b""
            while (size := int((await self.reader.readline()).strip(), 16)) > 0:
                reply += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readline()
        else:
            reply = await self.reader.readexactly(int(reply_headers.get("content-length", ["0"])[0]))
        if reply_headers.get("connection", [""])[0].lower() == "close":
            self.reset()
        return status, reply_headers, reply


class Annotator:
    """A simulated person: a login session, assigned episodes, and the marks the server acknowledged
    (uuid -> the mark as last acknowledged)."""

    def __init__(self, name: str, port: int, seed: int):
        self.name, self.conn, self.rng = name, Conn(port), random.Random(seed)
        self.cookie, self.csrf, self.episodes, self.count = "", "", [], 0
        self.acked: dict[str, dict] = {}

    async def call(self, method, path, payload=None, cut=None, timeout=10.0):
        headers = {"Content-Type": "application/json", "Cookie": self.cookie, "X-CSRF-Token": self.csrf}
        body = b"" if payload is None else json.dumps(payload).encode()
        try:
            return await asyncio.wait_for(self.conn.request(method, path, headers, body, cut), timeout)
        except BaseException:
            self.conn.reset()  # never reuse a connection in an unknown state
            raise

    async def start(self, deadline: float) -> None:
        """Log in and collect the assigned episodes, retrying until `deadline`."""
        while True:
            try:
                status, headers, body = await self.call(
                    "POST", "/login", {"username": self.name, "password": PASSWORD})
                if status != 200:
                    raise RuntimeError(f"login {self.name}: HTTP {status} {body[:200]!r}")
                self.csrf = json.loads(body)["csrf_token"]
                self.cookie = "; ".join(c.split(";")[0] for c in headers.get("set-cookie", []))
                status, _, body = await self.call("GET", "/api/assignments")
                if status != 200:
                    raise RuntimeError(f"assignments of {self.name}: HTTP {status} {body[:200]!r}")
                self.episodes = [(a["episode_id"], a["length"]) for a in json.loads(body)]
                assert self.episodes, f"{self.name} has no assignment"
                return
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def put(self, mark: dict, stats: "Stats", drop: float, hard_deadline: float) -> int | None:
        """PUT `mark` until acknowledged; the number of attempts, or None when `hard_deadline` passed
        first (the mark may or may not be stored: not acknowledged, so not counted)."""
        payload = {k: mark[k] for k in ("episode_id", "step", "kind", "comment", "deleted")}
        for attempt in range(1, 10**6):
            if time.monotonic() > hard_deadline:
                stats.gave_up += 1
                return None
            cut = None
            if drop and self.rng.random() < drop:
                cut = self.rng.choice(("partial", "unread"))
            start = time.monotonic()
            try:
                status, _, body = await self.call("PUT", f"/api/marks/{mark['uuid']}", payload, cut)
            except Dropped:
                stats.drops += 1
                continue
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                stats.errors += 1  # refused while the server restarts, reset, timed out
                await asyncio.sleep(0.02 + 0.03 * self.rng.random())
                continue
            if status == 200 and json.loads(body).get("acked") is True:
                stats.acks.append((time.monotonic(), time.monotonic() - start))
                self.acked[mark["uuid"]] = dict(mark)
                return attempt
            if status in (429,) or status >= 500:
                stats.errors += 1
                await asyncio.sleep(0.02 + 0.03 * self.rng.random())
                continue
            stats.rejected.append(f"{self.name} PUT {mark['uuid']}: HTTP {status} {body[:200]!r}")
            return None  # a refusal: retrying the same request cannot help
        return None

    async def work(self, until: float, stats: "Stats", drop_at, grace: float) -> None:
        """Mark until `until` (monotonic); `drop_at(t)` is the drop probability at time t; a mark
        not acknowledged `grace` seconds after `until` is given up (counted in `gave_up`)."""
        while (now := time.monotonic()) < until:
            episode, length = self.rng.choice(self.episodes)
            self.count += 1
            mark = {"uuid": str(uuid.uuid4()), "episode_id": episode, "user": self.name,
                    "step": self.rng.randrange(length), "kind": self.rng.choice(KINDS),
                    "comment": f"load:{self.name}:{self.count}", "deleted": False}
            attempts = await self.put(mark, stats, drop_at(now), until + grace)
            if attempts and self.rng.random() < 0.1:  # undo (even with a stale retry in flight)
                await self.put({**mark, "deleted": True}, stats, drop_at(time.monotonic()), until + grace)


class Stats:
    def __init__(self):
        self.acks: list[tuple[float, float]] = []  # (when, latency s) of each acknowledged PUT
        self.drops = self.errors = self.gave_up = 0
        self.rejected: list[str] = []


def latency_summary(acks, start: float, end: float) -> dict:
    lat = sorted(latency for when, latency in acks if start <= when < end)
    if not lat:
        return {"puts_acked": 0, "marks_per_s": 0.0, "p50_ms": None, "p99_ms": None}
    pick = lambda q: round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2)
    return {"puts_acked": len(lat), "marks_per_s": round(len(lat) / (end - start), 1),
            "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(1000 * lat[-1], 2)}


# ---------------------------------------------------------------------------------------------
# the server and the database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def protege(*args) -> list[str]:
    return [sys.executable, "-m", "protege", *map(str, args)]


def protege_env() -> dict:
    src = str(ROOT / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


class Server:
    """`protege studio serve` in a child process, restartable on the same database and port."""

    def __init__(self, db: str, work: Path):
        self.db, self.work, self.port, self.proc = db, work, free_port(), None
        self.log = open(work / "server.log", "ab")  # noqa: SIM115 (open for the server's life)

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until it answers; the seconds that took."""
        start = time.monotonic()
        self.proc = subprocess.Popen(
            protege("studio", "serve", "--db", self.db, "--host", "127.0.0.1", "--port", self.port,
                    "--media", self.work / "media"),
            cwd=self.work, env=protege_env(), stdout=self.log, stderr=subprocess.STDOUT)
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}; see {self.work / 'server.log'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    return time.monotonic() - start
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not answer within {timeout} s; see {self.work / 'server.log'}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def setup_database(db: str, names: list[str], episodes: int) -> None:
    """Migrate `db`, add the annotators, `episodes` synthetic BabyAI episodes (marks need no frames)
    and assign every episode to every annotator. In-process: 20 `add-user` commands would take
    longer than the load itself."""
    import hashlib

    from protege.systems.feedback import auth
    from protege.systems.feedback.db import Assignment, EpisodeRow, User, open_db
    engine, sessions = open_db(db)
    password_hash = auth.hash_password(PASSWORD)  # one argon2 hash serves every annotator
    now = time.time()
    with sessions() as s, s.begin():
        users = [User(name=n, role="annotator", password_hash=password_hash) for n in names]
        rows = []
        for i in range(episodes):
            actions = [random.Random(i).randrange(3) for _ in range(40)]
            identity = json.dumps(["BabyAI-GoToRedBallGrey-v0", i, actions]).encode()
            rows.append(EpisodeRow(
                id=hashlib.sha256(identity).hexdigest(), level="BabyAI-GoToRedBallGrey-v0", seed=i,
                mission="go to the red ball", actions=actions, rewards=[0.0] * 40, terminated=False,
                truncated=True, source="studio_load", length=40))
        s.add_all(users + rows)
        s.flush()
        s.add_all(Assignment(episode_id=e.id, user_id=u.id, leased_at=now, lease_expires=now + 86400,
                             done=False) for u in users for e in rows)
    engine.dispose()


@contextlib.contextmanager
def database(kind: str, work: Path, keep: bool):
    """The database to test: a fresh SQLite file in `work`, or a fresh PostgreSQL database on the
    server of PROTEGE_TEST_POSTGRES_URL (or the given postgresql:// URL, used as it is)."""
    if kind == "sqlite":
        yield str(work / "studio.db")
        return
    if kind.startswith(("postgresql://", "postgresql+psycopg://")):
        yield kind
        return
    base = os.environ.get(PG_ENV)
    if not base:
        raise SystemExit(f"--db postgresql needs {PG_ENV} (a server whose role may CREATE DATABASE)")
    import psycopg
    name = f"protege_load_{uuid.uuid4().hex[:10]}"
    tail = base.partition("://")[2]
    url = f"postgresql://{tail.partition('/')[0]}/{name}"
    with psycopg.connect("postgresql://" + tail, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        if not keep:
            with psycopg.connect("postgresql://" + tail, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------------------------
# load, faults, check


async def load(server: Server, annotators: list[Annotator], args) -> dict:
    """Log everyone in, run the steady phase then the fault phase; latency and fault counts."""
    stats = Stats()
    await asyncio.gather(*(a.start(time.monotonic() + 60) for a in annotators))
    steady_start = time.monotonic()
    steady_end = steady_start + args.seconds
    cpu_start = (server.cpu_seconds(), time.process_time())

    async def steady_cpu():  # CPU seconds of the server and of this client in the steady phase
        await asyncio.sleep(max(0.0, steady_end - time.monotonic()))
        return server.cpu_seconds() - cpu_start[0], time.process_time() - cpu_start[1]
    end = steady_end + args.fault_seconds
    kill_times = [steady_end + args.fault_seconds * (k + 1) / (args.kills + 1)
                  for k in range(args.kills if args.fault_seconds > 0 else 0)]
    restarts, restarted = [], float("inf")

    async def killer():
        for when in kill_times:
            await asyncio.sleep(max(0.0, when - time.monotonic()))
            server.kill()  # mid-load: requests in flight, transactions open
            restarts.append(await asyncio.to_thread(server.start))
            nonlocal restarted
            restarted = time.monotonic()

    drop_at = lambda t: args.drop if steady_end <= t < end else 0.0
    cpu, *_ = await asyncio.gather(steady_cpu(), killer(),
                                   *(a.work(end, stats, drop_at, args.grace) for a in annotators))
    done = time.monotonic()
    for a in annotators:
        a.conn.reset()
    faults = latency_summary(stats.acks, steady_end, done)
    steady = latency_summary(stats.acks, steady_start, steady_end)
    per_put = lambda seconds: round(1000 * seconds / max(1, steady["puts_acked"]), 3)
    return {**steady, "server_cpu_ms_per_put": per_put(cpu[0]), "client_cpu_ms_per_put": per_put(cpu[1]),
            "fault_phase": {"marks_per_s": faults["marks_per_s"], "p99_ms": faults["p99_ms"],
                            "max_ms": faults.get("max_ms"), "drops": stats.drops,
                            "errors": stats.errors, "kills": len(restarts),
                            "restart_s": [round(r, 2) for r in restarts],
                            "puts_acked_after_restart": sum(when > restarted for when, _ in stats.acks)},
            "rejected": len(stats.rejected), "rejected_examples": stats.rejected[:3],
            "gave_up": stats.gave_up}


def read_database(db: str) -> list[dict]:
    """Every mark row, with its user's name, read straight from the database."""
    from sqlalchemy import text

    from protege.systems.feedback.db import make_engine
    engine = make_engine(db)
    with engine.connect() as c:
        rows = c.execute(text("SELECT m.uuid, u.name AS user, m.episode_id, m.step, m.kind, m.comment, "
                              "m.deleted FROM marks m JOIN users u ON u.id = m.user_id")).mappings().all()
    engine.dispose()
    return [dict(r) for r in rows]


def read_export(db: str, out: Path) -> list[dict]:
    """The rows of `protege studio export`'s marks.jsonl (the live marks)."""
    subprocess.run(protege("studio", "export", "--db", db, "--out", out), env=protege_env(),
                   check=True, capture_output=True, timeout=300)
    lines = (out / "marks.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["format"] == "protege.feedback.marks", lines[0]
    return [json.loads(line) for line in lines[1:] if line.strip()]


def problems(acked: dict[str, dict], rows: list[dict], exported: list[dict]) -> dict:
    """Lost and duplicated acknowledged marks (see the module docstring)."""
    from collections import Counter
    key = ("user", "episode_id", "step", "kind", "comment", "deleted")
    in_db = {r["uuid"]: {**r, "deleted": bool(r["deleted"])} for r in rows}
    in_export = Counter(e["uuid"] for e in exported)
    exported_by_uuid = {e["uuid"]: e for e in exported}
    lost = set()
    for u, mark in acked.items():
        row = in_db.get(u)
        if row is None or any(row[k] != mark[k] for k in key):
            lost.add(u)
        if in_export[u] != (0 if mark["deleted"] else 1) and in_export[u] < 2:
            lost.add(u)  # a live mark missing from the export, or an undone one still in it
        if u in exported_by_uuid and not mark["deleted"]:
            e = exported_by_uuid[u]
            if (e["user"], e["episode"], e["step"], e["kind"], e["comment"]) != tuple(
                    mark[k] for k in ("user", "episode_id", "step", "kind", "comment")):
                lost.add(u)
    dup_db = sum(n - 1 for n in Counter(r["comment"] for r in rows).values() if n > 1)
    dup_export = sum(n - 1 for n in in_export.values() if n > 1)
    dup_export += sum(n - 1 for n in Counter(e["comment"] for e in exported).values() if n > 1)
    return {"marks_lost": len(lost), "duplicates": dup_db + dup_export,
            "lost_examples": sorted(lost)[:3],
            "unacked_stored": len(set(in_db) - set(acked))}  # sent, never acknowledged: allowed


def run_database(kind: str, work: Path, args) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    with database(kind, work, keep=args.keep is not None) as db:
        names = [f"annotator{i:02d}" for i in range(args.annotators)]
        setup_database(db, names, args.episodes)
        server = Server(db, work)
        try:
            server.start()
            annotators = [Annotator(n, server.port, args.seed * 1000 + i) for i, n in enumerate(names)]
            result = asyncio.run(load(server, annotators, args))
        finally:
            server.stop()
        acked = {u: m for a in annotators for u, m in a.acked.items()}
        with open(work / "acked.jsonl", "w") as f:
            f.writelines(json.dumps(m) + "\n" for m in acked.values())
        found = problems(acked, read_database(db), read_export(db, work / "export"))
    return {"marks_acked": len(acked), "marks_undone": sum(m["deleted"] for m in acked.values()),
            **found, **result}


def combine(runs: list[dict]) -> dict:
    """One run as it is; several: totals of the counts (lost and duplicated must be 0 in every
    run), medians of the rates with their [min, max], and every run under `runs`."""
    if len(runs) == 1:
        return runs[0]
    import statistics
    rate_keys = ("marks_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_put")
    out = {k: sum(r[k] for r in runs) for k in ("marks_acked", "marks_lost", "duplicates", "gave_up", "rejected")}
    for k in rate_keys:
        values = [r[k] for r in runs if r[k] is not None]
        out[k] = round(statistics.median(values), 2) if values else None
        out[f"{k}_range"] = [min(values), max(values)] if values else None
    return {**out, "runs": runs}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--annotators", type=int, default=20)
    p.add_argument("--seconds", type=float, default=20.0, help="steady phase (no faults)")
    p.add_argument("--fault-seconds", type=float, default=10.0, help="fault phase")
    p.add_argument("--drop", type=float, default=0.05, help="fraction of requests cut in the fault phase")
    p.add_argument("--kills", type=int, default=1, help="SIGKILL + restart of the server in the fault phase")
    p.add_argument("--grace", type=float, default=30.0,
                   help="seconds after the load ends to get the marks in flight acknowledged")
    p.add_argument("--episodes", type=int, default=5, help="episodes, each assigned to every annotator")
    p.add_argument("--db", action="append", help="sqlite, postgresql (a fresh database on the server of "
                   f"{PG_ENV}) or a postgresql:// URL of an empty database; repeatable")
    p.add_argument("--keep", type=Path, help="work in this folder and keep what was written")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="whole runs per database (fresh database each)")
    args = p.parse_args(argv)
    random.seed(args.seed)
    kinds = args.db or (["sqlite"] + (["postgresql"] if os.environ.get(PG_ENV) else []))
    if args.repeats > 1 and any("://" in k for k in kinds):
        raise SystemExit("--repeats > 1 needs --db sqlite or postgresql (a fresh database per repeat)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="studio_load_") as tmp:
        base = args.keep or Path(tmp)
        for kind in kinds:
            name = "sqlite" if kind == "sqlite" else "postgresql"
            runs = []
            for r in range(args.repeats):
                load_avg = os.getloadavg()[0]
                result = run_database(kind, base / (name if r == 0 else f"{name}-{r + 1}"), args)
                runs.append({**result, "load_avg_1m": round(load_avg, 2)})
                print(f"{name} run {r + 1}: {result['marks_acked']} marks acknowledged, "
                      f"{result['marks_lost']} lost, {result['duplicates']} duplicated; steady "
                      f"{result['marks_per_s']} marks/s, p99 {result['p99_ms']} ms", flush=True)
            results[name] = combine(runs)
    # imported after the load: it brings torch
    from protege.core.precision import machine_info
    summary = {**results, "annotators": args.annotators, "seconds": args.seconds,
               "fault_seconds": args.fault_seconds, "drop": args.drop, "repeats": args.repeats,
               "cpus_usable": len(os.sched_getaffinity(0)), **machine_info()}  # CPU model, threads, load
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
