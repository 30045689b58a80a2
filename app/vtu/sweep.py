"""The sweep: nothing pending is lost (docs/architecture.md, purchase step 7). `next_requery_at` in the row is
the source of truth; pending purchases whose requery is overdue (the job was lost: worker killed, Redis
flushed, enqueue failed) are handed to the worker again, or requeried here with `inline`. Run every minute
by the SAQ cron `sweep_pending_purchases` and by `vtu purchases sweep`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.vtu.context import PurchaseContext
from app.vtu.models import PENDING
from app.vtu.scheduling import Scheduled
from app.vtu.settlement import PurchaseSettlement, max_pay, pay_in_flight
from app.vtu.transitions import utcnow
from app.vtu.views import SELECT_PURCHASE, PurchaseView, purchases_table

log = structlog.get_logger("app.vtu.sweep")

SWEEP_GRACE_SECONDS = 15  # a job due this long ago and not run is presumed lost (re-enqueue is harmless)
SWEEP_BATCH = 500
_c = purchases_table.c


@dataclass(slots=True)
class SweepReport:
    due: int = 0
    enqueued: int = 0
    already_queued: int = 0
    revived: int = 0
    unavailable: int = 0
    requeried: int = 0  # inline sweeps only
    in_flight: int = 0  # overdue but left alone: their /pay may still be on its way (not counted in `due`)
    ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.due} pending purchases due for a requery: {self.enqueued} enqueued, "
            f"{self.revived} revived from a lost job, {self.already_queued} already queued, "
            f"{self.unavailable} not enqueued (queue unavailable), {self.requeried} requeried inline; "
            f"{self.in_flight} left alone with /pay still in flight"
        )


def vars_of(report: SweepReport) -> dict[str, Any]:
    return {k: getattr(report, k) for k in report.__dataclass_fields__}


async def sweep(
    ctx: PurchaseContext,
    settlement: PurchaseSettlement,
    *,
    grace_seconds: int = SWEEP_GRACE_SECONDS,
    limit: int = SWEEP_BATCH,
    inline: bool = False,
) -> SweepReport:
    """Find pending purchases whose requery is overdue and hand them to the worker again (or requery them
    here with `inline`). A purchase whose /pay may still be on its way is left alone: its answer settles
    it or schedules its requeries, and if that never comes a later sweep finds it."""
    cutoff = utcnow() - datetime.timedelta(seconds=grace_seconds)
    async with ctx.sessionmaker() as session:
        overdue = [
            PurchaseView.from_row(row)
            for row in await session.execute(
                SELECT_PURCHASE.where(_c.status == PENDING, _c.next_requery_at <= cutoff)
                .order_by(_c.next_requery_at)
                .limit(limit)
            )
        ]
    now = utcnow()
    due = []
    for purchase in overdue:
        if pay_in_flight(purchase, max_pay(ctx.providers.get(purchase.provider_slug)), now):
            continue
        due.append((purchase.id, purchase.attempts))
    report = SweepReport(due=len(due), in_flight=len(overdue) - len(due))
    for purchase_id, attempts in due:
        report.ids.append(str(purchase_id))
        if inline:
            try:
                await settlement.requery(purchase_id, source="sweep", attempt=attempts + 1)
                report.requeried += 1
            except Exception:  # one broken purchase must not stop the sweep of the others
                log.exception("purchase_sweep_requery_failed", purchase_id=str(purchase_id))
            continue
        outcome: Scheduled = await ctx.scheduler.schedule(purchase_id, attempts + 1, now, revive_stuck=True)
        setattr(report, outcome, getattr(report, outcome) + 1)
    if report.due or report.in_flight:
        log.info("purchase_sweep", **{k: v for k, v in vars_of(report).items() if k != "ids"})
    return report


__all__ = ["SWEEP_BATCH", "SWEEP_GRACE_SECONDS", "SweepReport", "sweep"]
