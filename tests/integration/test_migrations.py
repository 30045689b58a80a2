"""The migrations and the models describe the same schema: autogenerate (run as the owner, as
`just makemigration` is) finds nothing to do."""

from __future__ import annotations

from advanced_alchemy.base import metadata_registry
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import app.models  # noqa: F401 - every table on the metadata


async def test_no_pending_autogenerate_diff(owner_engine, clean_db):
    def diff(sync_conn):
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, metadata_registry.get(None))

    async with owner_engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == [], f"models and migrations disagree; run `just makemigration`: {changes}"
