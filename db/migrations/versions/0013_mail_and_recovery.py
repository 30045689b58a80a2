"""mail and recovery: the e-mail outbox, preferences, single-use account links, verified e-mail addresses

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 02:00:00+00:00

- `outgoing_mail`: one row per e-mail (unique `dedupe_key` per event), sent by the worker; `mail_preferences`.
- `account_tokens`: password-reset and e-mail-verification links (only the SHA-256 of each token).
- `users.email_verified_at`. Users that exist before this migration predate e-mail verification: they are
  marked verified (at their sign-up time) so nothing changes for them, their referrers included.
- `referrals.referred_verified_at` (the friend's verification, copied under the referral row's lock) and
  `referrals.funding_withheld_at` (a first transfer that arrived before the friend verified). The trigger
  that opens a referral row now copies the friend's verification time too.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]

OPEN_REFERRAL = """
CREATE OR REPLACE FUNCTION referrals_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.referred_by_id IS NOT NULL THEN
        INSERT INTO referrals (referred_id, referred_verified_at) VALUES (NEW.id, NEW.email_verified_at)
        ON CONFLICT (referred_id) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
"""

OPEN_REFERRAL_0006 = """
CREATE OR REPLACE FUNCTION referrals_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.referred_by_id IS NOT NULL THEN
        INSERT INTO referrals (referred_id) VALUES (NEW.id) ON CONFLICT (referred_id) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.add_column("users", sa.Column("email_verified_at", sa.DateTimeUTC(timezone=True), nullable=True))
    op.execute("UPDATE users SET email_verified_at = created_at")
    op.add_column(
        "referrals", sa.Column("referred_verified_at", sa.DateTimeUTC(timezone=True), nullable=True)
    )
    op.add_column("referrals", sa.Column("funding_withheld_at", sa.DateTimeUTC(timezone=True), nullable=True))
    op.execute(
        "UPDATE referrals r SET referred_verified_at = u.email_verified_at FROM users u"
        " WHERE u.id = r.referred_id"
    )
    op.execute(OPEN_REFERRAL)
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.GUID(length=16), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("expires_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "purpose IN ('password_reset', 'email_verify')", name=op.f("ck_account_tokens_purpose")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )
    op.create_index("ix_account_tokens_user_id", "account_tokens", ["user_id", "purpose"], unique=False)
    op.create_table(
        "outgoing_mail",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False, start=1, increment=1), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=True),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column(
            "context",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("sensitive", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'queued'"), nullable=False),
        sa.Column("subject", sa.String(length=200), server_default=sa.text("''"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("claimed_until", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("sent_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'suppressed', 'failed', 'expired')",
            name=op.f("ck_outgoing_mail_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_outgoing_mail_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_mail")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outgoing_mail_dedupe_key")),
    )
    op.create_index(
        "ix_outgoing_mail_queued",
        "outgoing_mail",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_outgoing_mail_user_id", "outgoing_mail", ["user_id", "id"], unique=False)
    op.create_table(
        "mail_preferences",
        sa.Column("user_id", sa.GUID(length=16), nullable=False),
        sa.Column("funding", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("purchase", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("password", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("api_key", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "updated_at", sa.DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_mail_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_mail_preferences")),
    )


def downgrade() -> None:
    op.drop_table("mail_preferences")
    op.drop_index("ix_outgoing_mail_user_id", table_name="outgoing_mail")
    op.drop_index(
        "ix_outgoing_mail_queued", table_name="outgoing_mail", postgresql_where=sa.text("status = 'queued'")
    )
    op.drop_table("outgoing_mail")
    op.drop_index("ix_account_tokens_user_id", table_name="account_tokens")
    op.drop_table("account_tokens")
    op.execute(OPEN_REFERRAL_0006)
    op.drop_column("referrals", "funding_withheld_at")
    op.drop_column("referrals", "referred_verified_at")
    op.drop_column("users", "email_verified_at")
