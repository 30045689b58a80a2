"""Figures for the staff console. Read-only queries; never renders."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User


@dataclass(frozen=True, slots=True)
class Overview:
    users: int
    resellers: int
    signups_24h: int
    recent: list[User]


async def overview(session: AsyncSession, *, recent_limit: int = 20) -> Overview:
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=24)
    counts = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(User.tier == "reseller"),
                func.count().filter(User.created_at >= since),
            ).select_from(User)
        )
    ).one()
    recent = (
        await session.execute(select(User).order_by(User.created_at.desc()).limit(recent_limit))
    ).scalars()
    return Overview(users=counts[0], resellers=counts[1], signups_24h=counts[2], recent=list(recent))
