"""Read models for the referrals page (no writes here)."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.referrals.models import Referral, ReferralBonus
from app.referrals.rules import mask_email


@dataclass(frozen=True, slots=True)
class ReferredFriend:
    masked_email: str
    joined_at: datetime.datetime
    earned_kobo: int  # what this friend has earned the referrer so far
    funded: bool  # the funding bonus was paid


@dataclass(frozen=True, slots=True)
class BonusLine:
    kind: str  # funding | purchase | clawback
    masked_email: str
    amount_kobo: int
    uncollected_kobo: int
    created_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class ReferralSummary:
    friends_count: int
    friends: list[ReferredFriend]
    total_earned_kobo: int
    bonuses: list[BonusLine]


async def summary(
    session: AsyncSession, referrer_id: uuid.UUID, *, friends_limit: int = 50, bonus_limit: int = 20
) -> ReferralSummary:
    """What the referrer sees: friends who signed up with their code (masked) and the bonuses paid."""
    count = (
        await session.execute(
            select(func.count()).select_from(User).where(User.referred_by_id == referrer_id)
        )
    ).scalar_one()
    friend_rows = await session.execute(
        select(User.email, User.created_at, Referral.earned_kobo, Referral.funding_bonus_at)
        .outerjoin(Referral, Referral.referred_id == User.id)
        .where(User.referred_by_id == referrer_id)
        .order_by(User.created_at.desc(), User.id.desc())
        .limit(friends_limit)
    )
    friends = [
        ReferredFriend(mask_email(email), joined, int(earned or 0), funded is not None)
        for email, joined, earned, funded in friend_rows
    ]
    total = (
        await session.execute(
            select(func.coalesce(func.sum(ReferralBonus.amount_kobo), 0)).where(
                ReferralBonus.referrer_id == referrer_id
            )
        )
    ).scalar_one()
    bonus_rows = await session.execute(
        select(
            ReferralBonus.kind,
            User.email,
            ReferralBonus.amount_kobo,
            ReferralBonus.uncollected_kobo,
            ReferralBonus.created_at,
        )
        .join(User, User.id == ReferralBonus.referred_id)
        .where(ReferralBonus.referrer_id == referrer_id)
        .order_by(ReferralBonus.id.desc())
        .limit(bonus_limit)
    )
    bonuses = [
        BonusLine(kind, mask_email(email), int(amount), int(uncollected), created)
        for kind, email, amount, uncollected, created in bonus_rows
    ]
    return ReferralSummary(int(count), friends, int(total), bonuses)


__all__ = ["BonusLine", "ReferralSummary", "ReferredFriend", "summary"]
