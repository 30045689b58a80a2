"""Alembic environment: runs inside one transaction per upgrade (PostgreSQL has transactional DDL)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from advanced_alchemy.base import metadata_registry
from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import AsyncEngine, async_engine_from_config

import app.models  # noqa: F401  - registers every table on the metadata
from app.core.sqlfiles import register_autogenerate

register_autogenerate()  # edited app/*/sql/*.sql files become migrations too

if TYPE_CHECKING:
    from advanced_alchemy.alembic.commands import AlembicCommandConfig
    from sqlalchemy.engine import Connection

config: AlembicCommandConfig = context.config  # type: ignore[assignment]


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
    _configure(url=config.db_url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    configuration = config.get_section(config.config_ini_section) or {}
    configuration["sqlalchemy.url"] = config.db_url
    connectable = cast(
        "AsyncEngine",
        config.engine
        or async_engine_from_config(configuration, prefix="sqlalchemy.", poolclass=pool.NullPool),
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
