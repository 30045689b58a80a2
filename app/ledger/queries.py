"""Read side: balances and keyset-paginated statements. No locks, no writes."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import BindParameter, ColumnElement, bindparam, func, select

from app.ledger.errors import UnknownAccount
from app.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction

if TYPE_CHECKING:
    from sqlalchemy import ScalarSelect
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    Session = AsyncSession | AsyncConnection

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class StatementLine:
    entry_id: int
    transaction_id: int
    amount: int  # signed kobo: positive raised the balance
    balance_after: int | None  # wallets only
    kind: str
    memo: str
    reference_type: str | None
    reference_id: str | None
    idempotency_key: str
    created_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class StatementPage:
    lines: list[StatementLine]
    # Pass as `before` to get the next (older) page; None on the last page.
    next_before: int | None


def wallet_balance_query(user_id: uuid.UUID | BindParameter[uuid.UUID]) -> ScalarSelect[int]:
    """`wallet_balance` as a scalar subquery (NULL without a wallet), to read with other figures. Given a
    bound parameter, a statement built once can be run for any user (no expression building per request)."""
    return select(LedgerAccount.balance).where(LedgerAccount.user_id == user_id).scalar_subquery()


# Built once: every signed-in page that shows the balance runs it (bench/README.md, "pages").
_WALLET_BALANCE = select(LedgerAccount.balance).where(LedgerAccount.user_id == bindparam("user_id"))


async def wallet_balance(session: Session, user_id: uuid.UUID) -> int:
    """The user's wallet balance in kobo, read in O(1) from the wallet row (0 if no wallet exists)."""
    result = await session.execute(_WALLET_BALANCE, {"user_id": user_id})
    return result.scalar_one_or_none() or 0


async def account_balance(session: Session, account_id: int) -> int:
    """Any account's balance: the wallet's running balance, or SUM(entries) for a system account."""
    row = (
        await session.execute(
            select(LedgerAccount.balance, LedgerAccount.kind).where(LedgerAccount.id == account_id)
        )
    ).one_or_none()
    if row is None:
        raise UnknownAccount(f"no ledger account {account_id}")
    if row.balance is not None:
        return int(row.balance)
    total = await session.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.account_id == account_id)
    )
    return int(total.scalar_one())


async def system_balances(session: Session) -> dict[str, int]:
    """Code -> balance of every system account, in one aggregate (system accounts keep no running balance)."""
    totals = (
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount).label("total"))
        .group_by(LedgerEntry.account_id)
        .subquery()
    )
    rows = await session.execute(
        select(LedgerAccount.code, func.coalesce(totals.c.total, 0))
        .outerjoin(totals, totals.c.account_id == LedgerAccount.id)
        .where(LedgerAccount.kind == "system")
        .order_by(LedgerAccount.code)
    )
    return {code: int(total) for code, total in rows}


async def statement(
    session: Session,
    account_id: int | ScalarSelect[int],
    *,
    limit: int = 50,
    before: int | None = None,
    where: Sequence[ColumnElement[bool]] = (),
) -> StatementPage:
    """An account's entries, newest first, `limit` per page; keyset on the entry id (no OFFSET scans).
    `where`: extra conditions on the entry and its transaction (app.ledger.statement's filters)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = (
        select(
            LedgerEntry.id,
            LedgerEntry.transaction_id,
            LedgerEntry.amount,
            LedgerEntry.balance_after,
            LedgerTransaction.kind,
            LedgerTransaction.memo,
            LedgerTransaction.reference_type,
            LedgerTransaction.reference_id,
            LedgerTransaction.idempotency_key,
            LedgerTransaction.created_at,
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    if where:
        query = query.where(*where)
    rows = (await session.execute(query)).all()
    lines = [
        StatementLine(
            entry_id=row.id,
            transaction_id=row.transaction_id,
            amount=row.amount,
            balance_after=row.balance_after,
            kind=row.kind,
            memo=row.memo,
            reference_type=row.reference_type,
            reference_id=row.reference_id,
            idempotency_key=row.idempotency_key,
            created_at=row.created_at,
        )
        for row in rows[:limit]
    ]
    return StatementPage(lines=lines, next_before=lines[-1].entry_id if len(rows) > limit else None)


async def wallet_statement(
    session: Session,
    user_id: uuid.UUID,
    *,
    limit: int = 50,
    before: int | None = None,
    where: Sequence[ColumnElement[bool]] = (),
) -> StatementPage:
    """The user's wallet history (empty when the user has no wallet). One statement: the wallet is found
    inside it (a round trip fewer per page: bench/README.md, "pages")."""
    wallet = select(LedgerAccount.id).where(LedgerAccount.user_id == user_id).scalar_subquery()
    return await statement(session, wallet, limit=limit, before=before, where=where)


async def find_transaction(session: Session, key: str) -> LedgerTransaction | None:
    """The transaction posted under an idempotency key, if any."""
    result = await session.execute(select(LedgerTransaction).where(LedgerTransaction.idempotency_key == key))
    return result.scalar_one_or_none()


async def transaction_entries(session: Session, transaction_id: int) -> list[tuple[str, int]]:
    """(account code, signed amount) for each leg of a transaction, by account id."""
    rows = await session.execute(
        select(LedgerAccount.code, LedgerEntry.amount)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerEntry.transaction_id == transaction_id)
        .order_by(LedgerEntry.account_id)
    )
    return [(code, int(amount)) for code, amount in rows]


__all__ = [
    "StatementLine",
    "StatementPage",
    "account_balance",
    "find_transaction",
    "statement",
    "system_balances",
    "transaction_entries",
    "wallet_balance",
    "wallet_balance_query",
    "wallet_statement",
]
