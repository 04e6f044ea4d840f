"""PostgreSQL for the studio's tests.

`PROTEGE_TEST_POSTGRES_URL` (exported by `.ci/run`, e.g.
`postgresql://protege_test:protege_test@127.0.0.1:5432/protege_test`) names a server whose role may
CREATE DATABASE. Each test gets a database of its own, created empty and dropped afterwards, so tests
never see each other's tables and a failed test leaves nothing behind. Without the variable the
`postgres_url` fixture skips with the reason (locally without PostgreSQL); CI always sets it.

    from tests.systems.feedback.pg import postgres_url  # noqa: F401  (the fixture)

    def test_x(postgres_url): ...  # "postgresql://.../protege_t_<hex>", empty
"""

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

ENV = "PROTEGE_TEST_POSTGRES_URL"
SKIP_REASON = f"{ENV} is not set (no PostgreSQL here; .ci/run starts one and sets it in CI)"


def base_url() -> str | None:
    """The server named by the environment, or None."""
    return os.environ.get(ENV) or None


def _admin(url: str):
    """A psycopg connection in autocommit mode (CREATE/DROP DATABASE refuse transactions)."""
    import psycopg
    return psycopg.connect(_libpq(url), autocommit=True, connect_timeout=10)


def _libpq(url: str) -> str:
    """psycopg wants `postgresql://`; SQLAlchemy URLs may say `postgresql+psycopg://`."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgresql") else url


def with_database(url: str, name: str) -> str:
    """`url` with its database part replaced by `name` (query string kept)."""
    head, _, tail = url.partition("://")
    netloc, _, path = tail.partition("/")
    query = path.partition("?")[2]
    return f"{head}://{netloc}/{name}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def fresh_database(url: str | None = None) -> Iterator[str]:
    """Create an empty database on the server of `url` (default: the environment's), yield its URL,
    drop it afterwards, closing whatever connections a killed server left open."""
    url = url or base_url()
    if url is None:
        raise RuntimeError(SKIP_REASON)
    name = f"protege_t_{uuid.uuid4().hex[:12]}"  # [a-z0-9_] only: safe to put in the statement
    with _admin(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(url, name)
    finally:
        with _admin(url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test; skips when the environment names none."""
    if base_url() is None:
        pytest.skip(SKIP_REASON)
    with fresh_database() as url:
        yield url
