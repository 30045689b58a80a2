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


def pins_of(purchase: PurchaseView, cipher: DataCipher) -> list[ExamPin] | None:
    """The purchase's PINs in clear (None: it has none). Show them only to the purchase's owner."""
    if purchase.pins_ciphertext is None:
        return None
    items = json.loads(cipher.decrypt(purchase.pins_ciphertext))
    return [ExamPin(item.get("serial"), str(item["pin"])) for item in items]


__all__ = ["NO_PIN_YET", "pins_of", "seal", "settle_answer"]
