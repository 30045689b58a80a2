"""Reserved bank accounts: ask Monnify once per customer, store the numbers, retry while Monnify is down.

The HTTP call to Monnify never runs inside a database transaction (invariant 8): read what is needed,
release the connection, call Monnify, then write the result in a new short transaction.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.models import User
from app.payments.models import (
    RESERVATION_ACTIVE,
    RESERVATION_FAILED,
    RESERVATION_PENDING,
    ReservedAccount,
    ReservedBankAccount,
)
from app.payments.monnify_client import MonnifyClient, MonnifyError

log = structlog.get_logger("app.payments.reservations")


async def get_reservation(session: AsyncSession, user_id: uuid.UUID) -> ReservedAccount | None:
    return (
        await session.execute(select(ReservedAccount).where(ReservedAccount.user_id == user_id))
    ).scalar_one_or_none()


async def request_reservation(session: AsyncSession, user: User) -> ReservedAccount:
    """Record that this customer needs accounts (idempotent); the worker does the Monnify call."""
    await session.execute(
        insert(ReservedAccount)
        .values(
            id=uuid.uuid4(),
            user_id=user.id,
            account_reference=user.account_reference,
            account_name=user.display_name[:120],
            status=RESERVATION_PENDING,
        )
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    reservation = await get_reservation(session, user.id)
    assert reservation is not None
    return reservation


async def reserve_for_user(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: MonnifyClient,
    user_id: uuid.UUID,
    *,
    bvn: str | None = None,
    nin: str | None = None,
) -> ReservedAccount | None:
    """Make sure `user_id` has active reserved accounts. Safe to run twice (Monnify dedupes on reference).

    `bvn` / `nin`: the customer's KYC numbers (app/accounts/kyc.py), sent with the v2 creation when the
    accounts are made now; an account that already exists gets them through `update_kyc_info` instead."""
    async with sessionmaker() as session:
        user = await session.get(User, user_id)
        if user is None:
            return None
        reservation = await request_reservation(session, user)
        await session.commit()
        if reservation.status == RESERVATION_ACTIVE and reservation.banks:
            return reservation
        email, name, reference = user.email, user.display_name, user.account_reference
    try:
        result = await client.create_reserved_account(
            account_reference=reference,
            account_name=name[:120],
            customer_email=email,
            customer_name=name,
            bvn=bvn,
            nin=nin,
        )
    except MonnifyError as exc:
        async with sessionmaker() as session:
            row = await get_reservation(session, user_id)
            if row is not None and row.status != RESERVATION_ACTIVE:
                row.status = RESERVATION_FAILED
                row.attempts += 1
                row.last_error = str(exc)[:500]
                await session.commit()
        log.warning("monnify_reservation_failed", user_id=str(user_id), error=str(exc))
        raise
    async with sessionmaker() as session:
        row = await get_reservation(session, user_id)
        assert row is not None
        for bank in result.accounts:
            await session.execute(
                insert(ReservedBankAccount)
                .values(
                    id=uuid.uuid4(),
                    reservation_id=row.id,
                    bank_code=bank.bank_code,
                    bank_name=bank.bank_name,
                    account_number=bank.account_number,
                )
                .on_conflict_do_nothing(index_elements=["account_number"])
            )
        row.status = RESERVATION_ACTIVE
        row.reservation_reference = result.reservation_reference
        row.account_name = result.account_name or row.account_name
        row.attempts += 1
        row.last_error = None
        await session.commit()
        await session.refresh(row, ["banks"])
        return row


async def users_needing_reservation(session: AsyncSession, limit: int = 100) -> list[uuid.UUID]:
    """Customers without active accounts (new sign-ups, or Monnify was down): the sweep's work list."""
    stmt = (
        select(User.id)
        .outerjoin(ReservedAccount, ReservedAccount.user_id == User.id)
        .where(User.is_active.is_(True))
        .where(
            (ReservedAccount.id.is_(None))
            | (
                (ReservedAccount.status != RESERVATION_ACTIVE)
                # back off: wait `attempts` minutes (at most 30) after each failure
                & (
                    ReservedAccount.updated_at
                    < func.now() - func.make_interval(0, 0, 0, 0, 0, func.least(ReservedAccount.attempts, 30))
                )
            )
        )
        .order_by(User.created_at)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())
