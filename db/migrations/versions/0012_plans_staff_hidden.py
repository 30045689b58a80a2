"""plans.staff_hidden: a plan staff took off sale stays off sale through provider syncs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 01:15:00+00:00

A sync reactivates every synced plan the provider still lists; without a record of the staff decision, a
plan taken off sale (wrong price upstream, a bundle the network is failing) came back on the next sync.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "plans", sa.Column("staff_hidden", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )


def downgrade() -> None:
    op.drop_column("plans", "staff_hidden")
