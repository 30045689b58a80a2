"""Referral tables: one row per referred user (the cap counter, also the per-user lock) and one row per
bonus or claw-back (the exactly-once record, keyed like its ledger transaction).

The migration (db/migrations/versions/*_create_referrals_0006.py) adds what SQLAlchemy does not model: the
trigger on `users` that opens a `referrals` row whenever a user is created (or later linked) with a
referrer, so every path that records a referrer -- web sign-up ?ref=, `vtu users create --referrer`, raw
SQL -- gets one.
"""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

FUNDING = "funding"
PURCHASE = "purchase"
CLAWBACK = "clawback"
BONUS_KINDS = (FUNDING, PURCHASE, CLAWBACK)


class Referral(DefaultBase):
    """A referred user, seen from the bonus side. Every bonus for them is decided under a lock on this row
    (per referred user: never a platform-wide hot row), so the cap holds however many events race."""

    __tablename__ = "referrals"
    __table_args__ = (CheckConstraint("earned_kobo >= 0", name="earned_not_negative"),)

    referred_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True
    )
    # Paid to the referrer for this user so far, net of claw-backs (what the cap is checked against).
    earned_kobo: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # When the one funding bonus was paid (NULL: not yet; later transfers skip the row lock).
    funding_bonus_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    # A copy of the referred user's users.email_verified_at, written under this row's lock, so a bonus
    # decision (made under the same lock) and the verification never miss each other. Bonuses are only
    # paid once it is set.
    referred_verified_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    # A qualifying first transfer arrived before the friend verified their e-mail: the funding bonus is
    # withheld and paid (under the same key) when they verify.
    funding_withheld_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )


class ReferralBonus(DefaultBase):
    """One bonus (or claw-back) as it was paid. `key` is also the ledger transaction's idempotency key;
    inserting it (ON CONFLICT DO NOTHING) is what makes a replayed event pay nothing."""

    __tablename__ = "referral_bonuses"
    __table_args__ = (
        CheckConstraint(f"kind IN {BONUS_KINDS!r}", name="kind"),
        CheckConstraint(
            "(kind = 'clawback' AND amount_kobo <= 0) OR (kind <> 'clawback' AND amount_kobo > 0)",
            name="amount_sign",
        ),
        CheckConstraint("uncollected_kobo >= 0", name="uncollected_not_negative"),
        CheckConstraint("(kind = 'funding') = (purchase_id IS NULL)", name="purchase_shape"),
        Index("ix_referral_bonuses_referrer_id", "referrer_id", "id"),
        Index("ix_referral_bonuses_referred_id", "referred_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(start=1, increment=1), primary_key=True)
    # referral:funding:<referred id> | referral:purchase:<purchase id> | referral:clawback:<purchase id>
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    referrer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    referred_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    purchase_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("purchases.id", ondelete="RESTRICT"), default=None
    )
    # Credited to the referrer (> 0), or taken back from them (<= 0, claw-backs).
    amount_kobo: Mapped[int] = mapped_column(BigInteger)
    # Claw-backs only: the part the referrer had already spent, flagged for staff instead of taken.
    uncollected_kobo: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )


__all__ = ["BONUS_KINDS", "CLAWBACK", "FUNDING", "PURCHASE", "Referral", "ReferralBonus"]
