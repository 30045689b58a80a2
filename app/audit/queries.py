"""Reading the audit log: newest first, filtered, keyset-paged on the entry id (ids only grow)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.core.keyset import decode_id
from app.core.lagos import LAGOS
from app.core.validation import escape_like

PAGE_SIZE = 50
_a = AuditEntry.__table__.c


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str = ""  # part of the actor's e-mail (or "cli:")
    action: str = ""  # an action or its prefix ("purchase." = every purchase action)
    target_type: str = ""
    target_id: str = ""
    since: datetime.date | None = None  # Lagos dates, inclusive
    until: datetime.date | None = None

    @classmethod
    def from_query(cls, **raw: str | None) -> AuditFilter:
        def text(name: str, limit: int) -> str:
            return (raw.get(name) or "").strip()[:limit]

        return cls(
            actor=text("actor", 254).lower(),
            action=text("action", 64).lower(),
            target_type=text("target_type", 32).lower(),
            target_id=text("target_id", 64),
            since=_date(raw.get("since")),
            until=_date(raw.get("until")),
        )

    @property
    def active(self) -> bool:
        return any((self.actor, self.action, self.target_type, self.target_id, self.since, self.until))

    def query_args(self) -> dict[str, str]:
        args = {
            "actor": self.actor,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return {k: v for k, v in args.items() if v}


def _date(raw: str | None) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat((raw or "").strip()) if raw else None
    except ValueError:
        return None  # an unreadable date is ignored, like other unknown filter values


@dataclass(frozen=True, slots=True)
class AuditPage:
    rows: list[Any]
    next_cursor: str | None


def decode_cursor(raw: str | None) -> int | None:
    return decode_id(raw)


async def list_entries(
    session: AsyncSession, f: AuditFilter, *, before: str | None = None, limit: int = PAGE_SIZE
) -> AuditPage:
    stmt = select(_a.id, _a.at, _a.actor, _a.actor_id, _a.actor_role, _a.action, _a.target_type, _a.target_id,
                  _a.before, _a.after, _a.reason, _a.ip)  # fmt: skip
    if f.actor:
        stmt = stmt.where(_a.actor.ilike(f"%{escape_like(f.actor)}%", escape="\\"))
    if f.action:
        stmt = stmt.where(_a.action.like(f"{escape_like(f.action)}%", escape="\\"))
    if f.target_type:
        stmt = stmt.where(_a.target_type == f.target_type)
    if f.target_id:
        stmt = stmt.where(_a.target_id == f.target_id)
    if f.since:
        stmt = stmt.where(_a.at >= datetime.datetime.combine(f.since, datetime.time(), LAGOS))
    if f.until:
        end = datetime.datetime.combine(f.until + datetime.timedelta(days=1), datetime.time(), LAGOS)
        stmt = stmt.where(_a.at < end)
    if (cursor := decode_cursor(before)) is not None:
        stmt = stmt.where(_a.id < cursor)
    rows = list((await session.execute(stmt.order_by(_a.id.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows, str(rows[-1].id) if more and rows else None)


async def entries_about(
    session: AsyncSession, target_type: str, target_id: object, limit: int = 10
) -> list[Any]:
    """The latest entries about one target (for its page)."""
    stmt = (
        select(_a.id, _a.at, _a.actor, _a.actor_role, _a.action, _a.reason)
        .where(_a.target_type == target_type, _a.target_id == str(target_id))
        .order_by(_a.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


__all__ = ["PAGE_SIZE", "AuditFilter", "AuditPage", "decode_cursor", "entries_about", "list_entries"]
