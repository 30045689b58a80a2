"""Naira/kobo conversion and the platform's funding fee, in exact Decimal arithmetic (never float)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

_HUNDRED = Decimal(100)


class AmountError(ValueError):
    """A naira amount that cannot be turned into a whole number of kobo."""


def naira_to_kobo(value: object) -> int:
    """Convert a naira amount (int, numeric string, Decimal or JSON float) to integer kobo.

    Floats are accepted only because JSON decoders produce them (`1000.5`); they are converted through
    their shortest repr (`Decimal(str(value))`) so `0.1` stays `0.1`, never `0.1000000000000000055`.
    """
    if isinstance(value, bool):  # bool is an int subclass: True must not become 100 kobo
        raise AmountError(f"not an amount: {value!r}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | float):
        amount = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise AmountError("empty amount")
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:
            raise AmountError(f"not an amount: {value!r}") from exc
    else:
        raise AmountError(f"not an amount: {value!r}")
    if not amount.is_finite():
        raise AmountError(f"not a finite amount: {value!r}")
    if amount < 0:
        raise AmountError(f"negative amount: {value!r}")
    kobo = amount * _HUNDRED
    if kobo != kobo.to_integral_value():
        raise AmountError(f"more than 2 decimal places: {value!r}")
    return int(kobo)


def kobo_to_naira(kobo: int) -> str:
    """Format kobo as a plain naira string with two decimals ("29990.00"), as Monnify writes them."""
    sign = "-" if kobo < 0 else ""
    whole, part = divmod(abs(kobo), 100)
    return f"{sign}{whole}.{part:02d}"


def monnify_charge_kobo(amount_kobo: int, settlement_kobo: int | None) -> int:
    """What Monnify keeps of a transfer (amountPaid - settlementAmount): the platform's cost, booked as an
    expense and never taken from the customer. Unknown settlement: 0."""
    if settlement_kobo is None:
        return 0
    return min(max(0, amount_kobo - settlement_kobo), max(amount_kobo, 0))


def funding_fees(settings: Any, amount_kobo: int, settlement_kobo: int | None) -> tuple[int, int]:
    """(platform fee, Monnify's charge) for a transfer of `amount_kobo`, from the FUNDING_FEE_* settings."""
    fee = funding_fee_kobo(
        amount_kobo,
        settings.funding_fee_flat_kobo,
        settings.funding_fee_percent,
        settings.funding_fee_cap_kobo,
    )
    return fee, monnify_charge_kobo(amount_kobo, settlement_kobo)


def funding_fee_kobo(amount_kobo: int, flat_kobo: int, percent: str, cap_kobo: int) -> int:
    """The platform's fee on a wallet funding: flat + percent (half up to the kobo), capped.

    `cap_kobo` 0 means no cap. The fee never exceeds the amount, so a tiny transfer credits 0, not a debt.
    """
    if amount_kobo < 0 or flat_kobo < 0 or cap_kobo < 0:
        raise AmountError("fee inputs must not be negative")
    try:
        rate = Decimal(percent.strip() or "0")
    except InvalidOperation as exc:
        raise AmountError(f"invalid fee percent: {percent!r}") from exc
    if not rate.is_finite() or rate < 0:
        raise AmountError(f"invalid fee percent: {percent!r}")
    variable = (Decimal(amount_kobo) * rate / _HUNDRED).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    fee = flat_kobo + int(variable)
    if cap_kobo:
        fee = min(fee, cap_kobo)
    return min(fee, amount_kobo)
