"""The live overview at /staff: what is happening right now. Read-only; never renders.

Every figure is a range scan over recent rows or a small partial index, so the page (polled every 10 s by
each open tab) costs the same at a million purchases as at a thousand:
- `purchase_counts` (purchase_queries): pending (partial index), needs attention (partial index), oldest
  pending, today's figures (`created_at` / `completed_at` indexes);
- `recent`: purchases created in the last 15 min, margin settled today (`completed_at` index), funding
  credited today (`ix_monnify_events_credited_at`, migration 0017), unmatched transfers (`status` index);
- `success_rates`: final purchases completed in the last hour, by service and by provider (`completed_at`);
- open alerts (`uq_alerts_open_key`, partial) and those cleared in the last 24 h (a small table);
- outside the database: provider floats (app.vtu.balances, cached 60 s), the SAQ queue (`Queue.info()`),
  the worker heartbeat (workers/heartbeat.py) and the last reconcile (app.ledger.reconcile.last_result).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from app.alerts.models import Alert
from app.core.lagos import lagos_midnight
from app.dashboard.purchase_queries import PurchaseCounts, purchase_counts
from app.ledger.reconcile import LastReconcile, last_result
from app.payments import models as m
from app.vtu.models import FAILED, REVERSED, SUCCESSFUL, Purchase
from workers.heartbeat import Heartbeat, last_beat

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.vtu.balances import FloatStatus

RATE_WINDOW = datetime.timedelta(minutes=15)
HOUR = datetime.timedelta(hours=1)
CLEARED_SHOWN = datetime.timedelta(hours=24)

_p = Purchase.__table__.c
_e = m.MonnifyEvent.__table__.c
_a = Alert.__table__.c


@dataclass(frozen=True, slots=True)
class Recent:
    created_15m: int
    margin_today_kobo: int
    funded_today: int
    funded_today_kobo: int  # credited to wallets
    unmatched: int
    unmatched_kobo: int

    @property
    def per_minute(self) -> float:
        return self.created_15m / (RATE_WINDOW.total_seconds() / 60)


@dataclass(slots=True)
class Rate:
    """Successful / (successful + failed + reversed) among purchases that became final in a window."""

    name: str
    ok_15m: int = 0
    final_15m: int = 0
    ok_1h: int = 0
    final_1h: int = 0

    @staticmethod
    def _pct(ok: int, n: int) -> float | None:
        return 100.0 * ok / n if n else None

    @property
    def pct_15m(self) -> float | None:
        return self._pct(self.ok_15m, self.final_15m)

    @property
    def pct_1h(self) -> float | None:
        return self._pct(self.ok_1h, self.final_1h)


@dataclass(frozen=True, slots=True)
class QueueStatus:
    available: bool
    queued: int = 0  # ready to run now
    active: int = 0
    scheduled: int = 0  # waiting for their time (requeries on the back-off schedule)
    workers: int = 0  # SAQ workers that reported in the last minute
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LiveOverview:
    now: datetime.datetime
    since: datetime.datetime  # Lagos midnight
    counts: PurchaseCounts
    recent: Recent
    by_service: list[Rate]
    by_provider: list[Rate]
    open_alerts: list[Alert]
    cleared_alerts: list[Alert]
    floats: list[FloatStatus] = field(default_factory=list)
    queue: QueueStatus = field(default_factory=lambda: QueueStatus(available=False))
    heartbeat: Heartbeat | None = None
    reconcile: LastReconcile | None = None

    @property
    def heartbeat_stale(self) -> bool:
        return self.heartbeat is None or self.heartbeat.stale(self.now)


async def recent(session: AsyncSession, *, now: datetime.datetime) -> Recent:
    midnight = lagos_midnight(now)

    def purchases(*where: Any, what: Any = None) -> Any:
        what = what if what is not None else func.count()
        return select(what).select_from(Purchase.__table__).where(*where).scalar_subquery()

    def events(*where: Any, what: Any = None) -> Any:
        what = what if what is not None else func.count()
        return select(what).select_from(m.MonnifyEvent.__table__).where(*where).scalar_subquery()

    credited = (_e.status == m.EVENT_CREDITED, _e.processed_at >= midnight)
    unmatched = _e.status == m.EVENT_UNMATCHED
    credited_kobo = func.coalesce(func.sum(_e.credited_kobo), 0)
    paid_kobo = func.coalesce(func.sum(_e.amount_paid_kobo), 0)
    row = (
        await session.execute(
            select(
                purchases(_p.created_at >= now - RATE_WINDOW).label("created_15m"),
                purchases(
                    _p.completed_at >= midnight,
                    _p.status == SUCCESSFUL,
                    what=func.coalesce(func.sum(_p.amount_kobo - _p.cost_kobo), 0),
                ).label("margin_today_kobo"),
                events(*credited).label("funded_today"),
                events(*credited, what=credited_kobo).label("funded_today_kobo"),
                events(unmatched).label("unmatched"),
                events(unmatched, what=paid_kobo).label("unmatched_kobo"),
            )
        )
    ).one()
    return Recent(**{k: int(v) for k, v in row._mapping.items()})


async def success_rates(session: AsyncSession, *, now: datetime.datetime) -> tuple[list[Rate], list[Rate]]:
    """(by service, by provider) over purchases completed in the last hour, with the last 15 min apart."""
    recent_15 = _p.completed_at >= now - RATE_WINDOW
    ok = _p.status == SUCCESSFUL
    rows = await session.execute(
        select(
            _p.service_id,
            _p.provider_slug,
            func.count().filter(ok, recent_15).label("ok_15m"),
            func.count().filter(recent_15).label("final_15m"),
            func.count().filter(ok).label("ok_1h"),
            func.count().label("final_1h"),
        )
        .where(_p.completed_at >= now - HOUR, _p.status.in_((SUCCESSFUL, FAILED, REVERSED)))
        .group_by(_p.service_id, _p.provider_slug)
    )
    services: dict[str, Rate] = {}
    providers: dict[str, Rate] = {}
    for row in rows:
        for bucket, name in ((services, row.service_id), (providers, row.provider_slug)):
            rate = bucket.setdefault(name, Rate(name))
            rate.ok_15m += row.ok_15m
            rate.final_15m += row.final_15m
            rate.ok_1h += row.ok_1h
            rate.final_1h += row.final_1h

    def order(rates: dict[str, Rate]) -> list[Rate]:  # the worst (lowest rate, most volume) first
        return sorted(rates.values(), key=lambda r: (r.pct_1h if r.pct_1h is not None else 101, -r.final_1h))

    return order(services), order(providers)


async def alerts(session: AsyncSession, *, now: datetime.datetime) -> tuple[list[Alert], list[Alert]]:
    """(open, oldest first; cleared in the last 24 h, newest first, 10)."""
    open_ = (
        await session.execute(select(Alert).where(_a.cleared_at.is_(None)).order_by(_a.opened_at, _a.id))
    ).scalars()
    cleared = (
        await session.execute(
            select(Alert).where(_a.cleared_at >= now - CLEARED_SHOWN).order_by(_a.cleared_at.desc()).limit(10)
        )
    ).scalars()
    return list(open_), list(cleared)


async def queue_status(queue: Any) -> QueueStatus:
    if queue is None:
        return QueueStatus(available=False, error="no queue configured")
    try:
        info = await queue.info()
    except Exception as exc:  # Redis down: the page says so instead of failing
        return QueueStatus(available=False, error=f"{type(exc).__name__}: {exc}"[:200])
    return QueueStatus(
        available=True,
        queued=int(info.get("queued", 0)),
        active=int(info.get("active", 0)),
        scheduled=max(0, int(info.get("scheduled", 0))),
        workers=len(info.get("workers") or {}),
    )


async def live_overview(
    session: AsyncSession,
    *,
    redis: Any,
    queue: Any,
    floats: list[FloatStatus],
    now: datetime.datetime | None = None,
) -> LiveOverview:
    now = now or datetime.datetime.now(datetime.UTC)
    by_service, by_provider = await success_rates(session, now=now)
    open_alerts, cleared = await alerts(session, now=now)
    return LiveOverview(
        now=now,
        since=lagos_midnight(now),
        counts=await purchase_counts(session, now=now),
        recent=await recent(session, now=now),
        by_service=by_service,
        by_provider=by_provider,
        open_alerts=open_alerts,
        cleared_alerts=cleared,
        floats=floats,
        queue=await queue_status(queue),
        heartbeat=await last_beat(redis),
        reconcile=await last_result(redis),
    )


__all__ = ["LiveOverview", "QueueStatus", "Rate", "Recent", "live_overview", "queue_status"]
