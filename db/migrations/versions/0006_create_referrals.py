"""create referrals: per-referred-user bonus counters and the bonuses paid

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 13:45:00+00:00

Besides the two tables, a trigger on `users` opens the `referrals` row of every user recorded with a
referrer (at sign-up, or if staff ever link one later), whatever path wrote the user; existing referred
users are backfilled. The bonus listeners find (and lock) that row by primary key, so a user without a
referrer costs the purchase path one index probe that finds nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]

OPEN_REFERRAL = """
CREATE FUNCTION referrals_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.referred_by_id IS NOT NULL THEN
        INSERT INTO referrals (referred_id) VALUES (NEW.id) ON CONFLICT (referred_id) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("referred_id", sa.GUID(length=16), nullable=False),
        sa.Column("earned_kobo", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("funding_bonus_at", sa.DateTimeUTC(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint("earned_kobo >= 0", name=op.f("ck_referrals_earned_not_negative")),
        sa.ForeignKeyConstraint(
            ["referred_id"], ["users.id"], name=op.f("fk_referrals_referred_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("referred_id", name=op.f("pk_referrals")),
    )
    op.create_table(
        "referral_bonuses",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False, start=1, increment=1), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("referrer_id", sa.GUID(length=16), nullable=False),
        sa.Column("referred_id", sa.GUID(length=16), nullable=False),
        sa.Column("purchase_id", sa.GUID(length=16), nullable=True),
        sa.Column("amount_kobo", sa.BigInteger(), nullable=False),
        sa.Column("uncollected_kobo", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at", sa.DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "kind IN ('funding', 'purchase', 'clawback')", name=op.f("ck_referral_bonuses_kind")
        ),
        sa.CheckConstraint(
            "(kind = 'clawback' AND amount_kobo <= 0) OR (kind <> 'clawback' AND amount_kobo > 0)",
            name=op.f("ck_referral_bonuses_amount_sign"),
        ),
        sa.CheckConstraint(
            "uncollected_kobo >= 0", name=op.f("ck_referral_bonuses_uncollected_not_negative")
        ),
        sa.CheckConstraint(
            "(kind = 'funding') = (purchase_id IS NULL)", name=op.f("ck_referral_bonuses_purchase_shape")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_referral_bonuses_purchase_id_purchases"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["referred_id"],
            ["users.id"],
            name=op.f("fk_referral_bonuses_referred_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["referrer_id"],
            ["users.id"],
            name=op.f("fk_referral_bonuses_referrer_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_bonuses")),
        sa.UniqueConstraint("key", name=op.f("uq_referral_bonuses_key")),
    )
    op.create_index(
        "ix_referral_bonuses_referrer_id", "referral_bonuses", ["referrer_id", "id"], unique=False
    )
    op.create_index("ix_referral_bonuses_referred_id", "referral_bonuses", ["referred_id"], unique=False)
    op.execute(OPEN_REFERRAL)
    op.execute(
        "CREATE TRIGGER users_open_referral AFTER INSERT OR UPDATE OF referred_by_id ON users"
        " FOR EACH ROW WHEN (NEW.referred_by_id IS NOT NULL) EXECUTE FUNCTION referrals_open()"
    )
    op.execute(
        "INSERT INTO referrals (referred_id) SELECT id FROM users WHERE referred_by_id IS NOT NULL"
        " ON CONFLICT (referred_id) DO NOTHING"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS users_open_referral ON users")
    op.execute("DROP FUNCTION IF EXISTS referrals_open()")
    op.drop_index("ix_referral_bonuses_referred_id", table_name="referral_bonuses")
    op.drop_index("ix_referral_bonuses_referrer_id", table_name="referral_bonuses")
    op.drop_table("referral_bonuses")
    op.drop_table("referrals")
