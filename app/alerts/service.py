"""Raising and clearing alerts from the checks' results, and e-mailing staff about them.

- `sync(session, checks, now)`: each condition true now is upserted into `alerts` (INSERT ... ON CONFLICT on
  the partial unique index `uq_alerts_open_key` DO UPDATE last_seen_at/message/details): a new row is a newly
  raised alert, an existing open row is only touched. Two runs at once: the second INSERT waits for the
  first to commit and then updates its row, so an alert is raised once. An open alert whose check ran and
  no longer finds its condition is cleared (`cleared_at`, a guarded UPDATE: cleared once).
- Each raised alert is e-mailed once to every active staff member with role operations or above
  (outbox key `alert:<alert id>:<user id>`), and its clearing likewise (`alert-cleared:<id>:<user id>`). The
  rows are written in the checker's transaction and sent by the worker after the commit (app/mail).
- `run(...)`: evaluate + sync + mail, the cron job's body (the caller commits).
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, text

from app.accounts.models import User
from app.accounts.staff_roles import ROLES, SUPPORT
from app.alerts.checks import Check, evaluate
from app.mail import outbox

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.config.settings import Settings
    from app.vtu.runtime import VtuRuntime

log = structlog.get_logger("app.alerts")

MAIL_ROLES = tuple(r for r in ROLES if r != SUPPORT)  # operations and above are woken by alerts

_UPSERT = text(
    "INSERT INTO alerts (key, opened_at, last_seen_at, message, details)"
    " VALUES (:key, :now, :now, :message, CAST(:details AS jsonb))"
    " ON CONFLICT (key) WHERE cleared_at IS NULL"
    " DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at, message = EXCLUDED.message,"
    " details = EXCLUDED.details"
    " RETURNING id, key, message, opened_at, (xmax = 0) AS inserted"
)
_OPEN = text("SELECT id, key FROM alerts WHERE cleared_at IS NULL")
_CLEAR = text(
    "UPDATE alerts SET cleared_at = :now WHERE id = ANY(:ids) AND cleared_at IS NULL"
    " RETURNING id, key, message, opened_at"
)


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    key: str
    message: str
    opened_at: datetime.datetime


@dataclass(slots=True)
class Outcome:
    raised: list[Change] = field(default_factory=list)
    cleared: list[Change] = field(default_factory=list)
    still_open: int = 0
    mails: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "raised": [c.key for c in self.raised],
            "cleared": [c.key for c in self.cleared],
            "still_open": self.still_open,
            "mails": self.mails,
        }


async def sync(session: AsyncSession, checks: list[Check], now: datetime.datetime) -> Outcome:
    outcome = Outcome()
    current = {c.key: c for check in checks for c in check.conditions}
    for key in sorted(current):  # one order in every run: concurrent runs wait, never deadlock
        condition = current[key]
        row = (
            await session.execute(
                _UPSERT,
                {
                    "key": key[:200],
                    "now": now,
                    "message": condition.message,
                    "details": json.dumps(condition.details, default=str),
                },
            )
        ).one()
        if row.inserted:
            outcome.raised.append(Change(row.id, row.key, row.message, row.opened_at))
        else:
            outcome.still_open += 1
    ended = [
        row.id
        for row in await session.execute(_OPEN)
        if row.key not in current and any(check.owns(row.key) for check in checks)
    ]
    if ended:
        for row in await session.execute(_CLEAR, {"now": now, "ids": sorted(ended)}):
            outcome.cleared.append(Change(row.id, row.key, row.message, row.opened_at))
    return outcome


async def recipients(session: AsyncSession) -> list[tuple[uuid.UUID, str]]:
    """Active, unsuspended staff with role operations or above: (id, e-mail)."""
    rows = await session.execute(
        select(User.id, User.email)
        .where(
            User.is_active.is_(True),
            User.is_staff.is_(True),
            User.suspended_at.is_(None),
            User.staff_role.in_(MAIL_ROLES),
        )
        .order_by(User.email)
    )
    return [(row.id, row.email) for row in rows]


async def mail(session: AsyncSession, outcome: Outcome, now: datetime.datetime) -> int:
    """Record the e-mails about what was raised and cleared (sent after the caller commits)."""
    if not (outcome.raised or outcome.cleared):
        return 0
    people = await recipients(session)
    written = 0
    for prefix, template, changes in (
        ("alert", "staff_alert", outcome.raised),
        ("alert-cleared", "staff_alert_cleared", outcome.cleared),
    ):
        for change in changes:
            context = {
                "alert_id": change.id,
                "key": change.key,
                "message": change.message,
                "opened_at": change.opened_at.isoformat(),
                "at": now.isoformat(),
            }
            for user_id, _email in people:
                mail_id = await outbox.add(
                    session,
                    key=f"{prefix}:{change.id}:{user_id}",
                    user_id=user_id,
                    template=template,
                    context=context,
                )
                outbox.kick_after_commit(session, mail_id)
                written += mail_id is not None
    return written


async def run(
    session: AsyncSession,
    *,
    redis: Any,
    runtime: VtuRuntime,
    settings: Settings,
    now: datetime.datetime | None = None,
) -> Outcome:
    """Evaluate every condition, raise / clear alerts, record the e-mails. The caller commits."""
    now = now or datetime.datetime.now(datetime.UTC)
    checks = await evaluate(session, redis=redis, runtime=runtime, settings=settings, now=now)
    outcome = await sync(session, checks, now)
    outcome.mails = await mail(session, outcome, now)
    for change in outcome.raised:
        log.error("alert_raised", alert=True, key=change.key, message=change.message, alert_id=change.id)
    for change in outcome.cleared:
        log.info("alert_cleared", key=change.key, alert_id=change.id)
    return outcome


__all__ = ["Change", "Outcome", "mail", "recipients", "run", "sync"]
