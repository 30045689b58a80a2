"""Which transactional e-mails a customer gets. Everything is on until they turn it off. Security links
(password reset, e-mail verification) are not optional and are not listed here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import func

from app.mail.models import MailPreferences
from app.mail.outbox import PREFERENCES


@dataclass(frozen=True, slots=True)
class Choice:
    name: str
    label: str
    hint: str


CHOICES = (
    Choice("funding", "Funding received", "When a bank transfer reaches your wallet."),
    Choice("purchase", "Purchase receipts", "For purchases on the website, with the electricity token."),
    Choice("password", "Password changed", "When your password is changed or reset."),
    Choice("api_key", "New API key", "When an API key is created on your account."),
)
assert tuple(c.name for c in CHOICES) == PREFERENCES


async def load(session: AsyncSession, user_id: uuid.UUID) -> dict[str, bool]:
    row = (await session.execute(select(MailPreferences).where(MailPreferences.user_id == user_id))).scalar()
    return {name: (getattr(row, name) if row is not None else True) for name in PREFERENCES}


async def save(session: AsyncSession, user_id: uuid.UUID, values: dict[str, bool]) -> dict[str, bool]:
    """Upsert the customer's choices (unknown names are ignored; missing ones are off, like an unticked
    checkbox). The caller commits."""
    clean = {name: bool(values.get(name, False)) for name in PREFERENCES}
    stmt = insert(MailPreferences).values(user_id=user_id, **clean)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["user_id"], set_={**clean, "updated_at": func.now()})
    )
    return clean


__all__ = ["CHOICES", "Choice", "load", "save"]
