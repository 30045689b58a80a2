"""Figures for the staff console. Read-only queries; never renders."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User

# Above this many users (by the planner's estimate) the overview shows the estimate ("about N") instead of
# counting every user on each visit (~50 ms at 200,000 users); below it, the exact count costs nothing.
EXACT_USERS_BELOW = 50_000


@dataclass(frozen=True, slots=True)
class Overview:
    users: int
    resellers: int
    signups_24h: int
    recent: list[User]
    users_about: bool = False  # `users` is PostgreSQL's estimate (pg_class.reltuples, kept by ANALYZE)


async def overview(session: AsyncSession, *, recent_limit: int = 20) -> Overview:
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=24)
    estimate = (
        await session.execute(text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'users'::regclass"))
    ).scalar_one_or_none()
    about = estimate is not None and estimate >= EXACT_USERS_BELOW
    resellers = select(func.count()).select_from(User).where(User.tier == "reseller")  # ix_users_resellers
    signups = select(func.count()).select_from(User).where(User.created_at >= since)  # ix_users_created_at
    everyone = select(func.count()).select_from(User)
    counts = (
        await session.execute(
            select(
                literal(int(estimate or 0)) if about else everyone.scalar_subquery(),
                resellers.scalar_subquery(),
                signups.scalar_subquery(),
            )
        )
    ).one()
    recent = (
        await session.execute(select(User).order_by(User.created_at.desc()).limit(recent_limit))
    ).scalars()
    return Overview(
        users=int(counts[0]),
        resellers=int(counts[1]),
        signups_24h=int(counts[2]),
        recent=list(recent),
        users_about=about,
    )
