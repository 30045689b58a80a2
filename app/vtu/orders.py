"""Purchase input rules (docs/architecture.md, public contracts), enforced here so the web form and the
reseller API cannot drift apart. Values arrive as decoded JSON / form values, so every type is checked: an
amount must be a real int (not a bool, float or numeric string)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.core.naira import format_naira_short
from app.core.validation import InvalidPhone, normalise_phone
from app.vtu.config import VtuConfig
from app.vtu.errors import InvalidPurchase
from app.vtu.providers.catalog import METER_TYPES, SUBSCRIPTION_TYPES, Service, ServiceKind, get_service

_METER = re.compile(r"^[0-9]{11,13}$")
_SMARTCARD = re.compile(r"^[0-9]{10,11}$")
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


def validate(request: PurchaseRequest, config: VtuConfig, *, allow_sandbox: bool) -> Order:
    """An Order, or InvalidPurchase naming every bad field at once."""
    errors: dict[str, str] = {}
    values: dict[str, str | None] = {}
    for name in ("service_id", "phone", "variation_code", "meter_number", "meter_type", "smartcard_number",
                 "subscription_type"):  # fmt: skip
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

    if kind is ServiceKind.AIRTIME:
        amount = _amount(request.amount_kobo, config.airtime_min_kobo, config.airtime_max_kobo, errors)
        code = None
    elif kind is ServiceKind.DATA:
        if code is None:
            errors.setdefault("variation_code", "Choose a data plan.")
    elif kind is ServiceKind.ELECTRICITY:
        meter, meter_type = values["meter_number"], values["meter_type"]
        if meter is None or not _METER.fullmatch(meter):
            errors.setdefault("meter_number", "Enter the 11 to 13 digit meter number.")
        if meter_type not in METER_TYPES:
            errors.setdefault("meter_type", "Choose prepaid or postpaid.")
        # The meter's own minimum is checked after verification (PurchaseService).
        amount = _amount(
            request.amount_kobo, config.electricity_min_kobo, config.electricity_max_kobo, errors
        )
        recipient, code = meter, meter_type
    elif kind is ServiceKind.CABLE:
        card = values["smartcard_number"]
        if card is None or not _SMARTCARD.fullmatch(card):
            errors.setdefault("smartcard_number", "Enter the 10 or 11 digit smartcard / IUC number.")
        if service.service_id in NO_SUBSCRIPTION_TYPE:
            subscription = None
        elif values["subscription_type"] not in SUBSCRIPTION_TYPES:
            errors.setdefault("subscription_type", "Choose change or renew.")
        else:
            subscription = values["subscription_type"]
        if code is None and subscription != "renew":
            errors.setdefault("variation_code", "Choose a bouquet.")
        recipient = card
    if errors:
        raise InvalidPurchase(errors)
    assert phone is not None and recipient is not None
    return Order(service, phone, recipient, amount, code, subscription)


__all__ = ["NO_SUBSCRIPTION_TYPE", "Order", "PurchaseRequest", "validate"]
