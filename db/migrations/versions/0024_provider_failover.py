"""provider failover: purchase attempts, the current attempt on the purchase

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 10:50:00+00:00

A purchase may move to another provider (or be sent again after a VTpass 019) only when its provider
definitely placed no order (docs/architecture.md, "Provider failover"). `purchases` keeps the current
attempt (`provider_slug`, `request_id`, now numbered `attempt_no`), with `send_at` for an attempt decided
but not sent yet and `requery_base` for the requery schedule of each attempt; `purchase_attempts` lists the
attempts of a purchase that had more than one (the ended ones and the current). Its `request_id` is unique
like the purchases' own, so a callback about an earlier attempt still finds its purchase.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]


def upgrade() -> None:
    op.add_column(
        "purchases", sa.Column("attempt_no", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )
    op.add_column("purchases", sa.Column("send_at", sa.DateTimeUTC(timezone=True), nullable=True))
    op.add_column(
        "purchases", sa.Column("requery_base", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.create_table(
        "purchase_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("purchase_id", sa.GUID(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("provider_slug", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("started_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("code", sa.String(length=8), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_purchase_attempts_purchase_id_purchases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_attempts")),
        sa.UniqueConstraint("purchase_id", "n", name=op.f("uq_purchase_attempts_purchase_id")),
        sa.UniqueConstraint("request_id", name=op.f("uq_purchase_attempts_request_id")),
    )


def downgrade() -> None:
    op.drop_table("purchase_attempts")
    op.drop_column("purchases", "requery_base")
    op.drop_column("purchases", "send_at")
    op.drop_column("purchases", "attempt_no")
