"""beneficiaries: saved phones, meters and smartcards

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 07:26:30.369419+00:00

The recipients customers save on the buy forms (app/vtu/beneficiaries.py). The unique (user_id, kind,
recipient) is also the index of every read (all by user). The application role may DELETE these rows
(app/core/roles.py): a customer deletes their own saved numbers.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]


def upgrade() -> None:
    op.create_table(
        "beneficiaries",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=20), nullable=False),
        sa.Column("meter_type", sa.String(length=16), nullable=True),
        sa.Column("label", sa.String(length=40), server_default=sa.text("''"), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=True),
        sa.Column("last_used_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('phone', 'meter', 'smartcard')", name=op.f("ck_beneficiaries_kind")),
        sa.CheckConstraint(
            "meter_type IS NULL OR meter_type IN ('prepaid', 'postpaid')",
            name=op.f("ck_beneficiaries_meter_type"),
        ),
        sa.CheckConstraint("char_length(label) <= 40", name=op.f("ck_beneficiaries_label_length")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_beneficiaries_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_beneficiaries")),
        sa.UniqueConstraint("user_id", "kind", "recipient", name=op.f("uq_beneficiaries_user_id")),
    )


def downgrade() -> None:
    op.drop_table("beneficiaries")
