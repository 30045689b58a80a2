"""Errors the purchase service raises to its callers (web pages, reseller API). None of them leaves anything
written: they are raised before the purchase transaction commits.

Suggested HTTP mapping: InvalidPurchase 400 (fields), InsufficientFunds 402, IdempotencyMismatch 409,
CustomerNotFound 400 (field), ServiceUnavailable 503, PurchaseNotFound 404.
"""

from __future__ import annotations


class PurchaseError(Exception):
    """Base class of every purchase service error."""

    code = "purchase_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidPurchase(PurchaseError):
    """The request breaks the input rules; `fields` maps each bad field to a message for the buyer."""

    code = "invalid_request"

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = dict(fields)


class InsufficientFunds(PurchaseError):
    """The wallet cannot pay the price. Nothing was debited and no purchase was recorded."""

    code = "insufficient_funds"

    def __init__(self, *, price_kobo: int, balance_kobo: int | None) -> None:
        super().__init__("Your wallet balance is too low for this purchase.")
        self.price_kobo = price_kobo
        self.balance_kobo = balance_kobo


class SpendLimitExceeded(PurchaseError):
    """The purchase would take the buyer's spending through this channel today over their daily limit.
    Nothing was debited and no purchase was recorded."""

    code = "limit_exceeded"

    def __init__(self, limit_kobo: int) -> None:
        super().__init__(
            f"This purchase would take today's spending over your daily limit of {limit_kobo} kobo "
            "(the day starts at midnight, Lagos time). Nothing was charged."
        )
        self.limit_kobo = limit_kobo


class IdempotencyMismatch(PurchaseError):
    """The same idempotency key was used before for a different request (the API's 409)."""

    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used for a different request.")
        self.key = key


class CustomerNotFound(PurchaseError):
    """The provider checked the meter / smartcard number and rejected it."""

    code = "customer_not_found"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ServiceUnavailable(PurchaseError):
    """The provider could not be asked something we need before selling (e.g. meter verification)."""

    code = "service_unavailable"


class PurchaseNotFound(PurchaseError):
    code = "not_found"


__all__ = [
    "CustomerNotFound",
    "IdempotencyMismatch",
    "InsufficientFunds",
    "InvalidPurchase",
    "PurchaseError",
    "PurchaseNotFound",
    "ServiceUnavailable",
    "SpendLimitExceeded",
]
