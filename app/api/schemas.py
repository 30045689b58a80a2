"""What goes over the wire: response shapes (msgspec structs, also the OpenAPI schemas) and the strict
parsing of request bodies from raw bytes.

Bodies are parsed here rather than by Litestar because the contract is strict where Litestar is lax: an
`amount_kobo` must be a JSON integer (a string, float or bool is a 400), unknown fields and duplicate keys
are refused, and every problem is reported per field in one 400.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import msgspec

from app.api.errors import ApiError, invalid
from app.vtu.orders import NO_SUBSCRIPTION_TYPE, PurchaseRequest
from app.vtu.providers.catalog import ServiceKind, get_service
from app.vtu.views import PurchaseView

MAX_BODY_BYTES = 16 * 1024
IDEMPOTENCY_KEY_MAX = 255
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, no spaces

# Which fields each kind of service takes (DESIGN.md "Public contracts").
PURCHASE_FIELDS: dict[ServiceKind, tuple[str, ...]] = {
    ServiceKind.AIRTIME: ("service_id", "phone", "amount_kobo"),
    ServiceKind.DATA: ("service_id", "phone", "variation_code"),
    ServiceKind.ELECTRICITY: ("service_id", "meter_number", "meter_type", "amount_kobo", "phone"),
    ServiceKind.CABLE: ("service_id", "smartcard_number", "variation_code", "subscription_type", "phone"),
}
ALL_PURCHASE_FIELDS = frozenset(f for fields in PURCHASE_FIELDS.values() for f in fields)
VERIFY_FIELDS = ("service_id", "customer_number", "type")


# -- responses ------------------------------------------------------------------------------------------
class FundingAccount(msgspec.Struct):
    bank_name: str
    account_number: str


class Wallet(msgspec.Struct):
    balance_kobo: int
    currency: str
    account_reference: str
    funding_accounts: list[FundingAccount]


class PlanOut(msgspec.Struct):
    variation_code: str
    name: str
    price_kobo: int


class PurchaseOut(msgspec.Struct):
    id: str
    status: str  # pending | successful | failed | reversed
    service_id: str
    amount_kobo: int  # what the wallet was charged
    reference: str  # the request_id sent to the provider
    token: str | None  # electricity token, else null
    created_at: datetime.datetime

    @classmethod
    def of(cls, purchase: PurchaseView) -> PurchaseOut:
        return cls(
            id=str(purchase.id),
            status=purchase.status,
            service_id=purchase.service_id,
            amount_kobo=purchase.amount_kobo,
            reference=purchase.reference,
            token=purchase.token,
            created_at=purchase.created_at,
        )


class CustomerOut(msgspec.Struct):
    service_id: str
    customer_number: str
    customer_name: str
    address: str | None
    details: dict[str, Any]
    minimum_amount_kobo: int | None = None
    renewal_amount_kobo: int | None = None
    can_vend: bool | None = None


class ErrorOut(msgspec.Struct, omit_defaults=True):
    error: str
    detail: str
    fields: dict[str, str] | None = None


def purchase_json(purchase: PurchaseView) -> bytes:
    """The purchase exactly as the API shows it (also the body of completion callbacks)."""
    return msgspec.json.encode(PurchaseOut.of(purchase))


# -- request bodies --------------------------------------------------------------------------------------
class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ApiError 400 (also 413 for an oversized body)."""
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"The body must be at most {MAX_BODY_BYTES} bytes.")
    if not raw.strip():
        raise invalid({"body": "Send a JSON object."}, "The request body is empty.")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        raise invalid({str(exc)[:64]: "This field appears more than once."}) from None
    except (ValueError, RecursionError):
        raise invalid(
            {"body": "The body is not valid JSON."}, "The request body is not valid JSON."
        ) from None
    if not isinstance(data, dict):
        raise invalid({"body": "Send a JSON object."}, "The request body must be a JSON object.")
    return data


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def parse_purchase(raw: bytes) -> PurchaseRequest:
    """A PurchaseRequest with the contract's field set for its service, or ApiError 400 with `fields`.

    Types are checked here (strings must be strings, `amount_kobo` a JSON integer) and the purchase
    engine checks the values (phone format, limits, plans)."""
    data = decode_object(raw)
    errors: dict[str, str] = {}
    for name in data:
        if name not in ALL_PURCHASE_FIELDS:
            errors[name[:64]] = "Unknown field."
    service_id = data.get("service_id")
    if service_id is None:
        errors["service_id"] = "This field is required."
        raise invalid(errors)
    if not _is_string(service_id):
        errors["service_id"] = "Must be a string."
        raise invalid(errors)
    service = get_service(service_id.strip())
    if service is None:
        errors["service_id"] = "Unknown service."
        raise invalid(errors)
    wanted = PURCHASE_FIELDS[service.kind]
    if service.service_id in NO_SUBSCRIPTION_TYPE:
        wanted = tuple(f for f in wanted if f != "subscription_type")
    for name in ALL_PURCHASE_FIELDS:
        value = data.get(name)
        if name in wanted:
            if value is None:
                if not (name == "variation_code" and data.get("subscription_type") == "renew"):
                    errors.setdefault(name, "This field is required.")
            elif name == "amount_kobo":
                if isinstance(value, bool) or not isinstance(value, int):
                    errors[name] = "Must be a JSON integer (kobo)."
            elif not _is_string(value):
                errors[name] = "Must be a string."
            elif len(value) > 100:
                errors[name] = "Too long."
        elif value is not None:
            errors[name] = f"Not used for {service.kind.value} purchases."
    if errors:
        raise invalid(errors)
    return PurchaseRequest(**{name: data.get(name) for name in wanted})


def parse_verify(raw: bytes) -> tuple[str, str, str | None]:
    """(service_id, customer_number, type) for POST /verify, or ApiError 400."""
    data = decode_object(raw)
    errors = {name[:64]: "Unknown field." for name in data if name not in VERIFY_FIELDS}
    for name in VERIFY_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        if not _is_string(value):
            errors[name] = "Must be a string."
        elif len(value) > 100:
            errors[name] = "Too long."
    service = None
    if "service_id" not in errors:
        if data.get("service_id") is None:
            errors["service_id"] = "This field is required."
        else:
            service = get_service(data["service_id"].strip())
            if service is None:
                errors["service_id"] = "Unknown service."
            elif service.kind not in (ServiceKind.ELECTRICITY, ServiceKind.CABLE):
                errors["service_id"] = "Only electricity meters and cable smartcards can be verified."
    if "customer_number" not in errors and not (data.get("customer_number") or "").strip():
        errors["customer_number"] = "This field is required."
    kind = data.get("type")
    is_meter = service is not None and service.kind is ServiceKind.ELECTRICITY
    if is_meter and "type" not in errors and kind not in ("prepaid", "postpaid"):
        errors["type"] = "Use prepaid or postpaid."
    if errors:
        raise invalid(errors)
    assert service is not None
    number = data["customer_number"].strip()
    if not number.isdigit():
        raise invalid({"customer_number": "Use digits only."})
    return service.service_id, number, kind if service.kind is ServiceKind.ELECTRICITY else None


def check_idempotency_key(value: str | None) -> str:
    if value is None or not value.strip():
        raise invalid({"Idempotency-Key": "This header is required (1-255 visible ASCII characters)."})
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise invalid({"Idempotency-Key": "Use 1 to 255 visible ASCII characters (no spaces)."})
    return value


__all__ = [
    "CustomerOut",
    "ErrorOut",
    "FundingAccount",
    "PlanOut",
    "PurchaseOut",
    "Wallet",
    "check_idempotency_key",
    "decode_object",
    "parse_purchase",
    "parse_verify",
    "purchase_json",
]
