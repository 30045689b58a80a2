"""Database wiring: one advanced-alchemy config (asyncpg) shared by the web app, the CLI and the worker."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
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


def engine_config(settings: Settings) -> EngineConfig:
    # advanced-alchemy's Litestar extension (its Alembic commands and plugins) is imported when a config is
    # made, not by every module that imports this one (the `vtu` commands, the hook modules).
    from advanced_alchemy.extensions.litestar import EngineConfig

    return EngineConfig(
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        # a connection checked out after PostgreSQL restarted is tested first and replaced if dead (one
        # round trip per checkout), instead of failing the request (README "Fault drill", step b)
        pool_pre_ping=True,
        pool_recycle=1800,
        # asyncpg: statement cache on, server-side JIT off (short OLTP statements only)
        connect_args={"server_settings": {"jit": "off", "application_name": "vtu"}},
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
    }
    kwargs.update(overrides)
    return create_async_engine(normalise_database_url(settings.database_url), **kwargs)  # type: ignore[arg-type]


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def connection_of(executor: AsyncSession | AsyncConnection) -> AsyncConnection:
    """The connection (and transaction) behind a session or connection, for statements sent as driver SQL
    (`exec_driver_sql`); a session's pending ORM changes are flushed first, as its own execute would."""
    if isinstance(executor, AsyncSession):
        await executor.flush()
        return await executor.connection()
    return executor


async def reads_only(session: AsyncSession) -> None:
    """For a handler that only reads (a GET page): the request session's connection in autocommit, so each
    statement is its own transaction and no BEGIN / COMMIT round trips are sent (docs/architecture.md,
    "Request handling"). Under READ COMMITTED every statement of a transaction takes its own snapshot anyway,
    so the reads see exactly what they would have seen. Call it before the session's first statement, and
    never in a handler that writes (each write would commit on its own)."""
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The asyncpg connection of a pooled connection, OUTSIDE any transaction: each statement sent on it
    commits by itself (no BEGIN / COMMIT round trips, no SQLAlchemy layers). For the hottest one-statement
    paths only (API key lookup, one-statement SQL functions); everything else uses sessions.

    A connection the driver reports broken is invalidated, so the pool does not hand it out again."""
    async with engine.connect() as conn:
        fairy = await conn.get_raw_connection()
        try:
            yield fairy.driver_connection
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
