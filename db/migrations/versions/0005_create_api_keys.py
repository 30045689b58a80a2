"""create api keys (reseller API credentials)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 13:40:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("callback_secret", sa.String(length=64), nullable=False),
        sa.Column("callback_url", sa.String(length=500), nullable=True),
        sa.Column(
            "allowed_ips",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=120), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_user_id_created_at", "api_keys", ["user_id", "created_at"], unique=False)
    # Purchases made through the API point at the key that made them (keys are revoked, never deleted).
    op.create_foreign_key(
        op.f("fk_purchases_api_key_id_api_keys"),
        "purchases",
        "api_keys",
        ["api_key_id"],
        ["id"],
        ondelete="RESTRICT",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_purchases_api_key_id_api_keys"), "purchases", type_="foreignkey")
    op.drop_index("ix_api_keys_user_id_created_at", table_name="api_keys")
    op.drop_table("api_keys")
