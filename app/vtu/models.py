"""Catalog (plans, price rules, plan price history) and purchases.

Money columns are BIGINT kobo. A purchase row is the source of truth for what was sold and what the provider
said; the ledger holds the money. Status only moves through guarded updates in app/vtu/transitions.py.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import BigIntAuditBase, UUIDv7AuditBase

PENDING = "pending"
SUCCESSFUL = "successful"
FAILED = "failed"
REVERSED = "reversed"
STATUSES = (PENDING, SUCCESSFUL, FAILED, REVERSED)
FINAL_STATUSES = frozenset({SUCCESSFUL, FAILED, REVERSED})
CHANNELS = ("web", "api")
KINDS = ("airtime", "data", "electricity", "cable", "exam")
TIERS = ("customer", "reseller")


class Plan(UUIDv7AuditBase):
    """A provider variation (data bundle, TV bouquet). Never deleted: vanished plans go inactive."""

    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("provider_slug", "service_id", "variation_code"),
        CheckConstraint("provider_price_kobo >= 0", name="price_not_negative"),
    )

    provider_slug: Mapped[str] = mapped_column(String(16))
    service_id: Mapped[str] = mapped_column(String(64))
    variation_code: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    provider_price_kobo: Mapped[int] = mapped_column(BigInteger)
    fixed_price: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Taken off sale by staff: a sync never puts it back on sale (only staff do, which clears this).
    staff_hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Staff-created plans are never deactivated by a sync that does not list them (source = "staff").
    source: Mapped[str] = mapped_column(String(16), default="sync", server_default=text("'sync'"))
    last_synced_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class PlanPriceChange(BigIntAuditBase):
    """History of provider price changes seen by plan sync (or made by staff), for margin questions later."""

    __tablename__ = "plan_price_changes"
    __table_args__ = (Index("ix_plan_price_changes_plan_id", "plan_id", "id"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    old_price_kobo: Mapped[int] = mapped_column(BigInteger)
    new_price_kobo: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16), default="sync")


class PriceRule(UUIDv7AuditBase):
    """Selling price for a tier: a whole service (variation_code '') or one plan; fixed price or discount.

    The most specific active rule wins (plan over service); with none, app.vtu.pricing's defaults apply.
    """

    __tablename__ = "price_rules"
    __table_args__ = (
        UniqueConstraint("tier", "service_id", "variation_code"),
        CheckConstraint("tier IN ('customer', 'reseller')", name="tier"),
        CheckConstraint(
            "(fixed_price_kobo IS NULL) <> (discount_bps IS NULL)", name="fixed_price_xor_discount"
        ),
        CheckConstraint("fixed_price_kobo IS NULL OR fixed_price_kobo > 0", name="fixed_price_positive"),
        CheckConstraint("discount_bps IS NULL OR discount_bps BETWEEN 0 AND 10000", name="discount_range"),
    )

    tier: Mapped[str] = mapped_column(String(16))
    service_id: Mapped[str] = mapped_column(String(64))
    variation_code: Mapped[str] = mapped_column(String(100), default="", server_default=text("''"))
    fixed_price_kobo: Mapped[int | None] = mapped_column(BigInteger, default=None)
    discount_bps: Mapped[int | None] = mapped_column(Integer, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class Purchase(UUIDv7AuditBase):
    """One sale. `amount_kobo` is what the wallet was charged; `face_amount_kobo` what the provider delivers;
    `cost_kobo` what the provider is expected to take from our float (margin = amount - cost)."""

    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("request_id"),
        # Only API purchases carry a key: web purchases add nothing to this index.
        Index(
            "uq_purchases_user_id_idempotency_key",
            "user_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        CheckConstraint("status IN ('pending', 'successful', 'failed', 'reversed')", name="status"),
        CheckConstraint("channel IN ('web', 'api')", name="channel"),
        CheckConstraint("kind IN ('airtime', 'data', 'electricity', 'cable', 'exam')", name="kind"),
        CheckConstraint("amount_kobo > 0", name="amount_positive"),
        CheckConstraint("quantity IS NULL OR quantity BETWEEN 1 AND 10", name="quantity_range"),
        CheckConstraint("face_amount_kobo > 0 AND cost_kobo >= 0", name="face_and_cost"),
        CheckConstraint("(status = 'pending') = (completed_at IS NULL)", name="completed_when_final"),
        Index("ix_purchases_user_id_created_at", "user_id", "created_at"),
        # The sweep's scan: only pending rows, soonest first.
        Index(
            "ix_purchases_pending_requery",
            "next_requery_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_purchases_needs_attention", "created_at", postgresql_where=text("needs_attention")),
        # The staff console (app/dashboard): the list newest first, today's figures.
        Index("ix_purchases_created_at_id", "created_at", "id"),
        Index("ix_purchases_completed_at", "completed_at"),
        # The console's search (purchase_queries.search_clause): exact recipient / contact phone / provider
        # reference (request_id is unique already); each arm of its OR gets an index (a bitmap OR).
        Index("ix_purchases_recipient", "recipient"),
        Index("ix_purchases_phone", "phone"),
        Index("ix_purchases_provider_reference", "provider_reference"),
        # Pending purchases by age (the oldest pending in the counts, the "needs action" section, the
        # pending filter): they are the newest few hundred rows, so the created_at index above would be
        # walked from the oldest end through the whole table to find them.
        Index(
            "ix_purchases_pending_created_at", "created_at", "id", postgresql_where=text("status = 'pending'")
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    channel: Mapped[str] = mapped_column(String(8))
    service_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(20))  # phone (airtime/data), meter or smartcard number
    phone: Mapped[str] = mapped_column(String(20))  # contact phone sent to the provider
    variation_code: Mapped[str | None] = mapped_column(String(100), default=None)  # plan, or prepaid/postpaid
    subscription_type: Mapped[str | None] = mapped_column(String(16), default=None)  # cable: change|renew
    product_name: Mapped[str] = mapped_column(String(200), default="")
    customer_name: Mapped[str | None] = mapped_column(String(200), default=None)  # from merchant-verify
    amount_kobo: Mapped[int] = mapped_column(BigInteger)
    face_amount_kobo: Mapped[int] = mapped_column(BigInteger)
    cost_kobo: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, server_default=text("'pending'"))
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    attention_reason: Mapped[str | None] = mapped_column(Text, default=None)
    provider_slug: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(40))
    provider_reference: Mapped[str | None] = mapped_column(String(64), default=None)
    provider_code: Mapped[str | None] = mapped_column(String(8), default=None)  # last code seen
    provider_message: Mapped[str | None] = mapped_column(Text, default=None)
    token: Mapped[str | None] = mapped_column(String(128), default=None)
    units: Mapped[str | None] = mapped_column(String(64), default=None)
    # Exam PINs and serials delivered (JSON list), encrypted at rest (app/core/encryption.py); written by
    # purchase_deliver together with the delivery; read only for the owner (app/vtu/exam.py).
    pins_ciphertext: Mapped[str | None] = mapped_column(Text, default=None)
    # Exam PINs bought in this purchase (1-10; NULL for other kinds): every attempt sends the same order.
    quantity: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))  # requeries done
    # Provider failover (docs/architecture.md, "Provider failover"): `provider_slug` + `request_id` are the
    # CURRENT attempt, number `attempt_no`; earlier ones are in purchase_attempts. `send_at`: the current
    # attempt is not sent yet and goes out at that time (a failover, or a VTpass 019 hold); whoever claims
    # it (clearing send_at) sends its /pay. `requery_base`: requeries done before the current attempt (the
    # requery schedule restarts for each attempt; `attempts` keeps counting, so job keys never repeat).
    attempt_no: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    send_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    requery_base: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_requery_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    # Every provider request/response (redacted), oldest first; appended, never rewritten.
    exchanges: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    paid_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    completed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # Reseller API: the key used and the client's Idempotency-Key + a hash of the request body.
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="RESTRICT"), default=None
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def margin_kobo(self) -> int:
        return self.amount_kobo - self.cost_kobo


class PurchaseAttempt(BigIntAuditBase):
    """One provider attempt of a purchase that was failed over or held (VTpass 019): a purchase sent once
    has no rows here. Written when the purchase moves to its next attempt: the attempt that ended (its
    `outcome` says why: nothing_placed or held) and the new one (outcome NULL while it is the current one;
    its result is then the purchase's own status)."""

    __tablename__ = "purchase_attempts"
    __table_args__ = (
        UniqueConstraint("purchase_id", "n"),
        UniqueConstraint("request_id"),
    )

    purchase_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("purchases.id", ondelete="RESTRICT"))
    n: Mapped[int] = mapped_column(Integer)
    provider_slug: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    ended_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    code: Mapped[str | None] = mapped_column(String(8), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)


__all__ = [
    "CHANNELS",
    "FAILED",
    "FINAL_STATUSES",
    "KINDS",
    "PENDING",
    "REVERSED",
    "STATUSES",
    "SUCCESSFUL",
    "Plan",
    "PlanPriceChange",
    "PriceRule",
    "Purchase",
    "PurchaseAttempt",
]
