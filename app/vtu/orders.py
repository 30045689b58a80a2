"""Purchase input rules (docs/architecture.md, public contracts), enforced here so the web form and the
reseller API cannot drift apart. Values arrive as decoded JSON / form values, so every type is checked: an
amount must be a real int (not a bool, float or numeric string)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from app.core.naira import format_naira_short
from app.core.validation import InvalidPhone, normalise_phone
from app.vtu.config import VtuConfig
from app.vtu.errors import InvalidPurchase
from app.vtu.providers.catalog import (
    EXAM_QUANTITY,
    METER_TYPES,
    PROFILE_VERIFIED,
    SUBSCRIPTION_TYPES,
    Service,
    ServiceKind,
    get_service,
)

# Digits in a meter / smartcard number (the buy forms' hints are written from these too).
METER_DIGITS = (11, 13)
SMARTCARD_DIGITS = (10, 11)
PROFILE_ID_DIGITS = 10  # a JAMB profile id
_PROFILE_ID = re.compile(rf"^[0-9]{{{PROFILE_ID_DIGITS}}}$")
_METER = re.compile(rf"^[0-9]{{{METER_DIGITS[0]},{METER_DIGITS[1]}}}$")
_SMARTCARD = re.compile(rf"^[0-9]{{{SMARTCARD_DIGITS[0]},{SMARTCARD_DIGITS[1]}}}$")
_VARIATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")
NO_SUBSCRIPTION_TYPE = frozenset({"startimes"})  # StarTimes takes no change/renew


@dataclass(frozen=True, slots=True)
class PurchaseRequest:
    """What a buyer asks for, as received (types unchecked). Field names match the reseller API."""

    service_id: Any
    phone: Any = None
    amount_kobo: Any = None
    variation_code: Any = None
    meter_number: Any = None
    meter_type: Any = None
    smartcard_number: Any = None
    subscription_type: Any = None
    quantity: Any = None  # exam PINs: how many (1-10, a real int; default 1)
    profile_id: Any = None  # JAMB: the candidate's profile id (verified before paying)

    def canonical(self) -> dict[str, Any]:
        """The fields that define the purchase (for the API's same-key/same-body check)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class Order:
    """A validated request: normalised values, not yet priced."""

    service: Service
    phone: str  # local form 0XXXXXXXXXX (or a sandbox number outside prod)
    recipient: str  # phone, meter or smartcard number
    amount_kobo: int | None  # airtime / electricity face value; None when a plan sets the price
    variation_code: str | None  # data/cable plan code, or prepaid/postpaid for electricity
    subscription_type: str | None
    quantity: int | None = None  # exam PINs only (1-10)

    @property
    def kind(self) -> ServiceKind:
        return self.service.kind


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError
    return value.strip() or None


def _amount(
    value: Any, low: int, high: int, errors: dict[str, str], *, label: str = "amount_kobo"
) -> int | None:
    if value is None:
        errors[label] = "Enter an amount."
    elif not isinstance(value, int) or isinstance(value, bool):
        errors[label] = "The amount must be a whole number of kobo (a JSON integer)."
    elif value % 100:
        errors[label] = "Enter a whole naira amount (a multiple of 100 kobo)."
    elif not low <= value <= high:
        errors[label] = (
            f"The amount must be between {format_naira_short(low)} and {format_naira_short(high)}."
        )
    else:
        return value
    return None


def amount_limits(kind: ServiceKind, config: VtuConfig) -> tuple[int, int] | None:
    """The (lowest, highest) face value in kobo a typed amount may have, or None where a plan sets the price.
    An electricity meter may ask more than the lowest (`meter_minimum_kobo`)."""
    if kind is ServiceKind.AIRTIME:
        return config.airtime_min_kobo, config.airtime_max_kobo
    if kind is ServiceKind.ELECTRICITY:
        return config.electricity_min_kobo, config.electricity_max_kobo
    return None


def meter_minimum_kobo(config: VtuConfig, reported_kobo: int | None) -> int:
    """The least a verified meter may be sold: the configured floor, or the meter's own minimum (VTpass
    merchant-verify Minimum_Amount) when higher."""
    return max(config.electricity_min_kobo, reported_kobo or 0)


def validate(request: PurchaseRequest, config: VtuConfig, *, allow_sandbox: bool) -> Order:
    """An Order, or InvalidPurchase naming every bad field at once."""
    errors: dict[str, str] = {}
    values: dict[str, str | None] = {}
    for name in ("service_id", "phone", "variation_code", "meter_number", "meter_type", "smartcard_number",
                 "subscription_type", "profile_id"):  # fmt: skip
        try:
            values[name] = _text(getattr(request, name))
        except TypeError:
            errors[name] = "Must be a string."
            values[name] = None
    service = get_service(values["service_id"] or "") if "service_id" not in errors else None
    if service is None:
        errors.setdefault("service_id", "Unknown service.")
        raise InvalidPurchase(errors)

    phone = None
    if "phone" not in errors:
        try:
            phone = normalise_phone(values["phone"] or "", allow_sandbox=allow_sandbox)
        except InvalidPhone as exc:
            errors["phone"] = str(exc)
    kind, code = service.kind, values["variation_code"]
    if code is not None and not _VARIATION.fullmatch(code):
        errors["variation_code"] = "Unknown plan."
    amount: int | None = None
    recipient = phone
    subscription = None
    quantity: int | None = None
    if kind is not ServiceKind.EXAM and request.quantity is not None:
        errors["quantity"] = "Only exam PINs take a quantity."
    if service.service_id not in PROFILE_VERIFIED and values["profile_id"] is not None:
        errors["profile_id"] = "Only JAMB PINs take a profile id."

    if kind is ServiceKind.AIRTIME:
        amount = _amount(request.amount_kobo, *_limits(kind, config), errors)
        code = None
    elif kind is ServiceKind.DATA:
        if code is None:
            errors.setdefault("variation_code", "Choose a data plan.")
    elif kind is ServiceKind.ELECTRICITY:
        meter, meter_type = values["meter_number"], values["meter_type"]
        if meter is None or not _METER.fullmatch(meter):
            low, high = METER_DIGITS
            errors.setdefault("meter_number", f"Enter the {low} to {high} digit meter number.")
        if meter_type not in METER_TYPES:
            errors.setdefault("meter_type", "Choose prepaid or postpaid.")
        # The meter's own minimum is checked after verification (PurchaseService).
        amount = _amount(request.amount_kobo, *_limits(kind, config), errors)
        recipient, code = meter, meter_type
    elif kind is ServiceKind.CABLE:
        card = values["smartcard_number"]
        if card is None or not _SMARTCARD.fullmatch(card):
            low, high = SMARTCARD_DIGITS
            errors.setdefault("smartcard_number", f"Enter the {low} or {high} digit smartcard / IUC number.")
        if service.service_id in NO_SUBSCRIPTION_TYPE:
            subscription = None
        elif values["subscription_type"] not in SUBSCRIPTION_TYPES:
            errors.setdefault("subscription_type", "Choose change or renew.")
        else:
            subscription = values["subscription_type"]
        if code is None and subscription != "renew":
            errors.setdefault("variation_code", "Choose a bouquet.")
        recipient = card
    elif kind is ServiceKind.EXAM:
        if code is None:
            errors.setdefault("variation_code", "Choose the PIN type.")
        quantity = _quantity(request.quantity, errors)
        if service.service_id in PROFILE_VERIFIED and quantity not in (None, 1):
            errors["quantity"] = "One JAMB PIN per candidate profile: buy 1."
        if service.service_id in PROFILE_VERIFIED:
            profile = values["profile_id"]
            if profile is None or not _PROFILE_ID.fullmatch(profile):
                digits = PROFILE_ID_DIGITS
                errors.setdefault("profile_id", f"Enter the candidate's {digits} digit profile id.")
            recipient = profile
    if errors:
        raise InvalidPurchase(errors)
    assert phone is not None and recipient is not None
    return Order(service, phone, recipient, amount, code, subscription, quantity)


def _quantity(value: Any, errors: dict[str, str]) -> int | None:
    """Exam PINs per purchase: a real int (not a bool, float or numeric string), 1 when not given."""
    low, high = EXAM_QUANTITY
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool):
        errors["quantity"] = "The quantity must be a whole number (a JSON integer)."
    elif not low <= value <= high:
        errors["quantity"] = f"Buy {low} to {high} PINs at a time."
    else:
        return value
    return None


def _limits(kind: ServiceKind, config: VtuConfig) -> tuple[int, int]:
    limits = amount_limits(kind, config)
    assert limits is not None, kind
    return limits


# Where a request's recipient is not known yet (a price shown while the form is filled in), these stand in
# for it: valid by the rules above, never sold to (the result's phone and recipient are blanked).
_STAND_INS = {"phone": "07000000000", "meter_number": "0" * METER_DIGITS[0],
              "smartcard_number": "0" * SMARTCARD_DIGITS[0],
              "profile_id": "0" * PROFILE_ID_DIGITS}  # fmt: skip


def validate_price_inputs(request: PurchaseRequest, config: VtuConfig) -> Order:
    """The rules that decide a price (service, amount limits, plan code, renew/change), checked by
    `validate` itself, with the recipient left out: an Order whose phone and recipient are empty, for
    pricing only. InvalidPurchase names what is missing or wrong."""
    stand_ins = dict(_STAND_INS)
    if not (isinstance(request.service_id, str) and request.service_id in PROFILE_VERIFIED):
        del stand_ins["profile_id"]
    order = validate(dataclasses.replace(request, **stand_ins), config, allow_sandbox=False)
    return dataclasses.replace(order, phone="", recipient="")


__all__ = [
    "METER_DIGITS",
    "NO_SUBSCRIPTION_TYPE",
    "PROFILE_ID_DIGITS",
    "SMARTCARD_DIGITS",
    "Order",
    "PurchaseRequest",
    "amount_limits",
    "meter_minimum_kobo",
    "validate",
    "validate_price_inputs",
]
