"""console search indexes: user names by trigram, resellers, transfers assigned by hand

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 05:35:47.291030+00:00

For the console pages bench/console.py measures at 1,000,000 purchases / 200,000 users (bench/README.md):
- users (full_name) gin_trgm_ops: the users console's search matches part of a name (ILIKE '%...%'); with
  its other arms (e-mail trigram, references, phone, purchases) each an index look-up, a search no longer
  passes over every user (~250 ms);
- users (created_at) WHERE tier = 'reseller': the overview's reseller count, index-only;
- monnify_events (assigned_at, id) WHERE assigned_at IS NOT NULL: transfers credited by hand, latest first
  (/staff/funding/unmatched scanned every event for them: ~480 ms at 300,000 events).
IF NOT EXISTS, like 0021: on a large production database build them first by hand CONCURRENTLY.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]


def upgrade() -> None:
    op.create_index(
        "ix_monnify_events_assigned_at",
        "monnify_events",
        ["assigned_at", "id"],
        unique=False,
        if_not_exists=True,
        postgresql_where=sa.text("assigned_at IS NOT NULL"),
    )
    op.create_index(
        "ix_users_full_name_trgm",
        "users",
        ["full_name"],
        unique=False,
        if_not_exists=True,
        postgresql_using="gin",
        postgresql_ops={"full_name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_users_resellers",
        "users",
        ["created_at"],
        unique=False,
        if_not_exists=True,
        postgresql_where=sa.text("tier = 'reseller'"),
    )


def downgrade() -> None:
    op.drop_index("ix_users_resellers", table_name="users", postgresql_where=sa.text("tier = 'reseller'"))
    op.drop_index(
        "ix_users_full_name_trgm",
        table_name="users",
        postgresql_using="gin",
        postgresql_ops={"full_name": "gin_trgm_ops"},
    )
    op.drop_index(
        "ix_monnify_events_assigned_at",
        table_name="monnify_events",
        postgresql_where=sa.text("assigned_at IS NOT NULL"),
    )
