"""Database wiring: one advanced-alchemy config (asyncpg) shared by the web app, the CLI and the worker."""

from __future__ import annotations

import time
import uuid
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext, suppress
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config.settings import BASE_DIR, Settings, normalise_database_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from advanced_alchemy.extensions.litestar import EngineConfig, SQLAlchemyAsyncConfig

MIGRATIONS_DIR = BASE_DIR / "db" / "migrations"
ALEMBIC_INI = BASE_DIR / "db" / "alembic.ini"


# An engine's execution option saying DATABASE_URL goes through PgBouncer in transaction pooling: the code
# paths that skip BEGIN / COMMIT for speed (`driver_connection`, `reads_only`, purchase opening) then wrap
# their statements in a transaction, the only unit PgBouncer keeps on one server connection.
PGBOUNCER_OPTION = "vtu_pgbouncer"


def _statement_name() -> str:
    """A prepared statement name no other client of the same server connection can hold (asyncpg numbers
    them per process, so two web processes or a worker behind one PgBouncer would collide on
    `__asyncpg_stmt_1__`, ...)."""
    return f"__vtu_{uuid.uuid4().hex}__"


class PgBouncerConnection(asyncpg.Connection):
    """asyncpg's connection for PgBouncer transaction pooling.

    - asyncpg closes a prepared statement nobody holds any more lazily, before it prepares the next one;
      through PgBouncer that may be another server connection, and the statement would stay on the first
      one until PgBouncer recycles it (measured: about one per transaction). So they are closed before
      COMMIT / ROLLBACK too, while the transaction still holds its server connection.
    - asyncpg looks up unknown type OIDs with a query of its own while preparing a statement; outside a
      transaction its Parse and Bind could reach two different server connections, so that look-up is put
      in a transaction when none is open."""

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109
        # asyncpg's Transaction sends COMMIT / ROLLBACK here, as a simple query without arguments.
        if not args and self._stmts_to_close and self.is_in_transaction():  # type: ignore[attr-defined]
            with suppress(asyncpg.PostgresError):  # e.g. refused in a failed transaction: ROLLBACK still goes
                await self._cleanup_stmts()  # type: ignore[attr-defined]
        return await super().execute(query, *args, timeout=timeout)

    async def _introspect_types(self, typeoids: Any, timeout: Any) -> Any:  # noqa: ASYNC109 (asyncpg's signature)
        if self.is_in_transaction():
            return await super()._introspect_types(typeoids, timeout)  # type: ignore[misc]
        async with self.transaction():
            return await super()._introspect_types(typeoids, timeout)  # type: ignore[misc]


def connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's connect arguments (plus the two SQLAlchemy's asyncpg adapter takes)."""
    if settings.database_pgbouncer:
        return {
            # PgBouncer (1.18) refuses startup parameters it does not know, `jit` among them: set
            # `ALTER ROLE <app role> SET jit = off` on the server instead (README "Scaling").
            "server_settings": {"application_name": "vtu"},
            "statement_cache_size": 0,  # asyncpg's own cache of named statements
            "prepared_statement_cache_size": 0,  # SQLAlchemy's: every statement prepared afresh ...
            "prepared_statement_name_func": _statement_name,  # ... under a name nobody else uses
            "connection_class": PgBouncerConnection,
        }
    # asyncpg: statement cache on, server-side JIT off (short OLTP statements only)
    return {"server_settings": {"jit": "off", "application_name": "vtu"}}


def engine_config(settings: Settings) -> EngineConfig:
    # advanced-alchemy's Litestar extension (its Alembic commands and plugins) is imported when a config is
    # made, not by every module that imports this one (the `vtu` commands, the hook modules).
    from advanced_alchemy.extensions.litestar import EngineConfig

    return EngineConfig(
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        # No ping on every checkout (a round trip, ~0.5 ms of CPU, twice per page): `watch_connections`
        # replaces a connection the server closed, or one idle long enough to doubt, before handing it out.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args=connect_args(settings),
        execution_options={PGBOUNCER_OPTION: settings.database_pgbouncer},
    )


def alchemy_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    from advanced_alchemy.extensions.litestar import (
        AlembicAsyncConfig,
        AsyncSessionConfig,
        SQLAlchemyAsyncConfig,
    )

    return SQLAlchemyAsyncConfig(
        connection_string=normalise_database_url(settings.database_url),
        engine_config=engine_config(settings),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        # Pages use Post/Redirect/Get, so a redirect must commit too. Money paths commit explicitly.
        before_send_handler="autocommit_include_redirects",
        alembic_config=AlembicAsyncConfig(
            script_config=str(ALEMBIC_INI),
            script_location=str(MIGRATIONS_DIR),
            version_table_name="alembic_version",
        ),
        create_all=False,
    )


def make_engine(settings: Settings, **overrides: object) -> AsyncEngine:
    """A standalone engine for the worker, CLI commands and tests (not tied to an app instance)."""
    cfg = engine_config(settings)
    kwargs: dict[str, object] = {
        "pool_size": cfg.pool_size,
        "max_overflow": cfg.max_overflow,
        "pool_recycle": cfg.pool_recycle,
        "pool_pre_ping": cfg.pool_pre_ping,
        "connect_args": cfg.connect_args,
        "execution_options": cfg.execution_options,
    }
    kwargs.update(overrides)
    engine = create_async_engine(normalise_database_url(settings.database_url), **kwargs)  # type: ignore[arg-type]
    watch_connections(engine)
    return engine


# A pooled connection unused for longer than this is pinged (one round trip) before it is handed out.
IDLE_PING_SECONDS = 10.0
_LAST_USED = "vtu_last_used"


def watch_connections(engine: AsyncEngine) -> None:
    """Hand out only live connections, without a round trip per checkout (what `pool_pre_ping` costs):

    - a connection whose socket the server closed (PostgreSQL restarted or ended the backend: asyncpg
      has seen the close) is replaced at once, for free;
    - a connection idle for more than IDLE_PING_SECONDS is pinged first, which finds a network path that
      died silently (no close ever arrived) and a server that restarted while it sat idle.

    A refused checkout raises DisconnectionError, on which SQLAlchemy's pool throws the connection away and
    opens another (README "Fault drill", step b: the web processes recover without a restart). Idempotent:
    the listeners are added once per engine."""
    sync_engine = engine.sync_engine
    if event.contains(sync_engine, "checkout", _check_out):
        return
    event.listen(sync_engine, "connect", _mark_used)
    event.listen(sync_engine, "checkin", _mark_used)
    event.listen(sync_engine, "checkout", _check_out)


def _mark_used(dbapi_connection: Any, record: Any) -> None:
    record.info[_LAST_USED] = time.monotonic()


def _check_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    driver = record.driver_connection  # the asyncpg connection
    if driver is None or driver.is_closed():
        raise exc.DisconnectionError("the server closed this connection")
    if time.monotonic() - record.info.get(_LAST_USED, 0.0) > IDLE_PING_SECONDS:
        try:
            # SQLAlchemy's asyncpg adapter: one round trip, awaited in the pool's greenlet
            dbapi_connection.ping()
        except Exception as error:  # any failure: this connection is not to be trusted
            raise exc.DisconnectionError(f"ping failed: {error}") from error
    record.info[_LAST_USED] = time.monotonic()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def connection_of(executor: AsyncSession | AsyncConnection) -> AsyncConnection:
    """The connection (and transaction) behind a session or connection, for statements sent as driver SQL
    (`exec_driver_sql`); a session's pending ORM changes are flushed first, as its own execute would."""
    if isinstance(executor, AsyncSession):
        await executor.flush()
        return await executor.connection()
    return executor


def uses_pgbouncer(engine: AsyncEngine | AsyncSession) -> bool:
    """Does this engine (or this session's) reach PostgreSQL through PgBouncer in transaction pooling?"""
    sync_engine = engine.get_bind() if isinstance(engine, AsyncSession) else engine.sync_engine
    return bool(sync_engine.get_execution_options().get(PGBOUNCER_OPTION))


def pgbouncer_transaction(driver: Any, engine: AsyncEngine) -> AbstractAsyncContextManager[Any]:
    """Around statements sent on a driver connection outside any transaction: nothing directly on
    PostgreSQL (each statement commits by itself), a transaction through PgBouncer (asyncpg's Parse and Bind
    go in two round trips, which only a transaction keeps on one server connection)."""
    if uses_pgbouncer(engine) and not driver.is_in_transaction():
        return driver.transaction()  # type: ignore[no-any-return]
    return nullcontext()


async def reads_only(session: AsyncSession) -> None:
    """For a handler that only reads (a GET page): the request session's connection in autocommit, so each
    statement is its own transaction and no BEGIN / COMMIT round trips are sent (docs/architecture.md,
    "Request handling"). Under READ COMMITTED every statement of a transaction takes its own snapshot anyway,
    so the reads see exactly what they would have seen. Call it before the session's first statement, and
    never in a handler that writes (each write would commit on its own).

    Through PgBouncer (DATABASE_PGBOUNCER) nothing changes: the session's usual transaction is needed."""
    if uses_pgbouncer(session):
        return
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The asyncpg connection of a pooled connection, OUTSIDE any transaction: each statement sent on it
    commits by itself (no BEGIN / COMMIT round trips, no SQLAlchemy layers). For the hottest one-statement
    paths only (API key lookup, one-statement SQL functions); everything else uses sessions.

    Through PgBouncer (DATABASE_PGBOUNCER) the statements run in one transaction instead (committed when the
    block ends, rolled back when it raises): without it, PgBouncer may send a statement's Parse and its Bind
    to two different server connections.

    A connection the driver reports broken is invalidated, so the pool does not hand it out again."""
    async with engine.connect() as conn:
        fairy = await conn.get_raw_connection()
        driver = fairy.driver_connection
        try:
            async with pgbouncer_transaction(driver, engine):
                yield driver
        except (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.InterfaceError, OSError):
            await conn.invalidate()
            raise


@asynccontextmanager
async def standalone_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One engine + session for a short CLI command; disposed afterwards."""
    engine = make_engine(settings, pool_size=2, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as session:
            yield session
    finally:
        await engine.dispose()
