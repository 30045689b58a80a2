"""Ledger tables: accounts, transactions (one per idempotency key) and their signed entries.

Amounts are integer kobo (BIGINT). An entry's amount is signed: positive raises the account's balance, and
every transaction's entries sum to zero, so the sum over ALL entries is zero too. A customer wallet's
balance is what the platform owes the customer; system accounts (clearing, floats, revenue, ...) mirror it.

Only wallets keep a running balance (O(1) reads, checked >= 0). System accounts keep none: every purchase
touches them, so a running balance there would be a row that serialises the whole platform (invariant 7);
their balance is SUM(entries).

The migration (db/migrations/versions/*_create_ledger_0002.py) adds what SQLAlchemy does not model: the
posting function `ledger_post`, the deferred zero-sum constraint triggers and the triggers that make
transactions and entries append-only. Names here must match it exactly (autogenerate must find no diff).
"""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import UUIDv7AuditBase

ACCOUNT_KINDS = ("wallet", "system")


class LedgerAccount(DefaultBase):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint("kind IN ('wallet', 'system')", name="kind"),
        # A wallet belongs to a user and keeps a running balance; a system account has neither.
        CheckConstraint(
            "(kind = 'wallet' AND user_id IS NOT NULL AND balance IS NOT NULL)"
            " OR (kind = 'system' AND user_id IS NULL AND balance IS NULL)",
            name="wallet_shape",
        ),
        # Last line of defence behind ledger_post's conditional update (invariant 5).
        CheckConstraint("balance >= 0", name="balance_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(start=1, increment=1), primary_key=True)
    # Stable address: "wallet:<user id>" or a system code such as "purchases_in_flight".
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(120), server_default=text("''"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), unique=True, default=None
    )
    balance: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )


class LedgerTransaction(DefaultBase):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        CheckConstraint("(reference_type IS NULL) = (reference_id IS NULL)", name="reference_pair"),
        CheckConstraint("idempotency_key <> ''", name="key_not_empty"),
        Index("ix_ledger_transactions_reference", "reference_type", "reference_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(start=1, increment=1), primary_key=True)
    # e.g. "monnify:<transactionReference>", "purchase:<id>", "refund:<purchase id>".
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    # The business object this transaction belongs to, e.g. ("purchase", "42").
    reference_type: Mapped[str | None] = mapped_column(String(32), default=None)
    reference_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # Who or what posted it: "system", "user:<id>", "staff:<id>", "worker:<job>".
    created_by: Mapped[str] = mapped_column(String(64), server_default=text("'system'"))
    # sha256 of kind + sorted legs, computed by ledger_post: tells "same key, different legs" apart.
    legs_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )


class LedgerEntry(DefaultBase):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        CheckConstraint("balance_after >= 0", name="balance_after_non_negative"),
        # One leg per account per transaction; also the index behind the zero-sum check.
        UniqueConstraint("transaction_id", "account_id"),
        # Statements (keyset on id) and SUM(entries) per account.
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(start=1, increment=1), primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_accounts.id", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(BigInteger)
    # Wallet entries only: the wallet's balance right after this entry (statements without a window sum).
    balance_after: Mapped[int | None] = mapped_column(BigInteger, default=None)


ADJUSTMENT_CREDIT = "credit"
ADJUSTMENT_DEBIT = "debit"
ADJUSTMENT_DIRECTIONS = (ADJUSTMENT_CREDIT, ADJUSTMENT_DEBIT)
ADJUSTMENT_PENDING = "pending_approval"
ADJUSTMENT_POSTED = "posted"
ADJUSTMENT_REJECTED = "rejected"
ADJUSTMENT_STATUSES = (ADJUSTMENT_PENDING, ADJUSTMENT_POSTED, ADJUSTMENT_REJECTED)
ADJUSTMENT_REASON_MAX = 500


class Adjustment(UUIDv7AuditBase):
    """A manual credit or debit of a customer's wallet by finance staff (app/ledger/adjustments.py). Posted
    once, by `adjustment_post` (app/ledger/sql/adjustments.sql), under `adjustment:<id>` against the
    `staff_adjustments` system account. Above ADJUSTMENT_APPROVAL_KOBO it waits for a second person."""

    __tablename__ = "adjustments"
    __table_args__ = (
        CheckConstraint("amount_kobo > 0", name="amount_positive"),
        CheckConstraint("direction IN ('credit', 'debit')", name="direction_known"),
        CheckConstraint("status IN ('pending_approval', 'posted', 'rejected')", name="status_known"),
        CheckConstraint("length(btrim(reason)) > 0", name="reason_given"),
        CheckConstraint(
            "(status = 'posted') = (ledger_transaction_id IS NOT NULL)", name="posted_has_posting"
        ),
        Index("ix_adjustments_status_requested_at", "status", "requested_at"),
        Index("ix_adjustments_user_id", "user_id", "requested_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    direction: Mapped[str] = mapped_column(String(8))
    amount_kobo: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(ADJUSTMENT_REASON_MAX))
    status: Mapped[str] = mapped_column(String(16), default=ADJUSTMENT_PENDING)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), default=None
    )
    requested_by: Mapped[str] = mapped_column(String(254))  # the e-mail at the time
    requested_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), default=None
    )
    decided_by: Mapped[str | None] = mapped_column(String(254), default=None)
    decided_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    decision_note: Mapped[str | None] = mapped_column(String(500), default=None)
    ledger_transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), default=None
    )


__all__ = [
    "ACCOUNT_KINDS",
    "ADJUSTMENT_CREDIT",
    "ADJUSTMENT_DEBIT",
    "ADJUSTMENT_DIRECTIONS",
    "ADJUSTMENT_PENDING",
    "ADJUSTMENT_POSTED",
    "ADJUSTMENT_REASON_MAX",
    "ADJUSTMENT_REJECTED",
    "ADJUSTMENT_STATUSES",
    "Adjustment",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
]
