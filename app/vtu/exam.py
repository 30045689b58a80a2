"""Exam PINs (WAEC, JAMB): what a delivered exam purchase must carry, and how its PINs are kept
(docs/architecture.md, "Exam PINs").

A provider answer's PINs (`ProviderResult.pins`) never reach a log: the adapters redact them from the logged
answer, and `settle_answer` replaces them with their ciphertext (`sealed_pins`) before the answer is applied,
so `purchase_deliver` writes the ciphertext in the same statement as the delivery. Only `pins_of` decrypts,
for the owner's receipt, the reseller API answer and the receipt e-mail.
"""

from __future__ import annotations

import dataclasses
import json
import re

from app.core.encryption import DataCipher
from app.vtu.providers.base import ExamPin, Outcome, ProviderResult
from app.vtu.providers.catalog import ServiceKind
from app.vtu.views import PurchaseView

NO_PIN_YET = "delivered without a PIN yet: requery"


def seal(pins: tuple[ExamPin, ...], cipher: DataCipher) -> str:
    return cipher.encrypt(json.dumps([p.as_dict() for p in pins], separators=(",", ":")))


def settle_answer(kind: str, result: ProviderResult, cipher: DataCipher) -> ProviderResult:
    """The answer as the purchase engine applies it. An exam purchase is delivered only with its PINs: a
    "delivered" without any stays pending (they can arrive on requery); PINs are swapped for ciphertext."""
    if kind != ServiceKind.EXAM.value:
        return dataclasses.replace(result, pins=()) if result.pins else result
    if result.outcome is Outcome.DELIVERED and not result.pins and result.sealed_pins is None:
        return dataclasses.replace(result, outcome=Outcome.PENDING, message=f"{result.message}: {NO_PIN_YET}")
    if result.pins:
        return dataclasses.replace(result, pins=(), sealed_pins=seal(result.pins, cipher))
    return result


# What staff may type for one PIN or serial (letters, digits, dashes: how providers print them).
_PIN_TEXT = re.compile(r"[A-Za-z0-9-]{4,40}")


def staff_pins(raw: str, quantity: int) -> tuple[ExamPin, ...]:
    """The PINs staff copied from the provider's dashboard to mark an exam purchase delivered by hand: one
    line per PIN, `SERIAL,PIN` or the PIN alone, exactly as many as were bought. ValueError with a message
    for staff otherwise (the customer paid for `quantity` PINs and sees only what is entered here)."""
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    wanted = f"{quantity} PIN{'s' if quantity != 1 else ''}"
    if not lines:
        raise ValueError(f"Enter the {wanted} from the provider's dashboard, one per line (SERIAL,PIN).")
    pins: list[ExamPin] = []
    for number, line in enumerate(lines, start=1):
        parts = [part for part in re.split(r"[,;\s]+", line) if part]
        if len(parts) > 2:
            raise ValueError(f"Line {number}: write SERIAL,PIN or the PIN alone.")
        if not all(_PIN_TEXT.fullmatch(part) for part in parts):
            raise ValueError(f"Line {number}: a PIN or serial is 4 to 40 letters, digits or dashes.")
        pin = ExamPin(parts[0] if len(parts) == 2 else None, parts[-1])
        if any(p.pin == pin.pin for p in pins):
            raise ValueError(f"Line {number} repeats a PIN already entered.")
        pins.append(pin)
    if len(pins) != quantity:
        raise ValueError(
            f"This purchase is for {wanted}: enter {quantity}, one per line (you entered {len(pins)})."
        )
    return tuple(pins)


def pins_of(purchase: PurchaseView, cipher: DataCipher) -> list[ExamPin] | None:
    """The purchase's PINs in clear (None: it has none). Show them only to the purchase's owner."""
    if purchase.pins_ciphertext is None:
        return None
    items = json.loads(cipher.decrypt(purchase.pins_ciphertext))
    return [ExamPin(item.get("serial"), str(item["pin"])) for item in items]


__all__ = ["NO_PIN_YET", "pins_of", "seal", "settle_answer", "staff_pins"]
