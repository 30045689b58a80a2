"""bulk orders: bulk_orders and bulk_order_lines

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 10:40:00+00:00

Bulk airtime / data orders (app/vtu/bulk.py, docs/architecture.md "Bulk orders"). Each line becomes a purchase
of its own (idempotency key `bulk:<bulk id>:<line no>`); money moves only through those purchases. The
application role gets SELECT / INSERT / UPDATE through the schema's default privileges (app/core/roles.py):
no DELETE is needed (a draft that is not confirmed is cancelled, not deleted).
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_orders",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("api_key_id", GUID(length=16), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("total_kobo", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("finished_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("lease_owner", GUID(length=16), nullable=True),
        sa.Column("lease_until", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("runs", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'running', 'done', 'cancelled')", name=op.f("ck_bulk_orders_status")
        ),
        sa.CheckConstraint("kind IN ('airtime', 'data')", name=op.f("ck_bulk_orders_kind")),
        sa.CheckConstraint("channel IN ('web', 'api')", name=op.f("ck_bulk_orders_channel")),
        sa.CheckConstraint("line_count BETWEEN 1 AND 10000", name=op.f("ck_bulk_orders_line_count")),
        sa.CheckConstraint("total_kobo >= 0", name=op.f("ck_bulk_orders_total_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_bulk_orders_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_orders")),
        sa.UniqueConstraint("user_id", "idempotency_key", name=op.f("uq_bulk_orders_user_id")),
    )
    op.create_index("ix_bulk_orders_user_created", "bulk_orders", ["user_id", "created_at"], unique=False)
    op.create_index(
        "ix_bulk_orders_running",
        "bulk_orders",
        ["lease_until"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "bulk_order_lines",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("bulk_id", GUID(length=16), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("amount_kobo", sa.BigInteger(), nullable=True),
        sa.Column("variation_code", sa.String(length=100), nullable=True),
        sa.Column("product_name", sa.String(length=200), nullable=False),
        sa.Column("price_kobo", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("purchase_id", GUID(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sent_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'successful', 'failed', 'pending', 'reversed', 'skipped')",
            name=op.f("ck_bulk_order_lines_status"),
        ),
        sa.CheckConstraint("line_no >= 1", name=op.f("ck_bulk_order_lines_line_no")),
        sa.CheckConstraint("price_kobo >= 0", name=op.f("ck_bulk_order_lines_price_not_negative")),
        sa.CheckConstraint(
            "amount_kobo IS NOT NULL OR variation_code IS NOT NULL", name=op.f("ck_bulk_order_lines_product")
        ),
        sa.ForeignKeyConstraint(
            ["bulk_id"],
            ["bulk_orders.id"],
            name=op.f("fk_bulk_order_lines_bulk_id_bulk_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_bulk_order_lines_purchase_id_purchases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_order_lines")),
        sa.UniqueConstraint("bulk_id", "line_no", name=op.f("uq_bulk_order_lines_bulk_id")),
    )


def downgrade() -> None:
    op.drop_table("bulk_order_lines")
    op.drop_index(
        "ix_bulk_orders_running", table_name="bulk_orders", postgresql_where=sa.text("status = 'running'")
    )
    op.drop_index("ix_bulk_orders_user_created", table_name="bulk_orders")
    op.drop_table("bulk_orders")
