"""indexes for the staff purchase console

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:00:00+00:00

/staff/purchases lists every purchase newest first (keyset on created_at, id) and its counts block (polled
every 30 s) sums today's purchases by created_at and today's settlements by completed_at. Without these
they are full scans of a table that grows by every sale.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_purchases_created_at_id", "purchases", ["created_at", "id"], unique=False)
    op.create_index("ix_purchases_completed_at", "purchases", ["completed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_purchases_completed_at", table_name="purchases")
    op.drop_index("ix_purchases_created_at_id", table_name="purchases")
