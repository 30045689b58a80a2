"""api_callback_deliveries: what became of each reseller completion callback

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 00:30:00+00:00

The callback job is enqueued in Redis after the purchase's transaction commits; if Redis is down at that
moment (or the process dies in between) the enqueue is lost. The delivery job now records each delivery
here, and a cron sweep re-enqueues recently finished API purchases that have no record.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]


def upgrade() -> None:
    op.create_table(
        "api_callback_deliveries",
        sa.Column("purchase_id", sa.GUID(length=16), nullable=False),
        sa.Column("final_status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("delivered_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("gave_up_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column(
            "updated_at", sa.DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_api_callback_deliveries_purchase_id_purchases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("purchase_id", "final_status", name=op.f("pk_api_callback_deliveries")),
    )


def downgrade() -> None:
    op.drop_table("api_callback_deliveries")
