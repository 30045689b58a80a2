"""The one posting API: every movement of money goes through `post_transaction`.

A posting is ONE statement, `SELECT ... FROM ledger_post(...)` (see the 0002 migration), run inside the
caller's database transaction; nothing here commits. It inserts the transaction under its idempotency key,
moves wallet balances with conditional updates in account-id order, and writes the entries. The zero-sum
rule is checked again by PostgreSQL at COMMIT.

Requires READ COMMITTED (PostgreSQL's default): a poster waiting on a wallet row re-checks the balance it
finds once the row is free, instead of failing with a serialization error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.db import connection_of
from app.ledger.errors import InvalidPosting, translate

_KIND = re.compile(r"^[a-z][a-z0-9_.:-]{0,31}$")
MAX_KEY = 200
MAX_MEMO = 255
MAX_CREATED_BY = 64
MAX_REFERENCE_TYPE = 32
MAX_REFERENCE_ID = 64

# One statement per posting. Sent with exec_driver_sql: no SQL compilation per call, and asyncpg keeps it
# prepared per connection (measured ~10% less client CPU per posting than a text() construct).
_POST = "SELECT tx_id, replayed, wallet_ids, wallet_balances FROM ledger_post($1, $2, $3, $4, $5, $6, $7, $8)"


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a transaction: a signed kobo amount on an account (positive raises its balance)."""

    account_id: int
    amount: int


def credit(account_id: int, amount: int) -> Leg:
    """A leg that raises the account's balance by `amount` kobo (> 0)."""
    return Leg(account_id, amount)


def debit(account_id: int, amount: int) -> Leg:
    """A leg that lowers the account's balance by `amount` kobo (> 0)."""
    return Leg(account_id, -amount)


@dataclass(frozen=True, slots=True)
class PostingResult:
    transaction_id: int
    # True when the key had already been posted: nothing moved this time.
    replayed: bool
    # Wallet account id -> balance after this posting (for a replay: the current balance).
    balances: dict[int, int]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def normalise_legs(legs: Sequence[Leg]) -> tuple[list[int], list[int]]:
    """Validate legs and sort them by account id: (account ids, amounts). Raises InvalidPosting."""
    if len(legs) < 2:
        raise InvalidPosting(f"a ledger transaction needs at least two legs, got {len(legs)}")
    seen: set[int] = set()
    total = 0
    for leg in legs:
        if not (_is_int(leg.account_id) and leg.account_id > 0):
            raise InvalidPosting(f"leg account must be a positive integer id, got {leg.account_id!r}")
        if not _is_int(leg.amount) or leg.amount == 0:
            raise InvalidPosting(f"leg amount must be a non-zero integer (kobo), got {leg.amount!r}")
        if leg.account_id in seen:
            raise InvalidPosting(f"account {leg.account_id} appears in more than one leg; combine them")
        seen.add(leg.account_id)
        total += leg.amount
    if total != 0:
        raise InvalidPosting(f"legs must sum to 0 kobo, they sum to {total}")
    ordered = sorted(legs, key=lambda leg: leg.account_id)
    return [leg.account_id for leg in ordered], [leg.amount for leg in ordered]


def _check_text(name: str, value: str, limit: int, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidPosting(f"{name} must be a string")
    if not allow_empty and not value:
        raise InvalidPosting(f"{name} must not be empty")
    if len(value) > limit:
        raise InvalidPosting(f"{name} is longer than {limit} characters")
    return value


async def post_transaction(
    session: AsyncSession | AsyncConnection,
    *,
    key: str,
    kind: str,
    legs: Sequence[Leg],
    memo: str = "",
    reference: tuple[str, object] | None = None,
    created_by: str = "system",
) -> PostingResult:
    """Post a balanced transaction once per `key`, inside the caller's DB transaction (never commits).

    Same key + same kind and legs -> the existing transaction, replayed=True, nothing moves (also when
    posts race). Raises InvalidPosting (before any SQL), InsufficientFunds, IdempotencyConflict (same key,
    different legs) or UnknownAccount; after the last three the caller's transaction must be rolled back.
    `reference` names the business object, e.g. ("purchase", purchase.id).
    """
    _check_text("key", key, MAX_KEY, allow_empty=False)
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise InvalidPosting(f"kind must match {_KIND.pattern}, got {kind!r}")
    _check_text("memo", memo, MAX_MEMO)
    _check_text("created_by", created_by, MAX_CREATED_BY, allow_empty=False)
    reference_type = reference_id = None
    if reference is not None:
        reference_type = _check_text("reference type", reference[0], MAX_REFERENCE_TYPE, allow_empty=False)
        reference_id = _check_text("reference id", str(reference[1]), MAX_REFERENCE_ID, allow_empty=False)
    account_ids, amounts = normalise_legs(legs)
    params = (key, kind, memo, reference_type, reference_id, created_by, account_ids, amounts)
    # What session.execute would do: pending ORM changes reach the database first, in caller order.
    connection = await connection_of(session)
    try:
        row = (await connection.exec_driver_sql(_POST, params)).one()
    except DBAPIError as exc:
        error = translate(exc, key=key)
        if error is None:
            raise
        raise error from exc
    return PostingResult(
        transaction_id=row.tx_id,
        replayed=row.replayed,
        balances=dict(zip(row.wallet_ids, row.wallet_balances, strict=True)),
    )


async def transfer(
    session: AsyncSession | AsyncConnection,
    *,
    key: str,
    from_account: int,
    to_account: int,
    amount: int,
    kind: str,
    memo: str = "",
    reference: tuple[str, object] | None = None,
    created_by: str = "system",
) -> PostingResult:
    """Move `amount` kobo (> 0) from one account to another: a two-leg post_transaction."""
    if not _is_int(amount) or amount <= 0:
        raise InvalidPosting(f"transfer amount must be a positive integer (kobo), got {amount!r}")
    return await post_transaction(
        session,
        key=key,
        kind=kind,
        legs=(debit(from_account, amount), credit(to_account, amount)),
        memo=memo,
        reference=reference,
        created_by=created_by,
    )


__all__ = ["Leg", "PostingResult", "credit", "debit", "normalise_legs", "post_transaction", "transfer"]
