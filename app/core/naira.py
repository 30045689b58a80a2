"""Naira for people: how amounts are shown, and how amounts people type are read. Money itself is always
integer kobo (docs/architecture.md, money invariant 1); provider and Monnify amounts are parsed by
`app.payments.money.naira_to_kobo` (Decimal, strings or numbers).

- `format_naira(123450)` -> '₦1,234.50'; `format_naira_short` drops '.00' for prose ('₦1,000').
- `parse_whole_naira(text)`: what a customer or staff member types in an amount field: '1,500', '₦1,500',
  '1500.00' -> 150000 kobo; blank -> None; kobo, letters or (unless allowed) a minus sign -> ValueError with
  the message to show. Limits are the caller's rules.
- `amount_in_search(text)`: whether a search box holds an amount ('5000', '₦5,000.50', 'N5000') -> kobo.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_WHOLE = re.compile(r"^(-?)([0-9]{1,9})(?:\.0{1,2})?$")
_WITH_KOBO = re.compile(r"^-?[0-9]+\.[0-9]+$")
_SEARCH = re.compile(r"^(?:₦|NGN|N)?\s*([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]{1,2}))?$", re.IGNORECASE)


def format_naira(kobo: int) -> str:
    """1234 50 kobo -> '₦1,234.50' (negative amounts keep their sign)."""
    sign = "-" if kobo < 0 else ""
    naira, rem = divmod(abs(int(kobo)), 100)
    return f"{sign}₦{naira:,}.{rem:02d}"


def format_naira_short(kobo: int) -> str:
    """₦100 / ₦1,000 / ₦12.50: whole naira without '.00', for sentences."""
    return format_naira(kobo).removesuffix(".00")


def parse_whole_naira(raw: str, *, allow_negative: bool = False) -> int | None:
    """Kobo for a typed whole-naira amount, None when blank; ValueError(message for the person) otherwise."""
    text = raw.replace(",", "").replace("₦", "").replace(" ", "").strip()
    if not text:
        return None
    match = _WHOLE.fullmatch(text)
    if match and (allow_negative or not match.group(1)):
        return int(match.group(1) + match.group(2)) * 100
    if _WITH_KOBO.fullmatch(text):
        raise ValueError("Enter whole naira only, without kobo (e.g. 500).")
    raise ValueError("Enter a whole naira amount using digits only (e.g. 500).")


def amount_in_search(text: str) -> int | None:
    """Kobo when `text` reads as an amount (kobo allowed), else None."""
    match = _SEARCH.fullmatch(text.strip())
    if match is None:
        return None
    try:
        amount = Decimal(match.group(1).replace(",", "") + "." + (match.group(2) or "0"))
    except InvalidOperation:
        return None
    return int(amount * 100)


__all__ = ["amount_in_search", "format_naira", "format_naira_short", "parse_whole_naira"]
