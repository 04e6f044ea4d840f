"""Security of the studio: every route refuses anonymous callers and the wrong person, state changes
with a cookie need the CSRF token, media paths cannot leave the frames folder, a `<script>` comment
comes back as inert JSON text, SQL metacharacters in every text field are plain data, and every
response carries the security headers."""

import http.client
import uuid
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from tests.systems.feedback.conftest import client, import_demos, login, serve_in_thread

SCRIPT = "<script>alert('x')</script><img src=x onerror=alert(1)>"
SQL = ["' OR '1'='1", "admin'--", "'; DROP TABLE marks;--", "\" OR \"\"=\"", "1; SELECT * FROM users",
       "%' OR 1=1 --", "\\'; DELETE FROM users WHERE 'a'='a"]


@pytest.fixture
def world(studio, bot_demos):
    """ann holds an assignment, a mark and a play; bob (annotator) and admin are logged in."""
    import_demos(studio, bot_demos, limit=2)
    with client(studio) as ann, client(studio) as bob, client(studio) as admin, client(studio) as anon:
        h = {"X-CSRF-Token": login(ann, "ann")}
        a = ann.post("/api/assignments/next", headers=h).json()
        frame = ann.get(f"/api/episodes/{a['episode_id']}").json()["frames"][0].rsplit("/", 1)[1]
        key = str(uuid.uuid4())
        ann.put(f"/api/marks/{key}", json={"episode_id": a["episode_id"], "step": 1, "kind": "progress"}, headers=h)
        play = ann.post("/api/play", json={"level": "BabyAI-GoToRedBall-v0", "seed": 1}, headers=h).json()
        hb = {"X-CSRF-Token": login(bob, "bob")}
        bob.post("/api/assignments/next", headers=hb)
        hadmin = {"X-CSRF-Token": login(admin, "admin")}
        yield {"studio": studio, "ann": (ann, h), "bob": (bob, hb), "admin": (admin, hadmin), "anon": anon,
               "params": {"episode_id": a["episode_id"], "assignment_id": a["id"], "mark_uuid": key,
                          "name": frame, "play_id": play["play_id"]}}


BODIES = {("PUT", "/api/marks/{mark_uuid}"): lambda p: {"episode_id": p["episode_id"], "step": 0, "kind": "regress"},
          ("POST", "/api/play"): lambda p: {"level": "BabyAI-GoToRedBall-v0", "seed": 3},
          ("POST", "/api/play/{play_id}/step"): lambda p: {"action": 2, "seq": 1},
          ("POST", "/login"): lambda p: {"username": "ann", "password": "wrong password"}}
# bob (an annotator) against ann's resources and admin routes: the status each route must answer;
# None = open to every logged-in person (nothing of anyone else's in it). A new route must be added.
WRONG_PERSON = {("POST", "/logout"): None, ("GET", "/api/me"): None, ("GET", "/"): None,
                ("GET", "/play"): None, ("GET", "/api/assignments"): None,
                ("POST", "/api/assignments/next"): None, ("GET", "/api/play/levels"): None,
                ("POST", "/api/play"): None,
                ("GET", "/media/frames/{name}"): None,  # frames are content-named, not owned
                ("GET", "/admin"): 403, ("GET", "/api/admin/progress"): 403,
                ("POST", "/api/assignments/{assignment_id}/done"): 404,
                ("GET", "/api/episodes/{episode_id}"): 403, ("PUT", "/api/marks/{mark_uuid}"): 403,
                ("POST", "/api/play/{play_id}/step"): 404}


def _send(c, method, path, params, headers=None):
    body = BODIES.get((method, path))
    return c.request(method, path.format(**params), json=body(params) if body else None, headers=headers or {})


def test_every_route_refuses_anonymous_and_wrong_person(world):
    from protege.systems.feedback.app import PUBLIC, guards, routes
    app = world["anon"].app
    found = sorted(routes(app), key=lambda r: r[1] == "/logout")  # logging out last
    assert len(found) >= 15
    for method, path, route in found:
        if (method, path) in PUBLIC:
            assert not guards(route)
            continue
        assert guards(route), f"{method} {path} has no auth dependency"
        r = _send(world["anon"], method, path, world["params"])
        if method == "GET" and not path.startswith(("/api/", "/media/")):  # a page: to the login page
            assert (r.status_code, r.headers.get("location")) == (303, "/login"), (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code)
        assert (method, path) in WRONG_PERSON, f"{method} {path}: decide what another person may do"
        expected = WRONG_PERSON[(method, path)]
        bob, hb = world["bob"]
        r = _send(bob, method, path, world["params"], hb)
        if expected is None:
            assert r.status_code < 400, (method, path, r.status_code, r.text)
        else:
            assert r.status_code == expected, (method, path, r.status_code, r.text)
        if "require_admin" in guards(route):
            admin, ha = world["admin"]
            assert _send(admin, method, path, world["params"], ha).status_code == 200
    assert {(m, p) for m, p, _ in found} == set(WRONG_PERSON) | PUBLIC  # the table is the app


def test_state_changes_without_the_csrf_token_are_refused(world):
    from protege.systems.feedback.app import PUBLIC, routes
    ann, h = world["ann"]
    unsafe = [(m, p) for m, p, _ in routes(ann.app) if m in ("POST", "PUT", "DELETE", "PATCH") and (m, p) not in PUBLIC]
    assert len(unsafe) >= 6
    for method, path in unsafe:
        for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
            r = _send(ann, method, path, world["params"], headers)
            assert r.status_code == 403 and "CSRF" in r.json()["detail"], (method, path, headers)
    assert ann.get("/api/me").json()["user"] == "ann"  # still logged in: the refused logout did nothing
    assert _send(ann, "POST", "/logout", world["params"], h).status_code == 200
    assert ann.get("/api/me").status_code == 401


def test_script_in_a_comment_comes_back_as_inert_json(world):
    ann, h = world["ann"]
    episode = world["params"]["episode_id"]
    key = str(uuid.uuid4())
    assert ann.put(f"/api/marks/{key}", json={"episode_id": episode, "step": 0, "kind": "success",
                                               "comment": SCRIPT}, headers=h).status_code == 200
    r = ann.get(f"/api/episodes/{episode}")
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert [m["comment"] for m in r.json()["marks"] if m["uuid"] == key] == [SCRIPT]  # stored as typed
    for page in ("/", "/play", "/login"):  # pages are static files: no user text is ever written in
        assert "alert(" not in ann.get(page).text
    for name in ("index.html", "play.html", "admin.html", "login.html"):  # CSP allows no inline code
        from protege.systems.feedback.app import STATIC
        html = (STATIC / name).read_text().lower()
        assert "<script>" not in html and " on" + "click=" not in html and "<style" not in html, name


def test_sql_metacharacters_are_plain_data(world):
    from protege.systems.feedback.db import Mark, User, open_db
    ann, h = world["ann"]
    anon, episode = world["anon"], world["params"]["episode_id"]
    for text in SQL:
        assert anon.post("/login", json={"username": text, "password": text}).status_code in (401, 429)
        key = str(uuid.uuid4())
        assert ann.put(f"/api/marks/{key}", json={"episode_id": episode, "step": 0, "kind": "progress",
                                                   "comment": text}, headers=h).status_code == 200
        assert ann.put(f"/api/marks/{uuid.uuid4()}", json={"episode_id": text, "step": 0, "kind": "progress"},
                       headers=h).status_code == 422
        assert ann.put(f"/api/marks/{text}", json={"episode_id": episode, "step": 0, "kind": "progress"},
                       headers=h).status_code in (404, 422)
        assert ann.post("/api/play", json={"level": text}, headers=h).status_code == 422
        assert ann.get(f"/api/episodes/{text}").status_code in (403, 404)
        assert ann.post(f"/api/play/{text}/step", json={"action": 1, "seq": 1}, headers=h).status_code in (404, 405)
        assert ann.post(f"/api/assignments/{text}/done", headers=h).status_code in (404, 405, 422)
    comments = [m["comment"] for m in ann.get(f"/api/episodes/{episode}").json()["marks"]]
    assert all(text in comments for text in SQL)
    engine, sessions = open_db(world["studio"].db)
    with sessions() as s:  # nothing dropped or deleted
        assert s.scalar(select(func.count()).select_from(User)) == 3
        assert s.scalar(select(func.count()).select_from(Mark)) == 1 + len(SQL)
    engine.dispose()


def test_every_response_carries_the_security_headers(world):
    ann, h = world["ann"]
    anon = world["anon"]
    responses = [anon.get("/login"), anon.get("/"), anon.get("/api/me"), anon.get("/static/login.js"),
                 anon.get("/nowhere"), anon.post("/login", json={}), ann.get("/api/assignments"),
                 ann.get(f"/media/frames/{world['params']['name']}"), ann.get("/media/frames/x.png")]
    for r in responses:
        assert r.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert anon.get("/static/login.js").headers["content-type"].startswith("text/javascript")
    cookie = anon.post("/login", json={"username": "bob", "password": "correct horse battery"}).headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Secure" not in cookie
    with client(world["studio"], secure_cookies=True) as c:
        cookie = c.post("/login", json={"username": "bob", "password": "correct horse battery"}).headers["set-cookie"]
        assert "Secure" in cookie


TRAVERSALS = ["/media/frames/../../studio.db", "/media/frames/..%2f..%2fstudio.db",
              "/media/frames/%2e%2e%2f%2e%2e%2fstudio.db", "/media/frames/..%5c..%5cstudio.db",
              "/media/frames/{frame}/../../../studio.db", "/media/frames/{upper}", "/media/frames/{frame}%00",
              "/media/frames/{stem}.PNG", "/media/frames/{stem}.png.db", "/media/secret.txt",
              "/media/frames/%2fetc%2fpasswd", "/static/../studio.db", "/static/%2e%2e/studio.db",
              "/static/..%2f..%2fdb.py", "/static/%2e%2e%2f%2e%2e%2fdb.py", "/media/frames/....//studio.db"]


def test_media_paths_cannot_leave_the_frames_folder(world):
    """Raw paths over a real socket (HTTP clients would normalise the dots away)."""
    studio, ann = world["studio"], world["ann"][0]
    (studio.media / "secret.txt").write_text("SECRET")
    (studio.media / "frames" / "secret.txt").write_text("SECRET")
    cookie = f"studio_session={ann.cookies.get('studio_session')}"
    frame = world["params"]["name"]
    stem = frame.removesuffix(".png")
    with serve_in_thread(studio.db, studio.media) as url:
        host, port = urlsplit(url).hostname, urlsplit(url).port
        for raw in TRAVERSALS:
            path = raw.format(frame=frame, upper=stem.upper() + ".png", stem=stem)
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", path, headers={"Cookie": cookie})
            r = conn.getresponse()
            body = r.read()
            conn.close()
            assert r.status in (400, 404), (path, r.status)
            assert b"SQLite" not in body and b"SECRET" not in body and b"import" not in body, path
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", f"/media/frames/{frame}", headers={"Cookie": cookie})
        assert conn.getresponse().status == 200
        conn.close()


def test_oversized_bodies_are_refused(world):
    ann, h = world["ann"]
    body = {"episode_id": world["params"]["episode_id"], "step": 0, "kind": "progress", "comment": "x" * 200_000}
    assert ann.put(f"/api/marks/{uuid.uuid4()}", json=body, headers=h).status_code == 413
    assert world["anon"].post("/login", json={"username": "a" * 100_000, "password": "b"}).status_code == 413
