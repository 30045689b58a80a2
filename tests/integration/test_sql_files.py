"""The SQL files (app/*/sql/*.sql) are the single source of every function and trigger: a database built by
the migrations matches them exactly, nothing in it is undescribed, and an edited file is seen as a change
that `just makemigration` turns into a migration. Run as the owner, as migrations are: installing a
definition needs it."""

from __future__ import annotations

import dataclasses

from advanced_alchemy.base import metadata_registry
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext

import app.models  # noqa: F401 - every table on the metadata
from app.core import sqlfiles


async def test_the_migrated_database_matches_the_files(owner_engine):
    async with owner_engine.connect() as conn:
        drifted = await conn.run_sync(sqlfiles.drift)
    assert [d.obj.key for d in drifted] == [], [(d.obj.key, d.error) for d in drifted]


async def test_every_function_and_trigger_is_in_a_file(owner_engine):
    async with owner_engine.connect() as conn:
        assert await conn.run_sync(sqlfiles.unlisted) == []


_FILES = sqlfiles.objects


def _edited() -> list[sqlfiles.SqlObject]:
    """The files as they would be after someone edits one function and one trigger."""
    edited = []
    for obj in _FILES():
        if obj.name == "ledger_reject_change":
            obj = dataclasses.replace(obj, sql=obj.sql.replace("is not allowed", "is never allowed"))
        if obj.key == "trigger ledger_accounts_permanent ON ledger_accounts":
            obj = dataclasses.replace(obj, sql=obj.sql.replace("DELETE OR TRUNCATE", "DELETE"))
        edited.append(obj)
    return edited


async def test_an_edited_file_is_drift_and_nothing_is_changed_by_looking(owner_engine):
    async with owner_engine.connect() as conn:
        drifted = await conn.run_sync(lambda c: sqlfiles.drift(c, _edited()))
        again = await conn.run_sync(sqlfiles.drift)
    assert sorted(d.obj.key for d in drifted) == [
        "function ledger_reject_change",
        "trigger ledger_accounts_permanent ON ledger_accounts",
    ]
    assert all(d.database and d.file and d.database != d.file for d in drifted)
    assert again == []  # the comparison ran in a savepoint and was rolled back


async def test_makemigration_writes_the_new_text_up_and_the_old_down(owner_engine, monkeypatch):
    sqlfiles.register_autogenerate()
    monkeypatch.setattr(sqlfiles, "objects", _edited)

    def produce(sync_conn):
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return produce_migrations(context, metadata_registry.get(None))

    async with owner_engine.connect() as conn:
        script = await conn.run_sync(produce)
    ups = [op for op in script.upgrade_ops.ops if hasattr(op, "statements")]
    downs = [op for op in script.downgrade_ops.ops if hasattr(op, "statements")]
    up_sql = "\n".join(s for op in ups for s in op.statements)
    down_sql = "\n".join(s for op in downs for s in op.statements)
    assert "is never allowed" in up_sql and "is not allowed" in down_sql
    assert "BEFORE DELETE ON ledger_accounts" in up_sql
    assert "DELETE OR TRUNCATE" in down_sql  # the trigger the database had, restored on downgrade
