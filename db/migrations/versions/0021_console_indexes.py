"""indexes for the staff consoles at volume (bench/console.py: 1,000,000 purchases, 200,000 users)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 04:33:11.693397+00:00

Each index serves a console page that otherwise scanned a whole table (figures in bench/README.md):
- purchases (recipient), (phone), (provider_reference): the purchase search's exact arms (an OR of index
  look-ups; request_id is unique already); (created_at, id) WHERE status = 'pending': the oldest pending
  purchase in the counts (the created_at index was walked from its oldest end through the whole table to
  reach the few hundred newest rows that are pending: 0.3-5 s), the needs-action section, ?status=pending;
- users (created_at): the overview's newest sign-ups; users email gin_trgm_ops: "part of an e-mail"
  searches (ILIKE '%...%') in the purchase and funding consoles (and the users console). pg_trgm is a
  trusted extension (PostgreSQL 13+): the database owner running the migrations may create it;
- monnify_events (transaction_reference), (product_reference), (amount_paid_kobo): the funding search
  and a customer's events not credited yet ("credited today" is 0019's partial index);
- reserved_accounts (created_at, id) WHERE status IN ('failed', 'pending'): customers without bank accounts.

Plain CREATE INDEX (Alembic runs each migration in a transaction) locks writes to each table while its
index is built: seconds for these tables at the benchmark's volume. On a production database much larger
than that, build them first by hand with CREATE INDEX CONCURRENTLY (same names and definitions; the
pg_trgm extension first), then run this migration: `IF NOT EXISTS` makes it skip what is there.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_monnify_events_amount_paid_kobo",
        "monnify_events",
        ["amount_paid_kobo"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        "ix_monnify_events_product_reference",
        "monnify_events",
        ["product_reference"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        "ix_monnify_events_transaction_reference",
        "monnify_events",
        ["transaction_reference"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index("ix_purchases_phone", "purchases", ["phone"], unique=False, if_not_exists=True)
    op.create_index(
        "ix_purchases_provider_reference",
        "purchases",
        ["provider_reference"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index("ix_purchases_recipient", "purchases", ["recipient"], unique=False, if_not_exists=True)
    op.create_index(
        "ix_purchases_pending_created_at",
        "purchases",
        ["created_at", "id"],
        unique=False,
        if_not_exists=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_reserved_accounts_not_ready",
        "reserved_accounts",
        ["created_at", "id"],
        unique=False,
        if_not_exists=True,
        postgresql_where=sa.text("status IN ('failed', 'pending')"),
    )
    op.create_index("ix_users_created_at", "users", ["created_at"], unique=False, if_not_exists=True)
    op.create_index(
        "ix_users_email_trgm",
        "users",
        ["email"],
        unique=False,
        if_not_exists=True,
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    )


def downgrade() -> None:
    # pg_trgm stays: dropping an extension other objects may use is for its owner to decide.
    op.drop_index(
        "ix_users_email_trgm",
        table_name="users",
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    )
    op.drop_index("ix_users_created_at", table_name="users")
    op.drop_index(
        "ix_reserved_accounts_not_ready",
        table_name="reserved_accounts",
        postgresql_where=sa.text("status IN ('failed', 'pending')"),
    )
    op.drop_index("ix_purchases_pending_created_at", table_name="purchases")
    op.drop_index("ix_purchases_recipient", table_name="purchases")
    op.drop_index("ix_purchases_provider_reference", table_name="purchases")
    op.drop_index("ix_purchases_phone", table_name="purchases")
    op.drop_index("ix_monnify_events_transaction_reference", table_name="monnify_events")
    op.drop_index("ix_monnify_events_product_reference", table_name="monnify_events")
    op.drop_index("ix_monnify_events_amount_paid_kobo", table_name="monnify_events")
