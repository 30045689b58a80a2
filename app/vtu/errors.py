"""Errors the purchase service raises to its callers (web pages, reseller API). None of them leaves anything
written: they are raised before the purchase transaction commits.

Suggested HTTP mapping: InvalidPurchase 400 (fields), InsufficientFunds 402, IdempotencyMismatch 409,
CustomerNotFound 400 (field), ServiceUnavailable 503, PurchaseNotFound 404, AccountSuspended 403.

`database_errors` is the one place where a database error raised by the purchase SQL (`purchase_open`,
`purchase_deliver`, and the ledger's `ledger_post` they call) becomes one of these or a typed ledger error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.exc import DBAPIError

from app.ledger import errors as ledger_errors

SQLSTATE_SPEND_LIMIT = "VT001"  # raised by purchase_open (DETAIL 'limit=<kobo> spent=<kobo>')
SQLSTATE_SUSPENDED = "VT002"  # raised by purchase_open: the buyer's account is suspended
SQLSTATE_KYC_SINGLE = (
    "VT003"  # purchase_open: over the KYC single-purchase limit (DETAIL 'level= limit= amount=')
)
SQLSTATE_KYC_DAILY = "VT004"  # purchase_open: over the KYC daily limit (DETAIL 'level= limit= spent=')


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


class KycLimitExceeded(PurchaseError):
    """The purchase is over a limit of the buyer's KYC level (KYC_LIMITS, app/accounts/kyc.py): one purchase
    (`scope` "single") or today's purchases on every channel (`scope` "daily"). Nothing was debited and no
    purchase was recorded. Adding a BVN or NIN at /account/kyc raises the limits."""

    code = "kyc_limit_exceeded"

    def __init__(self, scope: str, level: int, limit_kobo: int) -> None:
        from app.core.naira import format_naira

        what = "one purchase" if scope == "single" else "today's purchases (from midnight, Lagos time)"
        hint = " Add your BVN or NIN to raise it." if level < 2 else ""
        limit = format_naira(limit_kobo)
        super().__init__(f"Your limit for {what} is {limit} (KYC level {level}).{hint} Nothing was charged.")
        self.scope = scope
        self.level = level
        self.limit_kobo = limit_kobo


class AccountSuspended(PurchaseError):
    """The buyer's account is suspended by staff (also when the suspension committed while this purchase was
    being opened). Nothing was debited and no purchase was recorded."""

    code = "account_suspended"

    def __init__(self) -> None:
        super().__init__("This account is suspended: contact support. Nothing was charged.")


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


def from_database(exc: BaseException, *, key: str = "", price_kobo: int | None = None) -> Exception | None:
    """Our error for a database error raised by the purchase SQL, or None when it is not one of ours (the
    caller re-raises it as it is). The spend limit (VT001) becomes SpendLimitExceeded; a wallet that cannot
    pay becomes InsufficientFunds (`price_kobo`: what the buyer was asked to pay); every other ledger error
    its typed ledger error (`key`: the posting's idempotency key, for IdempotencyConflict). A suspended
    buyer (VT002) becomes AccountSuspended."""
    if ledger_errors.sqlstate_of(exc) == SQLSTATE_SUSPENDED:
        return AccountSuspended()
    if ledger_errors.sqlstate_of(exc) in (SQLSTATE_KYC_SINGLE, SQLSTATE_KYC_DAILY):
        driver_error = getattr(getattr(exc, "orig", None), "__cause__", None) or exc
        detail = dict(re.findall(r"(\w+)=(-?\d+)", getattr(driver_error, "detail", None) or ""))
        scope = "single" if ledger_errors.sqlstate_of(exc) == SQLSTATE_KYC_SINGLE else "daily"
        return KycLimitExceeded(scope, int(detail.get("level", 0)), int(detail.get("limit", 0)))
    if ledger_errors.sqlstate_of(exc) == SQLSTATE_SPEND_LIMIT:
        driver_error = getattr(getattr(exc, "orig", None), "__cause__", None) or exc
        limit = re.search(r"limit=(-?\d+)", getattr(driver_error, "detail", None) or "")
        return SpendLimitExceeded(int(limit.group(1)) if limit else 0)
    error = ledger_errors.translate(exc, key=key)
    if isinstance(error, ledger_errors.InsufficientFunds):
        price = price_kobo if price_kobo is not None else abs(error.amount or 0)
        return InsufficientFunds(price_kobo=price, balance_kobo=error.balance)
    return error


@contextmanager
def database_errors(*, key: str = "", price_kobo: int | None = None) -> Iterator[None]:
    """Raise `from_database`'s error for a database error in the block (through SQLAlchemy or asyncpg)."""
    try:
        yield
    except (DBAPIError, asyncpg.PostgresError) as exc:
        error = from_database(exc, key=key, price_kobo=price_kobo)
        if error is None:
            raise
        raise error from exc


__all__ = [
    "SQLSTATE_SPEND_LIMIT",
    "SQLSTATE_SUSPENDED",
    "AccountSuspended",
    "CustomerNotFound",
    "IdempotencyMismatch",
    "InsufficientFunds",
    "InvalidPurchase",
    "KycLimitExceeded",
    "PurchaseError",
    "PurchaseNotFound",
    "ServiceUnavailable",
    "SpendLimitExceeded",
    "database_errors",
    "from_database",
]
