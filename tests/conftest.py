"""Test infrastructure: REAL PostgreSQL and Redis (embedded by default, or DATABASE_URL / REDIS_URL).

- The database roles of production (README, "Database roles"): the app and the tests that play it connect
  as `vtu_app` (DATABASE_URL), which has SELECT alone on the ledger tables; migrations run as `vtu_owner`
  (DATABASE_OWNER_URL), which owns everything. Both are created on the server given (or the embedded one)
  by a superuser connection, which the set-up and the clean-up use; fixtures: `engine` (the app role),
  `owner_engine`, `superuser_engine`.
- One template database per migration set (`vtu_tmpl_<hash>`), built once with Alembic under an advisory
  lock; every pytest process (xdist worker) clones it into its own database in ~100 ms and drops it after.
- Tests that touch the database get a clean slate: every table is truncated before the test (ledger
  triggers that forbid TRUNCATE are bypassed only here, as a superuser with session_replication_role=replica).
- The app runs its real lifespan once per process; pages are exercised through an async HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from app.core.roles import DEV_APP_ROLE, DEV_OWNER_ROLE

ROOT = Path(__file__).resolve().parents[1]
os.environ["APP_ENV"] = "test"
os.environ.setdefault("SECRET_KEY", "test-secret-key-0123456789abcdef0123456789")
os.environ.setdefault("MONNIFY_VERIFY_BEFORE_CREDIT", "false")
# OWASP's minimum argon2id cost (a valid production choice, app/accounts/passwords.py) instead of the
# default's: about 28 ms of CPU per hash instead of 225 ms on 2 cores, which was half the time of the
# account tests. Tests of the default cost itself set their own (tests/unit/test_passwords.py).
os.environ.setdefault("PASSWORD_HASH_PARAMS", "m=19456,t=2,p=1")
# Small fixed pools: each xdist worker runs two in-process apps, a shared test engine and racing engines,
# and PostgreSQL 15 in CI allows 100 connections for everything together. Waiting for a pooled connection
# is fine; being refused by the server is not. Fixed (no overflow) like production, so code that holds a
# connection while asking for another deadlocks under the concurrency tests instead of passing here.
os.environ.setdefault("DATABASE_POOL_SIZE", "4")
os.environ.setdefault("DATABASE_MAX_OVERFLOW", "0")
# The Monnify simulator's credentials (tests/fakes/monnify.py); the base URL leads nowhere unless a test
# serves the simulator and points a client at it.
os.environ.setdefault("MONNIFY_API_KEY", "MK_TEST_SIMULATOR01")
os.environ.setdefault("MONNIFY_SECRET_KEY", "SIMSECRETKEY0123456789ABCDEFGHJK")
os.environ.setdefault("MONNIFY_CONTRACT_CODE", "7059707855")
os.environ.setdefault("MONNIFY_BASE_URL", "http://127.0.0.1:9")


def _migrations_hash() -> str:
    digest = hashlib.sha256()
    for path in [*sorted((ROOT / "db" / "migrations").rglob("*.py")), ROOT / "app" / "core" / "roles.py"]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _libpq(url: str) -> str:
    """asyncpg wants a plain libpq URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_db(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _as_role(url: str, role: str) -> str:
    """The same server and database as `role` (with the superuser's password, if it has one: see below)."""
    return make_url(url).set(username=role).render_as_string(hide_password=False)


async def _ensure_roles(admin: Any, base_url: str) -> None:
    """The owner and application roles, created once per server (callers hold the advisory lock). They get
    the password of the superuser URL given, so a server that asks for passwords lets them in too; the
    embedded server and CI's PostgreSQL trust local connections and there is none."""
    password = make_url(base_url).password or None
    for role in (DEV_OWNER_ROLE, DEV_APP_ROLE):
        exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        if not exists:
            # A `just dev` starting the same embedded server may create it at the same moment.
            with contextlib.suppress(
                asyncpg.exceptions.DuplicateObjectError, asyncpg.exceptions.UniqueViolationError
            ):
                await admin.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
        if password:
            await admin.execute(f'ALTER ROLE "{role}" PASSWORD {_literal(password)}')


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def _build_databases(base_url: str, worker: str) -> str:
    template = f"vtu_tmpl_{_migrations_hash()}"
    test_db = f"vtu_test_{worker}_{os.getpid()}"
    admin = await asyncpg.connect(_libpq(_with_db(base_url, "postgres")))
    try:
        await admin.execute("SELECT pg_advisory_lock(74211)")
        try:
            await _ensure_roles(admin, base_url)
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", template)
            if not exists:
                building = f"{template}_build"
                await admin.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                await admin.execute(f'CREATE DATABASE "{building}" OWNER "{DEV_OWNER_ROLE}"')
                # As in production: the owner migrates, and the application role gets its grants.
                env = {
                    **os.environ,
                    "DATABASE_URL": _as_role(_with_db(base_url, building), DEV_APP_ROLE),
                    "DATABASE_OWNER_URL": _as_role(_with_db(base_url, building), DEV_OWNER_ROLE),
                }
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "app",
                    "database",
                    "upgrade",
                    "--no-prompt",
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                out, _ = await proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"migrations failed:\n{out.decode()}")
                await admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
                # Old templates from earlier migration sets are dead weight.
                stale = await admin.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'vtu_tmpl_%' AND datname <> $1",
                    template,
                )
                for row in stale:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
            await admin.execute(f'DROP DATABASE IF EXISTS "{test_db}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{test_db}" TEMPLATE "{template}" OWNER "{DEV_OWNER_ROLE}"')
        finally:
            await admin.execute("SELECT pg_advisory_unlock(74211)")
    finally:
        await admin.close()
    return _with_db(base_url, test_db)


async def _drop_database(base_url: str, url: str) -> None:
    admin = await asyncpg.connect(_libpq(_with_db(base_url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await admin.close()


def _redis_url_for(base: str, index: int) -> str:
    if base.startswith("unix://"):
        path = base.split("?", 1)[0]
        return f"{path}?db={index}"
    url = make_url(base.replace("redis://", "postgresql://", 1))  # reuse the URL parser
    return f"redis://{url.host or '127.0.0.1'}:{url.port or 6379}/{index}"


REDIS_CLAIM = "vtu:test-redis-db:{}"


def _claim_redis_db(base: str) -> int:
    """A Redis db index (1-15; 0 stays for development) that no other live pytest process is using.

    Tests flush their db, so two concurrent runs (two checkouts, two xdist workers) must never share one:
    each claims an index with SET NX on db 0; the claim expires on its own if a run is killed."""
    import redis

    client = redis.Redis.from_url(_redis_url_for(base, 0))
    try:
        for _ in range(600):
            for index in range(1, 16):
                if client.set(REDIS_CLAIM.format(index), os.getpid(), nx=True, ex=3 * 3600):
                    return index
            import time

            time.sleep(1)
        raise RuntimeError("no free Redis db index for tests (15 concurrent pytest processes?)")
    finally:
        client.close()


def _release_redis_db(base: str, index: int) -> None:
    import redis

    client = redis.Redis.from_url(_redis_url_for(base, 0))
    try:
        if client.get(REDIS_CLAIM.format(index)) == str(os.getpid()).encode():
            client.delete(REDIS_CLAIM.format(index))
    finally:
        client.close()


@pytest.fixture(scope="session")
def service_urls(worker_id: str) -> Iterator[dict[str, str]]:
    """Real servers for this pytest process; database and Redis db index are private to it."""
    from app.core.embedded import ensure_services

    base_db = os.environ.get("DATABASE_URL") or ""
    base_redis = os.environ.get("REDIS_URL") or ""
    if not (base_db and base_redis):
        urls = ensure_services(export=False)
        base_db, base_redis = base_db or urls.database_url, base_redis or urls.redis_url
    superuser_url = asyncio.run(_build_databases(base_db, worker_id))
    db_url = _as_role(superuser_url, DEV_APP_ROLE)
    owner_url = _as_role(superuser_url, DEV_OWNER_ROLE)
    redis_index = _claim_redis_db(base_redis)
    redis_url = _redis_url_for(base_redis, redis_index)
    os.environ["DATABASE_URL"] = db_url
    os.environ["DATABASE_OWNER_URL"] = owner_url
    os.environ["REDIS_URL"] = redis_url
    from app.config.settings import get_settings

    get_settings.cache_clear()
    try:
        yield {
            "database_url": db_url,
            "database_owner_url": owner_url,
            "superuser_database_url": superuser_url,
            "redis_url": redis_url,
            "base_database_url": base_db,
        }
    finally:
        asyncio.run(_drop_database(base_db, db_url))
        _release_redis_db(base_redis, redis_index)


@pytest.fixture(scope="session")
def settings(service_urls: dict[str, str]) -> Any:
    from app.config.settings import load_settings

    return load_settings()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(settings: Any) -> AsyncIterator[Any]:
    from app.core.db import make_engine

    eng = make_engine(settings, pool_size=5, max_overflow=5)
    yield eng
    await eng.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def owner_engine(service_urls: dict[str, str]) -> AsyncIterator[Any]:
    """Connections as the role that owns the tables (what migrations run as): not the application."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.config.settings import normalise_database_url

    eng = create_async_engine(normalise_database_url(service_urls["database_owner_url"]), pool_size=2)
    yield eng
    await eng.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def superuser_engine(service_urls: dict[str, str]) -> AsyncIterator[Any]:
    """Superuser connections to this process's test database: the clean-up, and tests that must get past
    every guard (triggers off) to build a broken state on purpose."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.config.settings import normalise_database_url

    eng = create_async_engine(normalise_database_url(service_urls["superuser_database_url"]), pool_size=2)
    yield eng
    await eng.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sessionmaker(engine: Any) -> Any:
    from app.core.db import make_sessionmaker

    return make_sessionmaker(engine)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis(settings: Any) -> AsyncIterator[Any]:
    from app.core.redis import make_redis

    client = make_redis(settings.redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def clean_db(request: Any, superuser_engine: Any, redis: Any, sessionmaker: Any) -> AsyncIterator[None]:
    """Empty every table (and this process's Redis db) before the test; prove the ledger balances after it.

    Every test that touches the database therefore ends with a clean `reconcile` (balance == SUM(entries)
    for every wallet, every transaction zero-sum, the whole ledger summing to 0). A test that builds drift
    on purpose (raw SQL past ledger_post) says so with `@pytest.mark.ledger_drift` and asserts it itself.
    """
    from sqlalchemy import text

    async with superuser_engine.connect() as conn:
        tables = (
            (
                await conn.execute(
                    text(
                        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            )
            .scalars()
            .all()
        )
        if tables:
            await conn.execute(text("SET session_replication_role = replica"))
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            await conn.execute(text("SET session_replication_role = DEFAULT"))
            await conn.commit()
    await redis.flushdb()
    yield
    if request.node.get_closest_marker("ledger_drift") is not None:
        return
    from app.ledger.reconcile import run_reconcile

    report = await run_reconcile(sessionmaker)
    assert report.ok, "ledger does not reconcile after this test:\n" + "\n".join(report.lines())


@pytest_asyncio.fixture(loop_scope="session")
async def db(clean_db: None, sessionmaker: Any) -> AsyncIterator[Any]:
    """A session on a clean database. The code under test commits for real; nothing is mocked."""
    async with sessionmaker() as session:
        yield session


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def app(settings: Any) -> AsyncIterator[Any]:
    from app.asgi import create_app
    from tests.helpers import running

    async with running(create_app(settings)) as application:
        yield application


def _browser(app: Any) -> httpx.AsyncClient:
    # Plain httpx over ASGI: its own cookie jar, and no second run of the app's lifespan.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver.local")


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: Any, clean_db: None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with its own cookie jar (one browser), on a clean database."""
    async with _browser(app) as c:
        yield c


@pytest.fixture
def make_client(app: Any) -> Any:
    """More browsers for tests that need several users at once."""
    return lambda: _browser(app)
