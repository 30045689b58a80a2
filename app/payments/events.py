"""Typed view of a verified Monnify webhook body.

Only a SUCCESSFUL_TRANSACTION is strict, and only about what crediting needs; everything else is read
leniently because real payloads vary (string amounts, `{}` instead of a list, missing optional fields).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.core.lagos import LAGOS
from app.payments.money import AmountError, funding_fee_kobo, naira_to_kobo

__all__ = [
    "SUCCESSFUL_TRANSACTION",
    "MalformedEvent",
    "MonnifyEvent",
    "funding_fee_kobo",
    "parse_monnify_datetime",
    "parse_monnify_event",
]

SUCCESSFUL_TRANSACTION = "SUCCESSFUL_TRANSACTION"
# Monnify writes local Lagos time without an offset; Nigeria (WAT) has no daylight saving.
_OTHER_ID_KEYS = ("reference", "refundReference", "settlementReference", "paymentReference")
_DATE_FORMATS = ("%d/%m/%Y %I:%M:%S %p", "%d/%m/%Y %H:%M:%S")


class MalformedEvent(ValueError):
    """A webhook body that lacks (or has an invalid) field needed to act on it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MonnifyEvent:
    event_type: str
    # Stable id for deduplication: transactionReference, else another Monnify reference, else a body hash.
    dedupe_reference: str
    transaction_reference: str | None
    payment_reference: str | None
    product_type: str | None
    product_reference: str | None
    amount_paid_kobo: int | None
    settlement_amount_kobo: int | None
    total_payable_kobo: int | None
    payment_status: str | None
    paid_on: datetime | None
    payment_method: str | None
    customer_email: str | None
    raw: dict[str, Any]
    payment_sources: tuple[dict[str, Any], ...] = ()

    @property
    def is_successful_transaction(self) -> bool:
        return self.event_type == SUCCESSFUL_TRANSACTION


def parse_monnify_datetime(value: object) -> datetime | None:
    """Parse Monnify's date formats into an aware datetime (Lagos time when no offset is given)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=LAGOS)


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # some references arrive as JSON numbers
    return None


def _optional_kobo(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return naira_to_kobo(value)
    except AmountError:
        return None  # informational only; crediting never relies on these


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sources(value: object) -> tuple[dict[str, Any], ...]:
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, dict))
    if isinstance(value, dict) and value:  # a single source object instead of a list
        return (value,)
    return ()


def _body_hash(payload: dict[str, Any], raw_body: bytes | None) -> str:
    if raw_body is None:
        raw_body = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(raw_body).hexdigest()


def parse_monnify_event(payload: object, raw_body: bytes | None = None) -> MonnifyEvent:
    """Read a decoded, signature-verified webhook body. `raw_body` feeds the fallback dedupe hash."""
    if not isinstance(payload, dict):
        raise MalformedEvent("body is not a JSON object")
    event_type = _text(payload.get("eventType"))
    if event_type is None:
        raise MalformedEvent("eventType is missing")
    data = _dict(payload.get("eventData"))
    successful = event_type == SUCCESSFUL_TRANSACTION
    if successful and not data:
        raise MalformedEvent("eventData is missing")

    transaction_reference = _text(data.get("transactionReference"))
    payment_reference = _text(data.get("paymentReference"))
    product = _dict(data.get("product"))
    product_reference = _text(product.get("reference"))
    customer = _dict(data.get("customer"))

    amount_paid_kobo: int | None
    if successful:
        if transaction_reference is None:
            raise MalformedEvent("eventData.transactionReference is missing")
        if product_reference is None:
            raise MalformedEvent("eventData.product.reference is missing")
        if data.get("amountPaid") in (None, ""):
            raise MalformedEvent("eventData.amountPaid is missing")
        try:
            amount_paid_kobo = naira_to_kobo(data["amountPaid"])
        except AmountError as exc:
            raise MalformedEvent(f"eventData.amountPaid is invalid: {exc}") from exc
    else:
        amount_paid_kobo = _optional_kobo(data.get("amountPaid"))

    # Other event families name their id differently (disbursement, refund, settlement).
    other_ids = (_text(data.get(key)) for key in _OTHER_ID_KEYS)
    dedupe = transaction_reference or next((i for i in other_ids if i), None) or _body_hash(payload, raw_body)
    return MonnifyEvent(
        event_type=event_type,
        dedupe_reference=dedupe,
        transaction_reference=transaction_reference,
        payment_reference=payment_reference,
        product_type=_text(product.get("type")),
        product_reference=product_reference,
        amount_paid_kobo=amount_paid_kobo,
        settlement_amount_kobo=_optional_kobo(data.get("settlementAmount")),
        total_payable_kobo=_optional_kobo(data.get("totalPayable")),
        payment_status=_text(data.get("paymentStatus")),
        paid_on=parse_monnify_datetime(data.get("paidOn")),
        payment_method=_text(data.get("paymentMethod")),
        customer_email=_text(customer.get("email")),
        raw=payload,
        payment_sources=_sources(data.get("paymentSourceInformation")),
    )
