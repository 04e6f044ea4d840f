"""Who is asking: passwords (argon2id), browser sessions with CSRF tokens, API tokens, and the
login rate limit.

A browser logs in once and holds the session token in an HttpOnly, SameSite=Strict cookie
`studio_session`; every POST/PUT/DELETE made with that cookie must carry the session's CSRF token in
the header `X-CSRF-Token` (SameSite already stops cross-site sends in current browsers; the token
also covers older ones and same-site subdomains). Scripts send `Authorization: Bearer <token>`
(made by `protege studio token NAME`), which a browser never attaches on its own, so they need no
CSRF token. Tokens are stored as SHA-256 digests only.
"""

import hashlib
import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Depends, HTTPException, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from protege.systems.feedback.db import ApiToken, Session, User

COOKIE = "studio_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_hasher = PasswordHasher()  # argon2id with the library's defaults (RFC 9106 low-memory profile)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_dummy: tuple = (None, "")


def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so a wrong name costs the same time
    as a wrong password (no user enumeration by timing); made with the current hasher's costs."""
    global _dummy
    if _dummy[0] is not _hasher:
        _dummy = (_hasher, hash_password(secrets.token_urlsafe(16)))
    return _dummy[1]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    user_id: int
    name: str
    role: str
    csrf_token: str | None
    """None for API-token requests (no CSRF needed)"""


def check_login(db, name: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.name == name))
    ok = verify_password(user.password_hash if user else _dummy_hash(), password)
    return user if ok and user is not None else None


def create_session(db, user: User) -> tuple[str, str]:
    """A new session row; returns (cookie token, CSRF token). Expired sessions are swept here."""
    now = time.time()
    db.query(Session).filter(Session.expires_at < now).delete()
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    db.add(Session(token_hash=digest(token), user_id=user.id, csrf_token=csrf,
                   expires_at=now + SESSION_SECONDS))
    return token, csrf


def create_api_token(db, user: User) -> str:
    token = "pst_" + secrets.token_urlsafe(32)
    db.add(ApiToken(token_hash=digest(token), user_id=user.id, created_at=time.time()))
    return token


class PrincipalCache:
    """Recently verified credentials (token digest -> Principal) for `ttl` seconds, so the hot path
    (a mark PUT) costs no authentication query. Logging out evicts the session here at once; in
    another server process sharing the database a logged-out cookie stays valid for at most `ttl`
    seconds (never past the session's own expiry)."""

    def __init__(self, ttl: float = 10.0, size: int = 10_000):
        self.ttl, self.size = ttl, size
        self._items: dict[tuple[str, str], tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Principal | None:
        hit = self._items.get(key)
        return hit[0] if hit is not None and hit[1] > time.time() else None

    def put(self, key: tuple[str, str], who: Principal, expires_at: float = float("inf")) -> None:
        with self._lock:
            if len(self._items) >= self.size:
                self._items.clear()
            self._items[key] = (who, min(time.time() + self.ttl, expires_at))

    def evict(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._items.pop(key, None)


def credentials(request: Request) -> tuple[str, str] | None:
    """("bearer" | "cookie", SHA-256 of the token) of a request, None when it carries none."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return "bearer", digest(header[7:].strip())
    if request.cookies.get(COOKIE):
        return "cookie", digest(request.cookies[COOKIE])
    return None


def lookup(app, key: tuple[str, str]) -> Principal | None:
    """The holder of credentials `key` from the database (cached on success)."""
    with app.state.db() as db:
        if key[0] == "bearer":
            row = db.execute(select(User.id, User.name, User.role).join(ApiToken, ApiToken.user_id == User.id)
                             .where(ApiToken.token_hash == key[1])).first()
            who, expires = (Principal(row.id, row.name, row.role, None), float("inf")) if row else (None, 0)
        else:
            row = db.execute(select(User.id, User.name, User.role, Session.csrf_token, Session.expires_at)
                             .join(Session, Session.user_id == User.id)
                             .where(Session.token_hash == key[1], Session.expires_at > time.time())).first()
            who, expires = (Principal(row.id, row.name, row.role, row.csrf_token), row.expires_at) if row else (None, 0)
    if who is not None:
        app.state.principals.put(key, who, expires)
    return who


async def require_user(request: Request) -> Principal:
    """FastAPI dependency of every authenticated route: 401 when anonymous; 403 for a cookie
    request that changes state without the session's CSRF token. Async, so a cached caller costs
    no hop to a worker thread (only a database lookup runs in one)."""
    key = credentials(request)
    who = None if key is None else request.app.state.principals.get(key)
    if who is None and key is not None:
        who = await run_in_threadpool(lookup, request.app, key)
    if who is None:
        raise HTTPException(401, "log in first")
    if request.method in UNSAFE and who.csrf_token is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), who.csrf_token.encode()):
            raise HTTPException(403, "missing or wrong CSRF token")
    request.state.principal = who
    return who


async def require_admin(request: Request) -> Principal:
    who = await require_user(request)
    if who.role != "admin":
        raise HTTPException(403, "admins only")
    return who


class LoginLimiter:
    """At most `limit` failed logins per `window` seconds per (user name, client address); further
    attempts are refused (429) before the password is even checked, until the window slides."""

    def __init__(self, limit: int = 5, window: float = 60.0):
        self.limit, self.window = limit, window
        self._failures: dict[tuple[str, str], deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque:
        times = self._failures[key]
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return len(self._recent(key, time.monotonic())) >= self.limit

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(key, now).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of names
                for k in [k for k, v in self._failures.items() if not self._recent(k, now)]:
                    del self._failures[k]


UserDep = Annotated[Principal, Depends(require_user)]
"""a route parameter `who: UserDep` makes the route need a logged-in user"""
AdminDep = Annotated[Principal, Depends(require_admin)]
"""a route parameter `who: AdminDep` makes the route admin-only"""
