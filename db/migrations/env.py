"""Alembic environment: runs inside one transaction per upgrade (PostgreSQL has transactional DDL)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from advanced_alchemy.base import metadata_registry
from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import AsyncEngine, async_engine_from_config

import app.models  # noqa: F401  - registers every table on the metadata
from app.config.settings import database_user, get_settings, normalise_database_url
from app.core import roles
from app.core.sqlfiles import register_autogenerate

register_autogenerate()  # edited app/*/sql/*.sql files become migrations too

if TYPE_CHECKING:
    from advanced_alchemy.alembic.commands import AlembicCommandConfig
    from sqlalchemy.engine import Connection

config: AlembicCommandConfig = context.config  # type: ignore[assignment]
settings = get_settings()
# Migrations run as the owner when DATABASE_OWNER_URL is set (README, "Database roles"), and the application
# role (DATABASE_URL's user) is then given exactly its privileges at the end (app/core/roles.py).
OWNER_URL = normalise_database_url(settings.database_owner_url) if settings.database_owner_url else ""
APP_ROLE = database_user(settings.database_url) if OWNER_URL and settings.database_url else None


def _next_revision_id(context_: object, revision: object, directives: list[object]) -> None:
    """New migrations get the next four-digit revision id, so file names (`<rev>_<slug>.py`) sort in the
    order the migrations run."""
    script = context.script  # type: ignore[attr-defined]
    numbers = [int(rev.revision) for rev in script.walk_revisions() if str(rev.revision).isdigit()]
    for directive in directives:
        directive.rev_id = f"{max(numbers, default=0) + 1:04d}"  # type: ignore[attr-defined]


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata_registry.get(config.bind_key),
        compare_type=True,
        version_table=config.version_table_name,
        user_module_prefix=config.user_module_prefix,
        render_as_batch=False,
        transaction_per_migration=False,
        process_revision_directives=_next_revision_id,
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    _configure(url=OWNER_URL or config.db_url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
        if APP_ROLE and database_user(OWNER_URL) != APP_ROLE:
            roles.apply(connection, APP_ROLE)


async def run_migrations_online() -> None:
    configuration = config.get_section(config.config_ini_section) or {}
    configuration["sqlalchemy.url"] = OWNER_URL or config.db_url
    connectable = cast(
        "AsyncEngine",
        (None if OWNER_URL else config.engine)
        or async_engine_from_config(configuration, prefix="sqlalchemy.", poolclass=pool.NullPool),
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
