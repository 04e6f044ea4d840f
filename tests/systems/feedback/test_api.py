"""The studio's HTTP API in-process: marks are idempotent by uuid and undoable, annotators see only
their own work, leases expire, k annotators per episode, plays retry safely, tokens, rate limit."""

import time
import uuid

from sqlalchemy import func, select

from tests.systems.feedback.conftest import PASSWORD, client, import_demos, login
from tests.systems.feedback.pg import postgres_url  # noqa: F401  (fixture)


def _count_marks(db: str) -> int:
    from protege.systems.feedback.db import Mark, open_db
    engine, sessions = open_db(db)
    with sessions() as s:
        n = s.scalar(select(func.count()).select_from(Mark))
    engine.dispose()
    return n


def test_mark_retry_never_duplicates_and_undo_is_sticky(studio, bot_demos):
    import_demos(studio, bot_demos, limit=1)
    with client(studio) as c:
        h = {"X-CSRF-Token": login(c, "ann")}
        a = c.post("/api/assignments/next", headers=h).json()
        episode = c.get(f"/api/episodes/{a['episode_id']}").json()
        assert len(episode["frames"]) == episode["length"] + 1 == a["length"] + 1
        png = c.get(episode["frames"][-1])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG")
        key = str(uuid.uuid4())
        body = {"episode_id": a["episode_id"], "step": 2, "kind": "progress", "comment": "turns"}
        for _ in range(3):  # a retried PUT (the answer was lost) updates the same row
            r = c.put(f"/api/marks/{key}", json=body, headers=h)
            assert r.status_code == 200 and r.json() == {"uuid": key, "acked": True, "deleted": False}
        assert _count_marks(studio.db) == 1
        c.put(f"/api/marks/{key}", json={**body, "step": 3}, headers=h)
        assert [m["step"] for m in c.get(f"/api/episodes/{a['episode_id']}").json()["marks"]] == [3]
        assert c.put(f"/api/marks/{key}", json={**body, "deleted": True}, headers=h).json()["deleted"] is True
        assert c.get(f"/api/episodes/{a['episode_id']}").json()["marks"] == []
        # a late retry of the original PUT is acknowledged but does not revive the undone mark
        late = c.put(f"/api/marks/{key}", json=body, headers=h)
        assert late.status_code == 200 and late.json()["deleted"] is True
        assert c.get(f"/api/episodes/{a['episode_id']}").json()["marks"] == []
        assert _count_marks(studio.db) == 1
        bad = [("not-a-uuid", body), (key.upper().replace("-", ""), body),
               (str(uuid.uuid4()), {**body, "kind": "maybe"}),
               (str(uuid.uuid4()), {**body, "step": a["length"] + 1}),
               (str(uuid.uuid4()), {**body, "step": -1}),
               (str(uuid.uuid4()), {**body, "comment": "x" * 1001})]
        for mark_id, payload in bad:
            assert c.put(f"/api/marks/{mark_id}", json=payload, headers=h).status_code == 422, (mark_id, payload)


def test_annotators_see_only_their_own_work(studio, bot_demos):
    import_demos(studio, bot_demos, limit=2)
    with client(studio) as ann, client(studio) as bob:
        ha, hb = {"X-CSRF-Token": login(ann, "ann")}, {"X-CSRF-Token": login(bob, "bob")}
        a = ann.post("/api/assignments/next", headers=ha).json()
        b = bob.post("/api/assignments/next", headers=hb).json()
        assert a["episode_id"] != b["episode_id"]  # overlap k = 1
        assert [x["id"] for x in bob.get("/api/assignments").json()] == [b["id"]]
        assert bob.get(f"/api/episodes/{a['episode_id']}").status_code == 403
        mark = {"episode_id": a["episode_id"], "step": 1, "kind": "regress"}
        assert bob.put(f"/api/marks/{uuid.uuid4()}", json=mark, headers=hb).status_code == 403
        assert bob.post(f"/api/assignments/{a['id']}/done", headers=hb).status_code == 404
        key = str(uuid.uuid4())
        assert ann.put(f"/api/marks/{key}", json=mark, headers=ha).status_code == 200
        # bob reusing ann's mark id, even on his own episode: refused, ann's mark unchanged
        theirs = {"episode_id": b["episode_id"], "step": 0, "kind": "success"}
        assert bob.put(f"/api/marks/{key}", json=theirs, headers=hb).status_code == 403
        assert ann.get(f"/api/episodes/{a['episode_id']}").json()["marks"][0]["kind"] == "regress"
        assert bob.get(f"/api/episodes/{b['episode_id']}").json()["marks"] == []
        # ann's own mark id on another episode: a conflict, not a move
        assert ann.put(f"/api/marks/{key}", json={**mark, "episode_id": b["episode_id"]},
                       headers=ha).status_code in (403, 409)
        assert ann.post(f"/api/assignments/{a['id']}/done", headers=ha).json()["done"] is True


def test_lease_expiry_and_overlap(studio, bot_demos):
    ids = import_demos(studio, bot_demos, limit=1)
    with client(studio, lease_seconds=0.5) as ann, client(studio, lease_seconds=0.5) as bob:
        ha, hb = {"X-CSRF-Token": login(ann, "ann")}, {"X-CSRF-Token": login(bob, "bob")}
        first = ann.post("/api/assignments/next", headers=ha).json()
        assert first["episode_id"] == ids[0]
        assert bob.post("/api/assignments/next", headers=hb).status_code == 204  # held by ann, k = 1
        # asking again returns ann's open assignment (lease renewed), not a second one
        assert ann.post("/api/assignments/next", headers=ha).json()["id"] == first["id"]
        time.sleep(0.7)
        assert bob.post("/api/assignments/next", headers=hb).json()["episode_id"] == ids[0]
        # ann may still open the episode she was assigned, and finish it
        assert ann.get(f"/api/episodes/{ids[0]}").status_code == 200
        ann.post(f"/api/assignments/{first['id']}/done", headers=ha)
    import_demos(studio, bot_demos, limit=1, overlap=3)
    with client(studio) as admin:
        h = {"X-CSRF-Token": login(admin, "admin")}
        assert admin.post("/api/assignments/next", headers=h).json()["episode_id"] == ids[0]
        assert admin.post(f"/api/assignments/{admin.get('/api/assignments').json()[0]['id']}/done",
                          headers=h).status_code == 200
        assert admin.post("/api/assignments/next", headers=h).status_code == 204  # seen it already


def test_play_steps_are_idempotent_by_seq(studio, bot_demos):
    from protege.worlds.babyai.demos import read_episodes
    demo = read_episodes(bot_demos)[0]
    with client(studio) as c:
        h = {"X-CSRF-Token": login(c, "ann")}
        start = c.post("/api/play", json={"level": demo.env_id, "seed": demo.seed}, headers=h).json()
        assert start["step"] == 0 and start["mission"] == demo.instruction
        pid = start["play_id"]
        results = []
        for seq, action in enumerate(demo.actions, start=1):
            results.append(c.post(f"/api/play/{pid}/step", json={"action": int(action), "seq": seq}, headers=h).json())
            again = c.post(f"/api/play/{pid}/step", json={"action": int(action), "seq": seq}, headers=h).json()
            assert again == results[-1]  # the recorded answer; the environment did not step twice
        assert results[-1]["terminated"] and results[-1]["status"] == "success"
        assert results[-1]["reward"] > 0 and results[-1]["step"] == len(demo)
        assert c.post(f"/api/play/{pid}/step", json={"action": 2, "seq": len(demo) + 1},
                      headers=h).status_code == 409  # ended
        assert c.post(f"/api/play/{pid}/step", json={"action": 2, "seq": len(demo) + 5},
                      headers=h).status_code == 409  # skips ahead
        assert c.post("/api/play", json={"level": demo.env_id, "seed": 10**9}, headers=h).status_code == 422
        assert c.post("/api/play", json={"level": "BabyAI-Nope-v0"}, headers=h).status_code == 422
    with client(studio) as bob:  # another person cannot step someone's play
        h = {"X-CSRF-Token": login(bob, "bob")}
        assert bob.post(f"/api/play/{pid}/step", json={"action": 2, "seq": 1}, headers=h).status_code == 404


def test_play_survives_a_server_restart(studio):
    """The environment is rebuilt from the database (seed + recorded actions) in a new process."""
    from protege.systems.feedback import play
    with client(studio) as c:
        h = {"X-CSRF-Token": login(c, "ann")}
        pid = c.post("/api/play", json={"level": "BabyAI-GoToRedBall-v0", "seed": 7}, headers=h).json()["play_id"]
        frames = [c.post(f"/api/play/{pid}/step", json={"action": a, "seq": i}, headers=h).json()["frame"]
                  for i, a in enumerate([0, 2], start=1)]
    play._envs.clear()  # as after a restart
    with client(studio) as c:
        h = {"X-CSRF-Token": login(c, "ann")}
        third = c.post(f"/api/play/{pid}/step", json={"action": 1, "seq": 3}, headers=h).json()
    with client(studio) as c:  # the same three actions in one go give the same last frame
        h = {"X-CSRF-Token": login(c, "ann")}
        other = c.post("/api/play", json={"level": "BabyAI-GoToRedBall-v0", "seed": 7}, headers=h).json()["play_id"]
        steps = [c.post(f"/api/play/{other}/step", json={"action": a, "seq": i}, headers=h).json()
                 for i, a in enumerate([0, 2, 1], start=1)]
    assert [s["frame"] for s in steps] == [*frames, third["frame"]]


def test_api_tokens_need_no_csrf_and_wrong_ones_are_refused(studio, bot_demos):
    from protege.systems.feedback.auth import create_api_token
    from protege.systems.feedback.db import User, open_db
    import_demos(studio, bot_demos, limit=1)
    engine, sessions = open_db(studio.db)
    with sessions() as s:
        token = create_api_token(s, s.scalar(select(User).where(User.name == "admin")))
        s.commit()
    engine.dispose()
    with client(studio) as c:
        auth = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/me", headers=auth).json()["user"] == "admin"
        assert c.post("/api/assignments/next", headers=auth).status_code == 200
        assert c.get("/api/admin/progress", headers=auth).status_code == 200
        assert c.get("/api/me", headers={"Authorization": f"Bearer {token}x"}).status_code == 401


def test_login_rate_limit(studio):
    with client(studio) as c:
        for _ in range(5):
            assert c.post("/login", json={"username": "ann", "password": "wrong password"}).status_code == 401
        blocked = c.post("/login", json={"username": "ann", "password": PASSWORD})
        assert blocked.status_code == 429 and blocked.headers["retry-after"] == "60"
        assert c.post("/login", json={"username": "bob", "password": PASSWORD}).status_code == 200
        assert c.post("/login", json={"username": "nobody", "password": PASSWORD}).status_code == 401


def test_admin_progress_and_agreement(studio, bot_demos):
    ids = import_demos(studio, bot_demos, limit=2, overlap=2)
    marks = {"ann": [(ids[0], 2, "progress"), (ids[0], 4, "success"), (ids[1], 1, "failure")],
             "bob": [(ids[0], 3, "progress"), (ids[0], 4, "success"), (ids[1], 2, "success")]}
    for name, rows in marks.items():
        with client(studio) as c:
            h = {"X-CSRF-Token": login(c, name)}
            for _ in ids:
                c.post("/api/assignments/next", headers=h)
                done = [a for a in c.get("/api/assignments").json() if not a["done"]]
                c.post(f"/api/assignments/{done[0]['id']}/done", headers=h)
            for episode, step, kind in rows:
                body = {"episode_id": episode, "step": step, "kind": kind}
                assert c.put(f"/api/marks/{uuid.uuid4()}", json=body, headers=h).status_code == 200
            assert c.get("/api/admin/progress").status_code == 403
    with client(studio) as c:
        login(c, "admin")
        report = c.get("/api/admin/progress").json()
    rows = {r["user"]: r for r in report["annotators"]}
    assert rows["ann"] == {"user": "ann", "role": "annotator", "assigned": 2, "leased": 0, "done": 2, "marks": 3}
    # success labels: episode 0 both "success", episode 1 "failure" vs "success":
    # p_o = 1/2; ann (success, failure), bob (success, success): p_e = (1*2 + 1*0)/4 = 1/2 -> kappa 0
    assert report["agreement"]["success"] == {"method": "cohen", "kappa": 0.0, "episodes": 2, "annotators": 2}
    # progress marks at 2 (ann) and 3 (bob) match both ways within 2 steps
    assert report["agreement"]["marks"] == {"tolerance": 2, "matched": 2, "total": 2, "agreement": 1.0}


def test_the_same_guarantees_on_postgresql(postgres_url, bot_demos, tmp_path):
    """Migrations, the uuid upsert, sticky undo, leases with k, plays and export on PostgreSQL."""
    from protege.systems.feedback.export import export_marks
    from tests.systems.feedback.conftest import USERS, Studio, add_user
    studio = Studio(db=postgres_url, media=tmp_path / "media", tmp=tmp_path)
    for name, role in USERS.items():
        add_user(postgres_url, name, role)
    ids = import_demos(studio, bot_demos, limit=2, overlap=1)
    with client(studio) as ann, client(studio) as bob:
        ha, hb = {"X-CSRF-Token": login(ann, "ann")}, {"X-CSRF-Token": login(bob, "bob")}
        a = ann.post("/api/assignments/next", headers=ha).json()
        b = bob.post("/api/assignments/next", headers=hb).json()
        assert {a["episode_id"], b["episode_id"]} == set(ids)
        assert ann.post("/api/assignments/next", headers=ha).json()["id"] == a["id"]
        key = str(uuid.uuid4())
        body = {"episode_id": a["episode_id"], "step": 1, "kind": "progress", "comment": "'; DROP TABLE marks;--"}
        for _ in range(3):
            assert ann.put(f"/api/marks/{key}", json=body, headers=ha).json()["acked"] is True
        assert bob.put(f"/api/marks/{key}", json={**body, "episode_id": b["episode_id"]}, headers=hb).status_code == 403
        undone = str(uuid.uuid4())
        ann.put(f"/api/marks/{undone}", json={**body, "deleted": True}, headers=ha)
        assert ann.put(f"/api/marks/{undone}", json=body, headers=ha).json()["deleted"] is True
        assert [m["uuid"] for m in ann.get(f"/api/episodes/{a['episode_id']}").json()["marks"]] == [key]
        pid = ann.post("/api/play", json={"level": "BabyAI-GoToRedBall-v0", "seed": 5}, headers=ha).json()["play_id"]
        first = ann.post(f"/api/play/{pid}/step", json={"action": 2, "seq": 1}, headers=ha).json()
        assert ann.post(f"/api/play/{pid}/step", json={"action": 2, "seq": 1}, headers=ha).json() == first
    assert _count_marks(postgres_url) == 2
    from protege.systems.feedback.db import open_db
    engine, sessions = open_db(postgres_url)
    assert export_marks(sessions, tmp_path / "export") == {"marks": 1, "episodes": 1, "annotators": 3}
    engine.dispose()


def test_group_commit_batches_writes_and_isolates_a_bad_one(studio, bot_demos):
    """Concurrent mark writes share commits; a write the database refuses (an unknown episode:
    foreign key) fails alone, the others of its batch are committed and acknowledged."""
    import threading

    from sqlalchemy import event

    from protege.systems.feedback.db import open_db
    from protege.systems.feedback.marks import MarkWriter
    ids = import_demos(studio, bot_demos, limit=1)
    engine, sessions = open_db(studio.db)
    commits = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    writer = MarkWriter(engine)
    now = time.time()
    good = [{"uuid": str(uuid.uuid4()), "episode_id": ids[0], "user_id": 2, "step": i % 5, "kind": "progress",
             "comment": "", "deleted": False, "created_at": now, "updated_at": now} for i in range(60)]
    bad = {**good[0], "uuid": str(uuid.uuid4()), "episode_id": "f" * 64}
    outcomes, barrier = {}, threading.Barrier(len(good) + 1)

    def write(values):
        barrier.wait()
        try:
            outcomes[values["uuid"]] = writer.write(values)
        except Exception as e:
            outcomes[values["uuid"]] = type(e).__name__
    threads = [threading.Thread(target=write, args=(v,)) for v in [*good, bad]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    writer.close()
    assert all(outcomes[v["uuid"]] is True for v in good)
    assert outcomes[bad["uuid"]] == "IntegrityError"
    assert _count_marks(studio.db) == len(good)
    assert len(commits) < len(good)  # writes shared transactions
    engine.dispose()


def test_the_migrations_build_exactly_the_models(tmp_path):
    """`alembic upgrade head` (what every command runs) gives the schema the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from protege.systems.feedback.db import Base, open_db
    engine, _ = open_db(str(tmp_path / "m.db"))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_frames_are_rendered_once_under_their_content_hash(studio, bot_demos):
    import hashlib

    from protege.systems.feedback import episodes
    ids = import_demos(studio, bot_demos, limit=1)
    with client(studio) as c:
        login(c, "admin")
        first = c.get(f"/api/episodes/{ids[0]}").json()["frames"]
        files = {p.name: p.stat().st_mtime_ns for p in (studio.media / "frames").iterdir()}
        assert set(files) <= {u.rsplit("/", 1)[1] for u in first} and len(files) >= 2
        for url in first:
            body = c.get(url).content
            assert url.endswith(f"/{hashlib.sha256(body).hexdigest()}.png")
        rendered = []
        original = episodes.render_pngs
        episodes.render_pngs = lambda *a: rendered.append(a) or original(*a)
        try:
            assert c.get(f"/api/episodes/{ids[0]}").json()["frames"] == first
            assert rendered == []  # cached: not rendered again
            next(iter((studio.media / "frames").iterdir())).unlink()  # media lost a file
            assert c.get(f"/api/episodes/{ids[0]}").json()["frames"] == first  # same names again
            assert len(rendered) == 1
        finally:
            episodes.render_pngs = original
