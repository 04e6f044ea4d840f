"""The studio's web application: `create_app(db_url, media_dir)`.

Every route but `GET /login`, `POST /login` and `/static/*` requires a logged-in user (a page
redirects an anonymous visitor to /login, an API route answers 401); admin routes refuse annotators
(403). Every response carries a strict Content-Security-Policy (scripts and styles only from files
under /static/: no inline code can run, so a comment holding `<script>` is inert even if a page
forgot to escape it) and the usual hardening headers. Routes live in `api.py` (assignments,
episodes, marks, admin) and `play.py` (playing to demonstrate).
"""

import contextlib
import mimetypes
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from protege.systems.feedback import auth
from protege.systems.feedback.db import open_db
from protege.systems.feedback.marks import MarkWriter

STATIC = Path(__file__).parent / "static"
mimetypes.add_type("text/javascript", ".js")  # the standard type (RFC 9239), whatever /etc/mime.types says
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
FRAME_CACHE = b"private, max-age=31536000, immutable"  # content-hashed names never change
MAX_BODY = 64 * 1024
"""bytes of a request body; every request is a small JSON object (a mark's comment <= 1000 chars)"""
PUBLIC = {("GET", "/login"), ("POST", "/login")}
"""routes open to anonymous callers (besides /static/*): the security tests read this set"""


class SecurityHeaders:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot mark path): adds the
    security headers to every HTTP response, keeping a route's own Cache-Control."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(db_url: str, media_dir: Path, *, lease_seconds: float = 1800.0,
               secure_cookies: bool = False, login_limit: int = 5) -> FastAPI:
    """The studio app over database `db_url` (upgraded to the newest schema first) with rendered
    frames under `media_dir/frames/`. `secure_cookies`: mark the session cookie Secure (set it
    behind a TLS-terminating proxy; requests seen as https get it anyway)."""
    from protege.systems.feedback import api, play
    engine, sessions = open_db(db_url)
    media_dir = Path(media_dir)
    (media_dir / "frames").mkdir(parents=True, exist_ok=True)
    writer = MarkWriter(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        writer.close()  # the server stops: let the batch in flight commit and answer

    app = FastAPI(title="protege studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan,
                  max_body_size=MAX_BODY)
    app.state.engine, app.state.db, app.state.media = engine, sessions, media_dir
    app.state.lease_seconds, app.state.secure_cookies = lease_seconds, secure_cookies
    app.state.limiter = auth.LoginLimiter(login_limit)
    app.state.principals = auth.PrincipalCache()
    app.state.visible = {}  # (user id, episode id) -> episode length, once the user may see it
    app.state.marks = writer
    app.add_middleware(SecurityHeaders)
    app.include_router(_auth_routes())
    app.include_router(_pages())
    app.include_router(api.router)
    app.include_router(play.router)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return app


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """JSON errors for API routes; a page asked for anonymously redirects to the login page."""
    page = request.method == "GET" and not request.url.path.startswith(("/api/", "/media/"))
    if exc.status_code == 401 and page:
        return RedirectResponse("/login", status_code=303)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


def _auth_routes():
    from fastapi import APIRouter
    router = APIRouter()

    @router.post("/login")
    def login(body: LoginIn, request: Request):
        client = request.client.host if request.client else ""
        key = (body.username, client)
        limiter = request.app.state.limiter
        if limiter.blocked(key):
            raise HTTPException(429, "too many failed logins; wait a minute", headers={"Retry-After": "60"})
        with request.app.state.db() as db:
            user = auth.check_login(db, body.username, body.password)
            if user is None:
                limiter.failed(key)
                raise HTTPException(401, "wrong user name or password")
            token, csrf = auth.create_session(db, user)
            db.commit()
        response = JSONResponse({"user": user.name, "role": user.role, "csrf_token": csrf})
        secure = request.app.state.secure_cookies or request.url.scheme == "https"
        response.set_cookie(auth.COOKIE, token, max_age=auth.SESSION_SECONDS, httponly=True,
                            samesite="strict", secure=secure, path="/")
        return response

    @router.post("/logout")
    def logout(request: Request, who: auth.UserDep):
        token = request.cookies.get(auth.COOKIE)
        if token:
            request.app.state.principals.evict(("cookie", auth.digest(token)))
            with request.app.state.db() as db:
                db.query(auth.Session).filter(auth.Session.token_hash == auth.digest(token)).delete()
                db.commit()
        response = JSONResponse({"user": who.name, "logged_out": True})
        response.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @router.get("/api/me")
    def me(who: auth.UserDep):
        return {"user": who.name, "role": who.role, "csrf_token": who.csrf_token}

    @router.get("/media/frames/{name}")
    def frame(name: str, request: Request, who: auth.UserDep):
        from protege.systems.feedback.episodes import frame_path
        path = frame_path(request.app.state.media, name)  # validates the name: no path join of input
        if path is None or not path.is_file():
            raise HTTPException(404, "no such frame")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": FRAME_CACHE.decode()})

    return router


def _page(name: str) -> FileResponse:
    path = STATIC / name
    if not path.is_file():
        raise HTTPException(404, f"page {name} is missing from the installation")
    return FileResponse(path, media_type="text/html")


def _pages():
    """HTML pages: static files (no server-side templating, so nothing user-supplied is ever
    written into a page; the scripts fetch JSON and insert it as text)."""
    from fastapi import APIRouter
    router = APIRouter()

    @router.get("/login")
    def login_page():
        return _page("login.html")

    @router.get("/")
    def index(who: auth.UserDep):
        return _page("index.html")

    @router.get("/play")
    def play_page(who: auth.UserDep):
        return _page("play.html")

    @router.get("/admin")
    def admin_page(who: auth.AdminDep):
        return _page("admin.html")

    return router


def routes(app) -> list[tuple[str, str, object]]:
    """(method, path, route) of every API route of `app`, through included routers (the security
    tests enumerate them)."""
    from fastapi.routing import APIRoute
    found = []

    def walk(items, prefix: str) -> None:
        for r in items:
            if hasattr(r, "original_router"):  # FastAPI >= 0.160 keeps included routers whole
                walk(r.original_router.routes, prefix + getattr(r.include_context, "prefix", ""))
            elif isinstance(r, APIRoute):
                found.extend((m, prefix + r.path, r) for m in sorted(r.methods))
    walk(app.router.routes, "")
    return found


def guards(route) -> set[str]:
    """Names of the auth dependencies (`require_user`, `require_admin`) a route runs."""
    names, stack = set(), [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call in (auth.require_user, auth.require_admin):
            names.add(dependant.call.__name__)
        stack.extend(dependant.dependencies)
    return names
