"""Read models for the funding pages and the API (no writes here)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.payments.models import EVENT_CREDITED, MonnifyEvent, ReservedAccount


async def reservation_for(session: AsyncSession, user_id: uuid.UUID) -> ReservedAccount | None:
    return (
        await session.execute(select(ReservedAccount).where(ReservedAccount.user_id == user_id))
    ).scalar_one_or_none()


async def funding_history(session: AsyncSession, user_id: uuid.UUID, limit: int = 20) -> list[MonnifyEvent]:
    """The customer's credited transfers, newest first."""
    stmt = (
        select(MonnifyEvent)
        .where(MonnifyEvent.user_id == user_id, MonnifyEvent.status == EVENT_CREDITED)
        .order_by(MonnifyEvent.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())
