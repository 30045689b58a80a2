"""Typed ledger errors, and the translation from the SQLSTATEs that the PL/pgSQL code raises.

A database error aborts the caller's transaction: after any of these (except InvalidPosting, which is
raised before anything is sent) the caller must roll back, or wrap the posting in a savepoint.
"""

from __future__ import annotations

import re
from typing import Any

# Custom SQLSTATEs raised by the migration's PL/pgSQL (class "LG" is unused by PostgreSQL).
SQLSTATE_INSUFFICIENT_FUNDS = "LG001"
SQLSTATE_IDEMPOTENCY_CONFLICT = "LG002"
SQLSTATE_UNKNOWN_ACCOUNT = "LG003"
SQLSTATE_UNBALANCED = "LG004"
SQLSTATE_APPEND_ONLY = "LG005"


class LedgerError(Exception):
    """Base class of every ledger error."""


class InvalidPosting(LedgerError, ValueError):
    """The legs or fields of a posting are malformed (fewer than 2 legs, not summing to 0, ...)."""


class UnbalancedTransaction(LedgerError):
    """The database refused a transaction whose entries do not balance (the deferred check at COMMIT)."""


class InsufficientFunds(LedgerError):
    """A wallet leg would take the wallet below zero. Nothing was posted."""

    def __init__(
        self,
        message: str,
        *,
        account_id: int | None = None,
        balance: int | None = None,
        amount: int | None = None,
    ) -> None:
        super().__init__(message)
        self.account_id = account_id
        self.balance = balance
        self.amount = amount


class IdempotencyConflict(LedgerError):
    """The idempotency key already names a transaction with different legs (or kind)."""

    def __init__(self, message: str, *, key: str, transaction_id: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.transaction_id = transaction_id


class UnknownAccount(LedgerError):
    """A leg names an account that does not exist."""


class AppendOnlyViolation(LedgerError):
    """Something tried to UPDATE/DELETE/TRUNCATE ledger rows; corrections are reversing transactions."""


_DETAIL_NUMBERS = re.compile(r"(\w+)=(-?\d+)")


def _cause(exc: BaseException) -> Any:
    """The driver's exception (asyncpg), which carries sqlstate and detail."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "__cause__", None) or orig


def sqlstate_of(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) or getattr(_cause(exc), "sqlstate", None)


def translate(exc: BaseException, *, key: str = "") -> LedgerError | None:
    """The typed error for a database error raised by the ledger's SQL, or None for anything else."""
    state = sqlstate_of(exc)
    if state is None or not state.startswith("LG"):
        return None
    cause = _cause(exc)
    message = getattr(cause, "message", None) or str(exc)
    detail = getattr(cause, "detail", None) or ""
    numbers = {k: int(v) for k, v in _DETAIL_NUMBERS.findall(detail)}
    if state == SQLSTATE_INSUFFICIENT_FUNDS:
        return InsufficientFunds(
            message,
            account_id=numbers.get("account"),
            balance=numbers.get("balance"),
            amount=numbers.get("amount"),
        )
    if state == SQLSTATE_IDEMPOTENCY_CONFLICT:
        match = re.search(r"transaction (\d+)", detail)
        return IdempotencyConflict(message, key=key, transaction_id=int(match.group(1)) if match else None)
    if state == SQLSTATE_UNKNOWN_ACCOUNT:
        return UnknownAccount(message)
    if state == SQLSTATE_UNBALANCED:
        return UnbalancedTransaction(message)
    if state == SQLSTATE_APPEND_ONLY:
        return AppendOnlyViolation(message)
    return LedgerError(message)


__all__ = [
    "AppendOnlyViolation",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidPosting",
    "LedgerError",
    "UnbalancedTransaction",
    "UnknownAccount",
    "sqlstate_of",
    "translate",
]
