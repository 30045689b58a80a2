"""Bulk orders: one list of airtime / data top-ups confirmed once, each line bought as a purchase of its own
(docs/architecture.md, "Bulk orders"). The lines hold what was asked, what it cost at confirmation and
how far it got; the purchases (and the ledger) hold the money."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import UUIDv7AuditBase

DRAFT, RUNNING, DONE, CANCELLED = "draft", "running", "done", "cancelled"
BULK_STATUSES = (DRAFT, RUNNING, DONE, CANCELLED)
# Line states: queued (not tried yet), sent (being bought: a purchase may exist under its key), then the
# purchase's status when it was bought (successful | failed | pending), failed with no purchase (refused:
# insufficient balance, ...), or skipped (the order was cancelled before it was reached).
QUEUED, SENT, SKIPPED = "queued", "sent", "skipped"
LINE_STATUSES = (QUEUED, SENT, "successful", "failed", "pending", "reversed", SKIPPED)
BULK_KINDS = ("airtime", "data")


class BulkOrder(UUIDv7AuditBase):
    __tablename__ = "bulk_orders"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'running', 'done', 'cancelled')", name="status"),
        CheckConstraint("kind IN ('airtime', 'data')", name="kind"),
        CheckConstraint("channel IN ('web', 'api')", name="channel"),
        CheckConstraint("line_count BETWEEN 1 AND 10000", name="line_count"),
        CheckConstraint("total_kobo >= 0", name="total_not_negative"),
        # The API's Idempotency-Key: one bulk order per key and user.
        UniqueConstraint("user_id", "idempotency_key"),
        # The list page and the same-content check (newest first per user).
        Index("ix_bulk_orders_user_created", "user_id", "created_at"),
        # The sweep: running orders only.
        Index("ix_bulk_orders_running", "lease_until", postgresql_where=text("status = 'running'")),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    content_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[str] = mapped_column(String(16))
    line_count: Mapped[int] = mapped_column(Integer)
    total_kobo: Mapped[int] = mapped_column(BigInteger)  # at the buyer's tier price when it was checked
    confirmed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # The runner holding the order (bulk_runner.py): renewed while it works, free once it lapses.
    lease_owner: Mapped[uuid.UUID | None] = mapped_column(default=None)
    lease_until: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    runs: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class BulkOrderLine(UUIDv7AuditBase):
    __tablename__ = "bulk_order_lines"
    __table_args__ = (
        UniqueConstraint("bulk_id", "line_no"),  # also the runner's and the pages' index (in line order)
        CheckConstraint(
            "status IN ('queued', 'sent', 'successful', 'failed', 'pending', 'reversed', 'skipped')",
            name="status",
        ),
        CheckConstraint("line_no >= 1", name="line_no"),
        CheckConstraint("price_kobo >= 0", name="price_not_negative"),
        CheckConstraint("amount_kobo IS NOT NULL OR variation_code IS NOT NULL", name="product"),
    )

    bulk_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bulk_orders.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)  # 1-based, in the order given
    phone: Mapped[str] = mapped_column(String(20))
    service_id: Mapped[str] = mapped_column(String(64))
    amount_kobo: Mapped[int | None] = mapped_column(BigInteger, default=None)  # airtime face value
    variation_code: Mapped[str | None] = mapped_column(String(100), default=None)  # data plan
    product_name: Mapped[str] = mapped_column(String(200))
    price_kobo: Mapped[int] = mapped_column(BigInteger)  # the buyer's price when the order was checked
    status: Mapped[str] = mapped_column(String(16))
    purchase_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("purchases.id", ondelete="RESTRICT"), default=None
    )
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # When its purchase was started: the same number and service wait 30 s between lines (VTpass 019).
    sent_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


__all__ = [
    "BULK_KINDS",
    "BULK_STATUSES",
    "CANCELLED",
    "DONE",
    "DRAFT",
    "LINE_STATUSES",
    "QUEUED",
    "RUNNING",
    "SENT",
    "SKIPPED",
    "BulkOrder",
    "BulkOrderLine",
]
