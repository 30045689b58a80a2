"""Running a confirmed bulk order (docs/architecture.md, "Bulk orders"): the SAQ job `run_bulk_order` buys
its lines in order through `PurchaseService.buy`, one purchase per line under the key `bulk:<id>:<line>`.

- **One runner per order**: a run first takes the order's lease (`lease_owner`, `lease_until`: a guarded
  UPDATE), renews it every third of `BULK_LEASE_SECONDS` while it lives, and stops when it loses it. A
  killed worker's lease lapses and `sweep` (SAQ cron, every minute) starts a new run.
- **Nothing twice**: a line is marked `sent` before its purchase is opened and keeps its idempotency key;
  a resumed run buys `sent` lines again with that key, which returns the purchase made before the crash,
  or makes it if it never was. A refused line (insufficient balance, spend limit, a plan gone since the
  check) is `failed` with the reason and moves no money.
- **Pacing**: at most `BULK_LINES_PER_SECOND` lines are started per second, and a line for the same
  number and service as an earlier line waits until `SAME_NUMBER_GAP_SECONDS` after that one was sent
  (VTpass 019), while later lines go ahead.
- A run stops after `RUN_BUDGET_SECONDS` and hands on to the next run (a fresh SAQ job), so no job gets
  near its timeout however long the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.lagos import lagos_midnight
from app.vtu.bulk import SAME_NUMBER_GAP_SECONDS, BulkService, line_key, run_key
from app.vtu.errors import InsufficientFunds, PurchaseError
from app.vtu.orders import PurchaseRequest
from app.vtu.service import SpendLimit
from app.vtu.transitions import utcnow

log = structlog.get_logger("app.vtu.bulk_runner")

RUN_BUDGET_SECONDS = 60
INSUFFICIENT = "Insufficient balance: nothing was charged for this line."

_TAKE = text(
    "UPDATE bulk_orders SET lease_owner = :me, lease_until = now() + make_interval(secs => :lease),"
    " runs = runs + 1, updated_at = now()"
    " WHERE id = :bid AND status = 'running' AND (lease_until IS NULL OR lease_until < now())"
    " RETURNING user_id, channel, api_key_id, runs,"
    " (SELECT tier FROM users WHERE users.id = bulk_orders.user_id) AS tier"
)
_RENEW = text(
    "UPDATE bulk_orders SET lease_until = now() + make_interval(secs => :lease)"
    " WHERE id = :bid AND lease_owner = :me AND status = 'running' RETURNING id"
)
_RELEASE = text(
    "UPDATE bulk_orders SET lease_owner = NULL, lease_until = NULL WHERE id = :bid AND lease_owner = :me"
)
# The next line to buy: the first not yet bought whose number + service was not sent in the last 30 s.
_NEXT = text(
    "SELECT l.line_no, l.phone, l.service_id, l.amount_kobo, l.variation_code FROM bulk_order_lines l"
    " WHERE l.bulk_id = :bid AND l.status IN ('queued', 'sent')"
    " AND NOT EXISTS (SELECT 1 FROM bulk_order_lines o WHERE o.bulk_id = l.bulk_id"
    "  AND o.phone = l.phone AND o.service_id = l.service_id AND o.line_no <> l.line_no"
    "  AND o.sent_at > now() - make_interval(secs => :gap))"
    " ORDER BY l.line_no LIMIT 1"
)
_LEFT = text("SELECT count(*) FROM bulk_order_lines WHERE bulk_id = :bid AND status IN ('queued', 'sent')")
_SEND = text(
    "UPDATE bulk_order_lines SET status = 'sent', sent_at = now(), updated_at = now()"
    " WHERE bulk_id = :bid AND line_no = :no AND status IN ('queued', 'sent')"
    " AND EXISTS (SELECT 1 FROM bulk_orders WHERE id = :bid AND status = 'running' AND lease_owner = :me)"
    " RETURNING line_no"
)
_RECORD = text(
    "UPDATE bulk_order_lines SET status = :status, purchase_id = :pid, error = :error, updated_at = now()"
    " WHERE bulk_id = :bid AND line_no = :no AND status = 'sent'"
)
_FINISH = text(
    "UPDATE bulk_orders SET status = 'done', finished_at = now(), updated_at = now(), lease_owner = NULL,"
    " lease_until = NULL WHERE id = :bid AND lease_owner = :me AND status = 'running'"
    " AND NOT EXISTS (SELECT 1 FROM bulk_order_lines WHERE bulk_id = :bid AND status IN ('queued', 'sent'))"
    " RETURNING id"
)
_STALLED = text(
    "SELECT id, runs FROM bulk_orders WHERE status = 'running'"
    " AND (lease_until IS NULL OR lease_until < now()) ORDER BY created_at LIMIT :n"
)


@dataclass(frozen=True, slots=True)
class _Buyer:
    id: uuid.UUID
    tier: str


class BulkRunner:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bulk: BulkService,
        *,
        lines_per_second: int,
        lease_seconds: int,
        budget_seconds: float = RUN_BUDGET_SECONDS,
        same_number_gap: int = SAME_NUMBER_GAP_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bulk = bulk
        self.purchases = bulk.purchases
        self.interval = 1 / lines_per_second if lines_per_second > 0 else 0.0
        self.lease = lease_seconds
        self.budget = budget_seconds
        self.gap = same_number_gap

    async def _one(self, statement: Any, params: dict[str, Any]) -> Any:
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(statement, params)
            return result.first() if result.returns_rows else None  # type: ignore[attr-defined]

    async def run(self, bulk_id: uuid.UUID) -> str:
        """Buy the order's remaining lines until done, the budget is spent (another run is enqueued), the
        order is cancelled, or another runner holds it. Returns what happened (for the job's result)."""
        me = uuid.uuid4()
        taken = await self._one(_TAKE, {"bid": bulk_id, "me": me, "lease": self.lease})
        if taken is None:
            return "not_taken"  # finished, cancelled, or held by a live runner
        lost = asyncio.Event()
        keeper = asyncio.ensure_future(self._keep_lease(bulk_id, me, lost))
        try:
            return await self._lines(bulk_id, me, taken, lost)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_lease(self, bulk_id: uuid.UUID, me: uuid.UUID, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(max(self.lease / 3, 0.2))
            try:
                if await self._one(_RENEW, {"bid": bulk_id, "me": me, "lease": self.lease}) is None:
                    lost.set()  # cancelled, or taken over after we were presumed dead
                    return
            except Exception:  # the database blinked: try again (the lease outlives a few misses)
                log.warning("bulk_lease_renew_failed", bulk_id=str(bulk_id), exc_info=True)

    async def _lines(self, bulk_id: uuid.UUID, me: uuid.UUID, taken: Any, lost: asyncio.Event) -> str:
        buyer = _Buyer(taken.user_id, taken.tier)
        started = time.monotonic()
        bought = 0
        while True:
            if lost.is_set():
                return "lease_lost"
            # Look for work before the budget: a run that has bought the last line finishes the order
            # itself rather than handing an empty run to the next job.
            line = await self._one(_NEXT, {"bid": bulk_id, "gap": self.gap})
            if line is None:
                if await self._one(_FINISH, {"bid": bulk_id, "me": me}) is not None:
                    log.info("bulk_order_done", bulk_id=str(bulk_id))
                    return f"done after {bought} lines"
                left = (await self._one(_LEFT, {"bid": bulk_id})) or (0,)
                if not left[0]:  # cancelled meanwhile, or the lease is gone
                    await self._one(_RELEASE, {"bid": bulk_id, "me": me})
                    return "stopped"
            if time.monotonic() - started > self.budget:
                await self._one(_RELEASE, {"bid": bulk_id, "me": me})
                await self.bulk.start(bulk_id, taken.runs)  # the next run (the sweep if this fails)
                return f"continued after {bought} lines"
            if line is None:
                await asyncio.sleep(1)  # only lines waiting out the same-number gap are left
                continue
            if await self._one(_SEND, {"bid": bulk_id, "no": line.line_no, "me": me}) is None:
                continue  # cancelled (the next look finds nothing) or the lease was lost
            t0 = time.monotonic()
            reached_provider = await self._buy_line(bulk_id, buyer, taken, line)
            bought += 1
            if self.interval and reached_provider:  # a refused line (e.g. no balance) asked no provider
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - t0)))

    async def _buy_line(self, bulk_id: uuid.UUID, buyer: _Buyer, taken: Any, line: Any) -> bool:
        """Buy one line and record what came of it; False when it was refused before any provider call."""
        request = PurchaseRequest(line.service_id, phone=line.phone, amount_kobo=line.amount_kobo,
                                  variation_code=line.variation_code)  # fmt: skip
        limit = self.purchases.settings.api_daily_spend_limit_kobo if taken.channel == "api" else 0
        status, purchase_id, error, reached = "failed", None, None, False
        try:
            purchase = await self.purchases.buy(
                buyer, request, channel=taken.channel, api_key_id=taken.api_key_id,
                idempotency_key=line_key(bulk_id, line.line_no),
                spend_limit=SpendLimit(limit, _day_start()) if limit > 0 else None,
            )  # fmt: skip
            status, purchase_id, reached = purchase.status, purchase.id, True
            if purchase.status in ("failed", "reversed"):
                error = purchase.provider_message or "The provider refused this top-up; it was refunded."
        except InsufficientFunds:
            error = INSUFFICIENT
        except PurchaseError as exc:  # refused before anything was written (spend limit, plan gone, ...)
            error = exc.message
        await self._one(
            _RECORD, {"bid": bulk_id, "no": line.line_no, "status": status, "pid": purchase_id,
                      "error": (error or None) and error[:500]},
        )  # fmt: skip
        return reached


def _day_start() -> datetime.datetime:
    return lagos_midnight(utcnow()).astimezone(datetime.UTC)


async def sweep(
    sessionmaker: async_sessionmaker[AsyncSession], bulk: BulkService, *, limit: int = 100
) -> int:
    """Start a run for every running order that no live runner holds (its worker died, its job was lost,
    or it was confirmed while SAQ was unreachable). A run still queued under the same key is not doubled;
    one left 'active' by a killed worker is finished as aborted and replaced once past its timeout."""
    async with sessionmaker() as session:
        rows = (await session.execute(_STALLED, {"n": limit})).all()
    started = 0
    for row in rows:
        if await bulk.start(row.id, row.runs):
            started += 1
            continue
        queue = bulk.queue
        if queue is None:
            continue
        with contextlib.suppress(Exception):
            job = await queue.job(run_key(row.id, row.runs))
            if job is not None and job.stuck:
                from saq.job import Status

                await queue.finish(job, Status.ABORTED, error="worker lost; restarted by the bulk sweep")
                started += int(await bulk.start(row.id, row.runs))
    return started


__all__ = ["INSUFFICIENT", "RUN_BUDGET_SECONDS", "BulkRunner", "sweep"]
