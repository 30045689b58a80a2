"""Moving a pending purchase to its next provider attempt (docs/architecture.md, "Provider failover").

Only a FAILED answer that proves the current provider placed no order (`ProviderResult.nothing_placed`)
may start another attempt; anything ambiguous keeps the purchase pending on its provider. The statements
here move no money (the debit stays in flight; the one delivery or refund happens later through
transitions.py), and each is a compare-and-set on the CURRENT attempt's request id:
- `switch`: `WHERE id AND status = 'pending' AND request_id = <the answered one>`, so of racing answers (the
  /pay answer, requery jobs, the sweep, callbacks, staff) exactly one starts the next attempt, and a late
  answer about an earlier attempt can neither start another nor fail the purchase (transitions.apply_result
  checks the request id under the same row lock);
- `claim`: `WHERE ... AND send_at IS NOT NULL`: exactly one caller sends the new attempt's /pay, once.
Nothing here calls a provider; callers send /pay after the transaction has committed.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert

from app.vtu.models import PENDING, PurchaseAttempt
from app.vtu.providers import ProviderResult
from app.vtu.views import COLUMNS, Executor, PurchaseView, purchases_table

_c = purchases_table.c
attempts_table: Table = PurchaseAttempt.__table__  # type: ignore[assignment]
_a = attempts_table.c

NOTHING_PLACED = "nothing_placed"
HELD = "held"


@dataclass(frozen=True, slots=True)
class AttemptRow:
    n: int
    provider_slug: str
    request_id: str
    started_at: datetime.datetime | None
    ended_at: datetime.datetime | None
    outcome: str | None
    code: str | None
    message: str | None


async def attempts_of(session: Executor, purchase_id: uuid.UUID) -> list[AttemptRow]:
    """The logged attempts of a purchase, first first (empty for a purchase sent once)."""
    rows = await session.execute(
        select(
            _a.n, _a.provider_slug, _a.request_id, _a.started_at, _a.ended_at, _a.outcome, _a.code, _a.message
        )
        .where(_a.purchase_id == purchase_id)
        .order_by(_a.n)
    )
    return [AttemptRow(*row) for row in rows]


async def tried_slugs(session: Executor, purchase: PurchaseView) -> set[str]:
    found = await session.execute(select(_a.provider_slug).where(_a.purchase_id == purchase.id))
    return {*found.scalars(), purchase.provider_slug}


async def purchase_for_request_id(session: Executor, request_id: str) -> uuid.UUID | None:
    """The purchase an earlier attempt's request id belongs to (callbacks about it)."""
    found = await session.execute(select(_a.purchase_id).where(_a.request_id == request_id[:40]))
    return found.scalar_one_or_none()


_SWITCH = (
    update(purchases_table)
    .where(
        _c.id == bindparam("pid", type_=_c.id.type),
        _c.status == PENDING,
        _c.request_id == bindparam("old_request_id", type_=String()),
    )
    .values(
        provider_slug=bindparam("slug", type_=String()),
        request_id=bindparam("new_request_id", type_=String()),
        attempt_no=_c.attempt_no + 1,
        send_at=bindparam("send_at", type_=_c.send_at.type),
        next_requery_at=bindparam("send_at", type_=_c.send_at.type),
        paid_at=None,
        # A scheduled requery that found "nothing placed" counts as done, so job keys never repeat; the
        # schedule restarts for the new attempt.
        attempts=func.greatest(_c.attempts, func.coalesce(bindparam("attempt", type_=Integer()), 0)),
        requery_base=func.greatest(_c.attempts, func.coalesce(bindparam("attempt", type_=Integer()), 0)),
        exchanges=_c.exchanges.op("||")(bindparam("exchange", type_=JSONB())),
        provider_code=func.coalesce(bindparam("code", type_=String()), _c.provider_code),
        provider_message=bindparam("message", type_=String()),
        updated_at=bindparam("now", type_=_c.updated_at.type),
    )
    .returning(*COLUMNS)
)


async def switch(
    session: Executor,
    purchase: PurchaseView,
    result: ProviderResult,
    record: dict[str, Any],
    *,
    slug: str,
    new_request_id: str,
    send_at: datetime.datetime,
    attempt: int | None,
    held: bool,
) -> PurchaseView | None:
    """Start attempt `purchase.attempt_no + 1` on `slug` (compare-and-set on the answered request id), to be
    sent at `send_at`, and log both attempts. None when another answer or decision got there first (the
    caller then logs this answer as not applied). Run in a transaction."""
    now = datetime.datetime.now(datetime.UTC)
    outcome = HELD if held else NOTHING_PLACED
    how = "held, to be sent again" if held else "nothing placed: failing over"
    message = f"Attempt {purchase.attempt_no + 1} on {slug} ({how} after {result.code or 'no code'})"
    row = (
        await session.execute(
            _SWITCH,
            {
                "pid": purchase.id,
                "old_request_id": purchase.request_id,
                "slug": slug,
                "new_request_id": new_request_id,
                "send_at": send_at,
                "attempt": attempt,
                "exchange": [
                    record
                    | {
                        "failover": {
                            "to": slug,
                            "request_id": new_request_id,
                            "send_at": send_at.isoformat(),
                            "outcome": outcome,
                        }
                    }
                ],
                "code": (result.code or "")[:8] or None,
                "message": message,
                "now": now,
            },
        )
    ).one_or_none()
    if row is None:
        return None
    ended = insert(attempts_table).values(
        purchase_id=purchase.id,
        n=purchase.attempt_no,
        provider_slug=purchase.provider_slug,
        request_id=purchase.request_id,
        started_at=purchase.paid_at,
        ended_at=now,
        outcome=outcome,
        code=(result.code or "")[:8] or None,
        message=result.message[:2000],
        created_at=now,
        updated_at=now,
    )
    ended = ended.on_conflict_do_update(
        index_elements=[_a.purchase_id, _a.n],
        set_={
            "ended_at": now,
            "outcome": outcome,
            "code": ended.excluded.code,
            "message": ended.excluded.message,
            "updated_at": now,
        },
    )
    await session.execute(ended)
    await session.execute(
        insert(attempts_table).values(
            purchase_id=purchase.id,
            n=purchase.attempt_no + 1,
            provider_slug=slug,
            request_id=new_request_id,
            started_at=None,
            created_at=now,
            updated_at=now,
        )
    )
    return PurchaseView.from_row(row)


_CLAIM = (
    update(purchases_table)
    .where(
        _c.id == bindparam("pid", type_=_c.id.type),
        _c.status == PENDING,
        _c.send_at.is_not(None),
        _c.send_at <= bindparam("now", type_=_c.send_at.type),
    )
    .values(
        send_at=None,
        paid_at=bindparam("now", type_=_c.paid_at.type),
        # Sent by scheduled requery job `attempt`: this attempt's requeries are numbered after it.
        attempts=func.greatest(_c.attempts, func.coalesce(bindparam("attempt", type_=Integer()), 0)),
        requery_base=func.greatest(_c.attempts, func.coalesce(bindparam("attempt", type_=Integer()), 0)),
        next_requery_at=bindparam("next", type_=_c.next_requery_at.type),
        updated_at=bindparam("now", type_=_c.updated_at.type),
    )
    .returning(*COLUMNS)
)


async def claim(
    session: Executor, purchase_id: uuid.UUID, schedule: Sequence[int], *, attempt: int | None = None
) -> PurchaseView | None:
    """Take the current attempt for sending, if it is due and not taken: its `paid_at` becomes now (the
    /pay in-flight window of this attempt starts). None when it is not due or someone else took it.
    Run in a transaction; send /pay after the commit."""
    now = datetime.datetime.now(datetime.UTC)
    nxt = now + datetime.timedelta(seconds=schedule[0] if schedule else 30)
    row = (
        await session.execute(_CLAIM, {"pid": purchase_id, "now": now, "next": nxt, "attempt": attempt})
    ).one_or_none()
    if row is None:
        return None
    claimed = PurchaseView.from_row(row)
    await session.execute(
        update(attempts_table)
        .where(_a.purchase_id == purchase_id, _a.request_id == claimed.request_id)
        .values(started_at=now, updated_at=now)
    )
    return claimed


__all__ = [
    "HELD",
    "NOTHING_PLACED",
    "AttemptRow",
    "attempts_of",
    "claim",
    "purchase_for_request_id",
    "switch",
    "tried_slugs",
]
