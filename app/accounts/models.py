"""Users: identity, credentials, tier and the referral link recorded at sign-up."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import UUIDv7AuditBase

TIERS = ("customer", "reseller")


class User(UUIDv7AuditBase):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("tier IN ('customer', 'reseller')", name="tier"),
        CheckConstraint("email = lower(email)", name="email_lower"),
        CheckConstraint("referred_by_id IS NULL OR referred_by_id <> id", name="no_self_referral"),
        Index("ix_users_referred_by_id", "referred_by_id"),
        # The staff consoles: newest sign-ups first, and "part of an e-mail" searches (ILIKE '%...%', served
        # by a trigram index; pg_trgm is created by the migration that added it).
        Index("ix_users_created_at", "created_at"),
        Index(
            "ix_users_email_trgm", "email", postgresql_using="gin", postgresql_ops={"email": "gin_trgm_ops"}
        ),
        # The users console's search by part of a name (trigram), and the overview's reseller count (a small
        # partial index counted index-only, instead of a pass over every user).
        Index(
            "ix_users_full_name_trgm",
            "full_name",
            postgresql_using="gin",
            postgresql_ops={"full_name": "gin_trgm_ops"},
        ),
        Index("ix_users_resellers", "created_at", postgresql_where=text("tier = 'reseller'")),
        # Staff hold exactly one role (app.accounts.staff_roles); customers none. A superuser is an admin.
        CheckConstraint(
            "staff_role IS NULL OR staff_role IN ('support', 'operations', 'finance', 'admin')",
            name="staff_role",
        ),
        CheckConstraint("is_staff = (staff_role IS NOT NULL)", name="staff_has_role"),
        CheckConstraint("NOT is_superuser OR staff_role = 'admin'", name="superuser_is_admin"),
        CheckConstraint("(suspended_at IS NULL) = (suspended_reason IS NULL)", name="suspension_has_reason"),
        # KYC level (app/accounts/kyc.py): 0 none, 1 a BVN or NIN Monnify accepted, 2 both. purchase_open
        # reads it with the row (FOR SHARE) to apply KYC_LIMITS.
        CheckConstraint("kyc_level BETWEEN 0 AND 2", name="kyc_level"),
        Index("ix_users_kyc_level", "kyc_level"),
    )

    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(11), unique=True, default=None)
    full_name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    # Bumped on every password change; sessions carry it, so older sessions stop working.
    password_version: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    pin_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    staff_role: Mapped[str | None] = mapped_column(String(16), default=None)
    tier: Mapped[str] = mapped_column(String(16), default="customer", server_default=text("'customer'"))
    # Stable public id: Monnify's accountReference and the API's account_reference.
    account_reference: Mapped[str] = mapped_column(String(32), unique=True)
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)
    referred_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), default=None
    )
    last_login_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # When the customer proved they own the address (the link e-mailed at sign-up); NULL = not yet.
    email_verified_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )

    # Suspended by staff (fraud, a dispute): no log-in, no web, no API, no new purchases; purchases already
    # in flight still settle. `is_active` stays for accounts that are closed.
    suspended_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    suspended_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    kyc_level: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))
    kyc_level_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    @property
    def display_name(self) -> str:
        return self.full_name or self.email.split("@", 1)[0]


RESET = "password_reset"
VERIFY = "email_verify"
TOKEN_PURPOSES = (RESET, VERIFY)


class AccountToken(UUIDv7AuditBase):
    """A single-use link e-mailed to a user (password reset, e-mail verification). Only the SHA-256 of the
    token is stored; it is used up by a guarded UPDATE (`used_at IS NULL AND expires_at > now()`)."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint(f"purpose IN {TOKEN_PURPOSES!r}", name="purpose"),
        Index("ix_account_tokens_user_id", "user_id", "purpose"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))  # the address the link was sent to
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    used_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


KYC_KINDS = ("bvn", "nin")
KYC_PENDING = "pending"  # stored, Monnify not asked yet or its answer unknown
KYC_VERIFIED = "verified"  # Monnify accepted it (reserved account created or kyc-info updated with it)


class KycDocument(UUIDv7AuditBase):
    """A customer's BVN or NIN (app/accounts/kyc.py): the number encrypted (app/core/encryption.py), a keyed
    fingerprint that keeps one number on one account, and when and how Monnify accepted it."""

    __tablename__ = "kyc_documents"
    __table_args__ = (
        CheckConstraint("kind IN ('bvn', 'nin')", name="kind"),
        CheckConstraint("status IN ('pending', 'verified')", name="status"),
        CheckConstraint("(status = 'verified') = (verified_at IS NOT NULL)", name="verified_has_time"),
        UniqueConstraint("user_id", "kind"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(3))
    number_encrypted: Mapped[str] = mapped_column(String(400))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16), default=KYC_PENDING)
    verified_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    verified_via: Mapped[str | None] = mapped_column(String(32), default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)


__all__ = [
    "KYC_KINDS",
    "KYC_PENDING",
    "KYC_VERIFIED",
    "RESET",
    "TIERS",
    "TOKEN_PURPOSES",
    "VERIFY",
    "AccountToken",
    "KycDocument",
    "User",
]
