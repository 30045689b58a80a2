"""Reading purchases and balances (no writes): for the receipt and history pages, the reseller API, the staff
console, and the engine itself (a purchase by id or by idempotency key)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.keyset import Cursor, older_than
from app.ledger.queries import wallet_balance
from app.vtu.errors import InvalidPurchase, PurchaseNotFound
from app.vtu.failover import purchase_for_request_id
from app.vtu.models import STATUSES
from app.vtu.views import SELECT_PURCHASE, Executor, PurchaseView, purchases_table

Sessions = async_sessionmaker[AsyncSession]
_c = purchases_table.c


async def one(sessionmaker: Sessions, query: Any) -> PurchaseView | None:
    """The purchase a SELECT_PURCHASE query finds, or None."""
    async with sessionmaker() as session:
        row = (await session.execute(query)).one_or_none()
    return PurchaseView.from_row(row) if row is not None else None


async def find(sessionmaker: Sessions, purchase_id: uuid.UUID) -> PurchaseView | None:
    return await one(sessionmaker, SELECT_PURCHASE.where(_c.id == purchase_id))


async def by_idempotency_key(sessionmaker: Sessions, user_id: uuid.UUID, key: str) -> PurchaseView | None:
    return await one(sessionmaker, SELECT_PURCHASE.where(_c.user_id == user_id, _c.idempotency_key == key))


async def by_request_id(session: Executor, request_id: str) -> uuid.UUID | None:
    """The id of the purchase sent to the provider with `request_id` (callbacks name purchases so): its
    current attempt's, or an earlier attempt's (app/vtu/failover.py)."""
    found = await session.execute(select(_c.id).where(_c.request_id == request_id[:40]))
    current = found.scalar_one_or_none()
    if current is not None:
        return current
    return await purchase_for_request_id(session, request_id)


async def get(
    sessionmaker: Sessions, purchase_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> PurchaseView:
    """A purchase; with `user_id`, only that user's (PurchaseNotFound otherwise, also for others')."""
    purchase = await find(sessionmaker, purchase_id)
    if purchase is None or (user_id is not None and purchase.user_id != user_id):
        raise PurchaseNotFound("No such purchase.")
    return purchase


async def list_for_user(
    sessionmaker: Sessions,
    user_id: uuid.UUID,
    *,
    status: str | None = None,
    limit: int = 50,
    before: Cursor | None = None,
) -> list[PurchaseView]:
    """The user's purchases, newest first. Keyset paging (`app.core.keyset`): `before` is the last row of the
    previous page."""
    if status is not None and status not in STATUSES:
        raise InvalidPurchase({"status": f"Use one of {', '.join(STATUSES)}."})
    stmt = SELECT_PURCHASE.where(_c.user_id == user_id)
    if status:
        stmt = stmt.where(_c.status == status)
    if before is not None:
        stmt = stmt.where(older_than(_c.created_at, _c.id, before))
    stmt = stmt.order_by(_c.created_at.desc(), _c.id.desc()).limit(max(1, min(limit, 200)))
    async with sessionmaker() as session:
        return [PurchaseView.from_row(row) for row in await session.execute(stmt)]


async def balance(sessionmaker: Sessions, user_id: uuid.UUID) -> int:
    """The user's wallet balance in kobo."""
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


__all__ = ["balance", "by_idempotency_key", "by_request_id", "find", "get", "list_for_user", "one"]
