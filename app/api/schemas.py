"""What goes over the wire: request bodies and responses as msgspec structs (Litestar documents them in the
OpenAPI schema), and the strict parsing of request bodies from raw bytes.

Bodies are parsed here rather than by Litestar because the contract is strict where Litestar is lax: an
`amount_kobo` must be a JSON integer (a string, float or bool is a 400), unknown fields and duplicate keys
are refused, and every problem is reported per field in one 400 (msgspec stops at the first). The body
structs define the shapes (fields, JSON types, required, string lengths) and the parser checks against them;
the values (phone numbers, limits, plans, choices) are the purchase engine's rules (`app.vtu.orders`), which
`Body.choices` and `Body.limits` describe for the OpenAPI schema from the same sources.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
from msgspec import Meta

from app.api.errors import ApiError, ErrorOut, invalid
from app.core.encryption import DataCipher
from app.vtu.config import VtuConfig
from app.vtu.exam import pins_of
from app.vtu.models import FAILED, REVERSED
from app.vtu.orders import NO_SUBSCRIPTION_TYPE, PurchaseRequest
from app.vtu.providers.catalog import (
    METER_TYPES,
    PROFILE_VERIFIED,
    SERVICES,
    SUBSCRIPTION_TYPES,
    ServiceKind,
    get_service,
)
from app.vtu.views import PurchaseView

MAX_BODY_BYTES = 16 * 1024
IDEMPOTENCY_KEY_MAX = 255
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, no spaces
TEXT_MAX = 100  # longest string field accepted (Meta(max_length=...) below)
REQUIRED = "This field is required."


# -- responses ------------------------------------------------------------------------------------------
class FundingAccount(msgspec.Struct):
    bank_name: str
    account_number: str


class Wallet(msgspec.Struct):
    balance_kobo: int
    currency: Annotated[str, Meta(description="Always NGN.")]
    account_reference: Annotated[str, Meta(description="Your reference at the bank transfer provider.")]
    funding_accounts: Annotated[
        list[FundingAccount],
        Meta(description="Your own bank accounts: a transfer to one funds the wallet (empty while created)."),
    ]


class PlanOut(msgspec.Struct):
    variation_code: str
    name: str
    price_kobo: Annotated[int, Meta(description="What your wallet is charged, at your tier's price.")]


class ProductOut(msgspec.Struct):
    service_id: str
    variation_code: Annotated[
        str | None, Meta(description="The data plan or TV bouquet bought; null for airtime and electricity.")
    ]
    name: Annotated[str, Meta(description="The plan or product name shown to the customer.")]


class PinOut(msgspec.Struct):
    serial: Annotated[str | None, Meta(description="The PIN's serial number (WAEC); null when none (JAMB).")]
    pin: str


# VTpass codes whose message describes the order itself (bad plan, amount out of range, failed at the
# network, not processed...), so the customer may read it. Others (our float, our account, credentials,
# IP allowlist, request-id format) are the platform's own business: the customer gets a plain sentence.
CUSTOMER_FACING_CODES = frozenset(
    {"000", "010", "011", "012", "013", "016", "017", "019", "020", "030", "031", "032", "040", "091"}
)
FAILURE_REASONS = {
    FAILED: "The provider did not complete this purchase; the amount charged was refunded to your wallet.",
    REVERSED: "The provider reversed this purchase after delivering it; the amount charged was refunded to "
    "your wallet.",
}
_STATUS_SUFFIX = re.compile(r"\s*\((?:failed|reversed|delivered|pending|initiated)\)$", re.IGNORECASE)


def failure_reason(purchase: PurchaseView) -> str | None:
    """Why a failed or reversed purchase did not stand, as the customer may see it: the provider's own
    message for an order it refused or undid, else a plain sentence (never a staff note, an internal error
    or a message about the platform's account with the provider). None for any other status."""
    generic = FAILURE_REASONS.get(purchase.status)
    if generic is None:
        return None
    message = (purchase.provider_message or "").strip()
    if purchase.provider_code in CUSTOMER_FACING_CODES and message and not message.startswith("VTpass code"):
        return _STATUS_SUFFIX.sub("", message)[:255] or generic
    return generic


class PurchaseOut(msgspec.Struct):
    id: str
    status: Annotated[str, Meta(description="pending | successful | failed (refunded) | reversed (refunded)")]
    service_id: str
    amount_kobo: Annotated[int, Meta(description="What the wallet was charged (the same as charged_kobo).")]
    reference: Annotated[str, Meta(description="The request id sent to the provider.")]
    token: Annotated[str | None, Meta(description="The electricity token, else null.")]
    created_at: datetime.datetime
    face_value_kobo: Annotated[
        int, Meta(description="The face value delivered (airtime, plan or token amount, bouquet price).")
    ]
    charged_kobo: Annotated[int, Meta(description="What the wallet was charged (equal to amount_kobo).")]
    recipient: Annotated[str, Meta(description="The phone, meter or smartcard number served.")]
    product: ProductOut
    failure_reason: Annotated[
        str | None,
        Meta(description="Why it failed or was reversed (the provider's message when it gave one); null "
             "for pending and successful purchases."),
    ]  # fmt: skip
    completed_at: Annotated[
        datetime.datetime | None, Meta(description="When it became final; null while pending.")
    ]
    units: Annotated[str | None, Meta(description='Electricity units (e.g. "47.7 kWh"), else null.')]
    pins: Annotated[
        list[PinOut] | None,
        Meta(description="Exam PINs ([{serial, pin}]) once delivered; null for every other product and "
             "while pending."),
    ] = None  # fmt: skip

    @classmethod
    def of(cls, purchase: PurchaseView, cipher: DataCipher | None = None) -> PurchaseOut:
        """`cipher`: opens the exam PINs; only ever given for the purchase's owner (the API caller or its
        callback URL). Without it `pins` is null."""
        by_plan = purchase.kind in (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM)
        pins = pins_of(purchase, cipher) if cipher is not None else None
        return cls(
            id=str(purchase.id),
            status=purchase.status,
            service_id=purchase.service_id,
            amount_kobo=purchase.amount_kobo,
            reference=purchase.reference,
            token=purchase.token,
            created_at=purchase.created_at,
            face_value_kobo=purchase.face_amount_kobo,
            charged_kobo=purchase.amount_kobo,
            recipient=purchase.recipient,
            product=ProductOut(
                service_id=purchase.service_id,
                variation_code=purchase.variation_code if by_plan else None,
                name=purchase.product_name,
            ),
            failure_reason=failure_reason(purchase),
            completed_at=purchase.completed_at,
            units=purchase.units,
            pins=[PinOut(p.serial, p.pin) for p in pins] if pins is not None else None,
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


class ServiceOut(msgspec.Struct):
    service_id: Annotated[str, Meta(description="The service_id for /purchases (9mobile is etisalat).")]
    kind: Annotated[str, Meta(description="airtime | data | electricity | cable | exam")]
    name: str
    min_amount_kobo: Annotated[
        int | None,
        Meta(description="Smallest amount_kobo accepted (airtime, electricity; a meter's own minimum from "
             "POST /api/v1/verify may be higher); null for data and cable, which are bought by plan."),
    ]  # fmt: skip
    max_amount_kobo: Annotated[
        int | None, Meta(description="Largest amount_kobo accepted (airtime, electricity), else null.")
    ]
    plans: Annotated[
        str | None,
        Meta(description="Where the plans and prices are (GET /api/v1/plans?service_id=...) for data and "
             "cable; null for services bought by amount."),
    ]  # fmt: skip
    verify: Annotated[
        bool,
        Meta(description="Whether POST /api/v1/verify checks its meters, smartcards or JAMB profile ids "
             "before buying."),
    ]  # fmt: skip
    meter_types: Annotated[
        list[str] | None, Meta(description="Electricity: the meter_type values; else null.")
    ] = None
    subscription_types: Annotated[
        list[str] | None, Meta(description="DStv / GOtv: the subscription_type values; else null.")
    ] = None
    max_quantity: Annotated[
        int | None, Meta(description="Exam PINs: the most `quantity` one purchase may buy; else null.")
    ] = None


class CallbackDeliveryOut(msgspec.Struct):
    purchase_id: str
    status: Annotated[str, Meta(description="The purchase's final status this callback announces.")]
    url_host: Annotated[str | None, Meta(description="Host of the key's callback URL (no path or query).")]
    attempts: Annotated[int, Meta(description="POSTs made so far.")]
    last_status_code: Annotated[
        int | None, Meta(description="HTTP status of the last answer that was not a 2xx, else null.")
    ]
    last_error: Annotated[str | None, Meta(description="Why the last attempt failed (null once delivered).")]
    delivered_at: datetime.datetime | None
    gave_up_at: Annotated[
        datetime.datetime | None,
        Meta(description="Set when every attempt failed or the key was revoked: no more attempts."),
    ]
    next_attempt_at: Annotated[
        datetime.datetime | None,
        Meta(description="When the next attempt is due, while one is scheduled; else null."),
    ]
    updated_at: Annotated[datetime.datetime, Meta(description="Time of the last attempt.")]


def purchase_json(purchase: PurchaseView, cipher: DataCipher | None = None) -> bytes:
    """The purchase exactly as the API shows it (also the body of completion callbacks, to the owner's own
    callback URL: with `cipher`, its exam PINs)."""
    return msgspec.json.encode(PurchaseOut.of(purchase, cipher))


# -- request bodies --------------------------------------------------------------------------------------
def _ids(*kinds: ServiceKind) -> tuple[str, ...]:
    return tuple(s.service_id for s in SERVICES if s.kind in kinds)


ServiceId = Annotated[
    str, Meta(max_length=TEXT_MAX, description="Which service (the shape follows from it).")
]
Phone = Annotated[
    str,
    Meta(
        max_length=TEXT_MAX,
        description="Nigerian mobile number: 0XXXXXXXXXX, 234XXXXXXXXXX or +234XXXXXXXXXX (sandbox test "
        "numbers outside production).",
        examples=["08011111111"],
    ),
]
Kobo = Annotated[
    int,
    Meta(
        description="Kobo, a JSON integer (a string, float or boolean is refused), whole naira (a "
        "multiple of 100), within the limits shown."
    ),
]
PlanCode = Annotated[str, Meta(max_length=TEXT_MAX, description="A plan from GET /api/v1/plans.")]
Quantity = Annotated[
    int,
    Meta(description="How many PINs: a JSON integer from 1 to 10 (a string, float or boolean is refused)."),
]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """A request body: what the parser accepts (`decode_body`). For the OpenAPI schema (app/api/openapi.py),
    `choices` names the values the engine accepts for some string fields and `limits` the integer ranges;
    both are checked by the engine, not by the parser, and taken from the engine's own sources."""

    choices: ClassVar[Mapping[str, Sequence[str]]] = {}
    service_id: ServiceId

    @classmethod
    def limits(cls, config: VtuConfig) -> Mapping[str, tuple[int, int]]:
        return {}


class AirtimePurchase(Body):
    choices = {"service_id": _ids(ServiceKind.AIRTIME)}
    phone: Phone
    amount_kobo: Kobo

    @classmethod
    def limits(cls, config: VtuConfig) -> Mapping[str, tuple[int, int]]:
        # The range app.vtu.orders checks amount_kobo against.
        return {"amount_kobo": (config.airtime_min_kobo, config.airtime_max_kobo)}


class DataPurchase(Body):
    choices = {"service_id": _ids(ServiceKind.DATA)}
    phone: Phone
    variation_code: PlanCode


class ElectricityPurchase(Body):
    """The meter's own minimum (POST /api/v1/verify) may be above the lower limit."""

    choices = {"service_id": _ids(ServiceKind.ELECTRICITY), "meter_type": METER_TYPES}
    meter_number: Annotated[str, Meta(max_length=TEXT_MAX, description="11 to 13 digits.")]
    meter_type: Annotated[str, Meta(max_length=TEXT_MAX)]
    amount_kobo: Kobo
    phone: Phone

    @classmethod
    def limits(cls, config: VtuConfig) -> Mapping[str, tuple[int, int]]:
        # The range app.vtu.orders checks amount_kobo against (a meter may ask for more).
        return {"amount_kobo": (config.electricity_min_kobo, config.electricity_max_kobo)}


SmartcardNumber = Annotated[str, Meta(max_length=TEXT_MAX, description="10 or 11 digits (smartcard / IUC).")]


class CablePurchase(Body):
    """`variation_code` is required unless `subscription_type` is `renew` (the current bouquet)."""

    choices = {
        "service_id": tuple(i for i in _ids(ServiceKind.CABLE) if i not in NO_SUBSCRIPTION_TYPE),
        "subscription_type": SUBSCRIPTION_TYPES,
    }
    smartcard_number: SmartcardNumber
    subscription_type: Annotated[str, Meta(max_length=TEXT_MAX)]
    phone: Phone
    variation_code: PlanCode | None = None


class CableNoSubscriptionPurchase(Body):
    """Cable TV that takes no subscription type (StarTimes)."""

    choices = {"service_id": tuple(sorted(NO_SUBSCRIPTION_TYPE))}
    smartcard_number: SmartcardNumber
    variation_code: PlanCode
    phone: Phone


class ExamPurchase(Body):
    """WAEC result checker / registration PINs: `quantity` PINs (default 1) of the plan `variation_code`."""

    choices = {"service_id": tuple(i for i in _ids(ServiceKind.EXAM) if i not in PROFILE_VERIFIED)}
    variation_code: PlanCode
    phone: Phone
    quantity: Quantity | None = None


class JambPurchase(Body):
    """JAMB PINs: one per candidate, for the `profile_id` (verify it first with POST /api/v1/verify)."""

    choices = {"service_id": tuple(sorted(PROFILE_VERIFIED))}
    variation_code: Annotated[str, Meta(max_length=TEXT_MAX, description="utme or de (GET /api/v1/plans).")]
    profile_id: Annotated[str, Meta(max_length=TEXT_MAX, description="The candidate's 10 digit profile id.")]
    phone: Phone
    quantity: Quantity | None = None


class VerifyBody(Body):
    choices = {
        "service_id": (*_ids(ServiceKind.ELECTRICITY, ServiceKind.CABLE), *sorted(PROFILE_VERIFIED)),
        "type": METER_TYPES,
    }
    customer_number: Annotated[
        str,
        Meta(
            max_length=TEXT_MAX, description="The meter or smartcard number, or the JAMB profile id (digits)."
        ),
    ]
    type: (
        Annotated[
            str,
            Meta(
                max_length=TEXT_MAX,
                description="Electricity: the meter type; JAMB: the PIN type (utme | de).",
            ),
        ]
        | None
    ) = None


PURCHASE_BODIES: tuple[type[Body], ...] = (
    AirtimePurchase,
    DataPurchase,
    ElectricityPurchase,
    CablePurchase,
    CableNoSubscriptionPurchase,
    ExamPurchase,
    JambPurchase,
)
BODY_FOR_SERVICE: dict[str, type[Body]] = {
    service_id: body for body in PURCHASE_BODIES for service_id in body.choices["service_id"]
}
PurchaseBody = (
    AirtimePurchase
    | DataPurchase
    | ElectricityPurchase
    | CablePurchase
    | CableNoSubscriptionPurchase
    | ExamPurchase
    | JambPurchase
)
PURCHASE_FIELDS = frozenset(f.encode_name for body in PURCHASE_BODIES for f in msgspec.structs.fields(body))
# Documentation examples, built as structs so they have the shapes above; the phone, meter and smartcard are
# the sandbox's (and the stub provider's) delivering ones, so an example tried outside production succeeds.
SANDBOX_PHONE = "08011111111"
PURCHASE_EXAMPLES: dict[str, Body] = {
    "airtime": AirtimePurchase(service_id="mtn", phone=SANDBOX_PHONE, amount_kobo=50_000),
    "data": DataPurchase(service_id="mtn-data", phone=SANDBOX_PHONE, variation_code="mtn-1gb-1day"),
    "electricity": ElectricityPurchase(
        service_id="ikeja-electric",
        meter_number="1111111111111",
        meter_type="prepaid",
        amount_kobo=200_000,
        phone=SANDBOX_PHONE,
    ),
    "cable": CablePurchase(
        service_id="dstv",
        smartcard_number="1212121212",
        variation_code="dstv-padi",
        subscription_type="change",
        phone=SANDBOX_PHONE,
    ),
    "exam": ExamPurchase(service_id="waec", variation_code="waecdirect", phone=SANDBOX_PHONE, quantity=2),
    "jamb": JambPurchase(
        service_id="jamb", variation_code="utme", profile_id="0123456789", phone=SANDBOX_PHONE, quantity=1
    ),
}
VERIFY_EXAMPLES: dict[str, Body] = {
    "meter": VerifyBody(service_id="ikeja-electric", customer_number="1111111111111", type="prepaid"),
    "smartcard": VerifyBody(service_id="dstv", customer_number="1212121212"),
    "jamb": VerifyBody(service_id="jamb", customer_number="0123456789", type="utme"),
}


B = TypeVar("B", bound=Body)


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


def _field_errors(body: type[Body], data: Mapping[str, Any]) -> dict[str, str]:
    """Every field of `data` that does not fit `body`'s types (msgspec, strict), and every missing one."""
    errors: dict[str, str] = {}
    for field in msgspec.structs.fields(body):
        name, value = field.encode_name, data.get(field.encode_name)
        if value is None:
            if field.required:
                errors[name] = REQUIRED
            continue
        try:
            msgspec.convert(value, field.type, strict=True)
        except msgspec.ValidationError:
            if field.type == Kobo:
                errors[name] = "Must be a JSON integer (kobo)."
            elif field.type in (Quantity, Quantity | None):
                errors[name] = "Must be a JSON integer."
            else:
                errors[name] = "Too long." if isinstance(value, str) else "Must be a string."
    return errors


def decode_body(body: type[B], data: Mapping[str, Any], errors: dict[str, str]) -> B:
    """`data` (a decoded JSON object) as `body`, or ApiError 400 naming every bad field at once, together
    with the `errors` the caller found. Null counts as absent; unknown fields are the caller's to report."""
    present = {f.encode_name: data[f.encode_name] for f in msgspec.structs.fields(body)
               if data.get(f.encode_name) is not None}  # fmt: skip
    try:
        decoded = msgspec.convert(present, body, strict=True)
    except msgspec.ValidationError as exc:
        errors = {**_field_errors(body, present), **errors} or {"body": str(exc)}
    if errors:
        raise invalid(errors)
    return decoded


def parse_purchase(raw: bytes) -> PurchaseRequest:
    """A PurchaseRequest with the contract's field set for its service, or ApiError 400 with `fields`.

    Types are checked here (strings must be strings, `amount_kobo` a JSON integer) and the purchase
    engine checks the values (phone format, limits, plans)."""
    data = decode_object(raw)
    errors = {name[:64]: "Unknown field." for name in data if name not in PURCHASE_FIELDS}
    service_id = data.get("service_id")
    if service_id is None:
        raise invalid({**errors, "service_id": REQUIRED})
    if not isinstance(service_id, str):
        raise invalid({**errors, "service_id": "Must be a string."})
    service = get_service(service_id.strip())
    body = BODY_FOR_SERVICE.get(service.service_id) if service is not None else None
    if service is None or body is None:
        raise invalid({**errors, "service_id": "Unknown service."})
    wanted = {f.encode_name for f in msgspec.structs.fields(body)}
    for name in PURCHASE_FIELDS - wanted:
        if data.get(name) is not None:
            errors[name] = f"Not used for {service.kind.value} purchases."
    if (
        body is CablePurchase
        and data.get("variation_code") is None
        and data.get("subscription_type") != "renew"
    ):
        errors["variation_code"] = REQUIRED
    order = decode_body(body, data, errors)
    return PurchaseRequest(**msgspec.structs.asdict(order))


def parse_verify(raw: bytes) -> tuple[str, str, str | None]:
    """(service_id, customer_number, type) for POST /verify, or ApiError 400."""
    data = decode_object(raw)
    fields = {f.encode_name for f in msgspec.structs.fields(VerifyBody)}
    errors = {name[:64]: "Unknown field." for name in data if name not in fields}
    present = {name: value for name, value in data.items() if name in fields}
    problems = _field_errors(VerifyBody, present)
    service = None
    if "service_id" not in problems:
        service = get_service(data["service_id"].strip())
        if service is None:
            errors["service_id"] = "Unknown service."
        elif service.service_id not in VerifyBody.choices["service_id"]:
            errors["service_id"] = (
                "Only electricity meters, cable smartcards and JAMB profiles can be verified."
            )
    if "customer_number" not in problems and not data["customer_number"].strip():
        errors["customer_number"] = REQUIRED
    is_meter = service is not None and service.kind is ServiceKind.ELECTRICITY
    if is_meter and "type" not in problems and data.get("type") not in METER_TYPES:
        errors["type"] = "Use prepaid or postpaid."
    is_profile = service is not None and service.service_id in PROFILE_VERIFIED
    if is_profile and "type" not in problems and not str(data.get("type") or "").strip():
        errors["type"] = "Name the PIN type (utme or de)."
    body = decode_body(VerifyBody, present, errors)
    assert service is not None
    number = body.customer_number.strip()
    if not (number.isascii() and number.isdigit()):  # "١٢٣" is digits to Python, not to a provider
        raise invalid({"customer_number": "Use digits only."})
    return service.service_id, number, body.type.strip() if (is_meter or is_profile) and body.type else None


def check_idempotency_key(value: str | None) -> str:
    if value is None or not value.strip():
        raise invalid({"Idempotency-Key": "This header is required (1-255 visible ASCII characters)."})
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise invalid({"Idempotency-Key": "Use 1 to 255 visible ASCII characters (no spaces)."})
    return value


__all__ = [
    "BODY_FOR_SERVICE",
    "PURCHASE_BODIES",
    "PURCHASE_EXAMPLES",
    "VERIFY_EXAMPLES",
    "AirtimePurchase",
    "Body",
    "CableNoSubscriptionPurchase",
    "CablePurchase",
    "CallbackDeliveryOut",
    "CustomerOut",
    "DataPurchase",
    "ElectricityPurchase",
    "ErrorOut",
    "ExamPurchase",
    "FundingAccount",
    "JambPurchase",
    "PinOut",
    "PlanOut",
    "ProductOut",
    "PurchaseBody",
    "PurchaseOut",
    "ServiceOut",
    "VerifyBody",
    "Wallet",
    "check_idempotency_key",
    "decode_body",
    "decode_object",
    "failure_reason",
    "parse_purchase",
    "parse_verify",
    "purchase_json",
]
