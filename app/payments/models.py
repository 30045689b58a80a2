"""Funding records: each customer's Monnify reserved accounts and every verified webhook we received."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.models import BigIntAuditBase, UUIDv7AuditBase

# Reservation states: requested from Monnify, or waiting for a retry after Monnify failed.
RESERVATION_PENDING = "pending"
RESERVATION_ACTIVE = "active"
RESERVATION_FAILED = "failed"

# Event states. `received` and `failed` are retried from the stored row by the worker.
EVENT_RECEIVED = "received"
EVENT_CREDITED = "credited"
EVENT_IGNORED = "ignored"  # verified but nothing to credit (other event types, duplicates of a credit)
EVENT_UNMATCHED = "unmatched"  # no customer owns product.reference, or malformed: staff must look
EVENT_REJECTED = "rejected"  # Monnify's own status says it was not paid
EVENT_FAILED = "failed"  # processing raised; retried with back-off


class ReservedAccount(UUIDv7AuditBase):
    """One row per customer: the reservation with Monnify and its state."""

    __tablename__ = "reserved_accounts"
    __table_args__ = (
        # The funding console's "customers without bank accounts": failed, or pending too long.
        Index(
            "ix_reserved_accounts_not_ready",
            "created_at",
            "id",
            postgresql_where=text("status IN ('failed', 'pending')"),
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), unique=True)
    account_reference: Mapped[str] = mapped_column(String(64), unique=True)
    account_name: Mapped[str] = mapped_column(String(120), default="")
    reservation_reference: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(16), default=RESERVATION_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    banks: Mapped[list[ReservedBankAccount]] = relationship(
        back_populates="reservation", lazy="selectin", order_by="ReservedBankAccount.bank_name"
    )


class ReservedBankAccount(UUIDv7AuditBase):
    """A bank account number Monnify reserved for the customer (usually two or three banks)."""

    __tablename__ = "reserved_bank_accounts"
    __table_args__ = (Index("ix_reserved_bank_accounts_reservation_id", "reservation_id"),)

    reservation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reserved_accounts.id", ondelete="RESTRICT"))
    bank_code: Mapped[str] = mapped_column(String(16))
    bank_name: Mapped[str] = mapped_column(String(80))
    account_number: Mapped[str] = mapped_column(String(20), unique=True)
    reservation: Mapped[ReservedAccount] = relationship(back_populates="banks")


class MonnifyEvent(BigIntAuditBase):
    """A webhook whose signature verified, stored before anything else happens (the retry source)."""

    __tablename__ = "monnify_events"
    __table_args__ = (
        Index("ix_monnify_events_retry", "status", "next_attempt_at"),
        Index("ix_monnify_events_user_id", "user_id", "id"),
        # The funding console (app/dashboard/funding_queries.py): search by Monnify's reference, by account
        # reference (also a customer's events not credited yet) or by amount; "credited today".
        Index("ix_monnify_events_transaction_reference", "transaction_reference"),
        Index("ix_monnify_events_product_reference", "product_reference"),
        Index("ix_monnify_events_amount_paid_kobo", "amount_paid_kobo"),
        Index(
            "ix_monnify_events_credited_at",
            "processed_at",
            postgresql_where=text("status = 'credited'"),
        ),
        # Transfers credited by hand, the latest first (/staff/funding/unmatched): a few rows among many.
        Index(
            "ix_monnify_events_assigned_at",
            "assigned_at",
            "id",
            postgresql_where=text("assigned_at IS NOT NULL"),
        ),
    )

    # eventType + ":" + transactionReference (or another stable reference): one row per real event.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    transaction_reference: Mapped[str | None] = mapped_column(String(120), default=None)
    product_reference: Mapped[str | None] = mapped_column(String(120), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    remote_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(16), default=EVENT_RECEIVED)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), default=None
    )
    amount_paid_kobo: Mapped[int | None] = mapped_column(BigInteger, default=None)
    credited_kobo: Mapped[int | None] = mapped_column(BigInteger, default=None)
    fee_kobo: Mapped[int | None] = mapped_column(BigInteger, default=None)
    ledger_transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), default=None
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    processed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # An unmatched transfer credited by hand (`monnify_assign`): who, when and why (also in the audit log).
    assigned_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), default=None
    )
    assigned_by: Mapped[str | None] = mapped_column(String(254), default=None)  # e-mail or "cli:<user>"
    assigned_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    assignment_reason: Mapped[str | None] = mapped_column(String(500), default=None)
