"""`PurchaseView`: the immutable snapshot of a purchase that the purchase service returns to its callers.

A plain frozen dataclass rather than an ORM instance: callers (pages, API, workers) only read it, it can
never lazy-load or be flushed by accident, and building it from a Core row is far cheaper than ORM loading
on the hot purchase path. Field names are the `purchases` columns.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.vtu.models import FINAL_STATUSES, Purchase

purchases_table: Table = Purchase.__table__  # type: ignore[assignment]
# What the purchase path executes on: the hot path uses a plain AsyncConnection (Core statements only),
# which skips the ORM session's per-statement bookkeeping; other callers may pass a session.
Executor = AsyncSession | AsyncConnection


@dataclass(frozen=True, slots=True)
class PurchaseView:
    id: uuid.UUID
    user_id: uuid.UUID
    channel: str
    service_id: str
    kind: str
    recipient: str
    phone: str
    variation_code: str | None
    subscription_type: str | None
    product_name: str
    customer_name: str | None
    amount_kobo: int  # what the wallet was charged
    face_amount_kobo: int  # what the provider delivers
    cost_kobo: int  # what the provider takes from our float
    status: str
    needs_attention: bool
    attention_reason: str | None
    provider_slug: str
    request_id: str  # sent to the provider; the API's `reference`
    provider_reference: str | None
    provider_code: str | None
    provider_message: str | None
    token: str | None
    units: str | None
    attempts: int
    next_requery_at: datetime.datetime | None
    exchanges: list[dict[str, Any]]
    paid_at: datetime.datetime | None
    completed_at: datetime.datetime | None
    api_key_id: uuid.UUID | None
    idempotency_key: str | None
    request_hash: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    attempt_no: int = 1  # the current provider attempt (app/vtu/failover.py)
    send_at: datetime.datetime | None = None  # the current attempt is not sent yet: it goes out then
    requery_base: int = 0  # requeries done before the current attempt
    pins_ciphertext: str | None = None  # exam PINs, encrypted: read them with app.vtu.exam.pins_of
    quantity: int | None = None  # exam PINs bought at once

    @property
    def has_pins(self) -> bool:
        return self.pins_ciphertext is not None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def margin_kobo(self) -> int:
        return self.amount_kobo - self.cost_kobo

    @property
    def reference(self) -> str:
        return self.request_id

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> PurchaseView:
        return cls(**{name: row[name] for name in FIELD_NAMES if name in row})

    @classmethod
    def from_row(cls, row: Any) -> PurchaseView:
        return cls.from_mapping(row._mapping)


FIELD_NAMES = tuple(f.name for f in fields(PurchaseView))
COLUMNS = tuple(purchases_table.c[name] for name in FIELD_NAMES)
SELECT_PURCHASE = select(*COLUMNS)  # add .where(...) for a query that yields PurchaseView rows

__all__ = [
    "COLUMNS",
    "FIELD_NAMES",
    "SELECT_PURCHASE",
    "Executor",
    "PurchaseView",
    "purchases_table",
]
