"""The conditions the alert checker evaluates every minute. Read-only; each returns a `Check`: the family of
alert keys it decides about and the conditions true now. A check that could not be evaluated (the provider
did not answer its balance call) returns nothing, so its open alerts are neither raised nor cleared.

| family (key) | true when |
| --- | --- |
| `worker_heartbeat` | the worker's heartbeat (workers/heartbeat.py) is missing or older than 3 min |
| `reconcile` | the last `reconcile_ledger` run found drift |
| `float_low:<provider>` | the provider's balance is below ALERT_FLOAT_KOBO (0 = off) |
| `success_rate:<service>` | last 15 min: >= 20 final purchases, successful / final below
|   | ALERT_SUCCESS_RATE_PERCENT (0 = off) |
| `below_cost:<service>:<tier>` | an active data / cable plan sells below the provider's cost for the tier |
| `pending_over_1h` | a purchase has been pending for more than an hour |
| `unmatched_transfers` | Monnify transfers wait as `unmatched` |
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from app.core.naira import format_naira
from app.ledger.reconcile import last_result
from app.payments import models as m
from app.vtu import price_rules
from app.vtu.balances import float_statuses
from app.vtu.models import FAILED, PENDING, REVERSED, SUCCESSFUL, TIERS, Purchase
from app.vtu.providers import ProviderError
from app.vtu.providers.catalog import SERVICES, ServiceKind
from workers.heartbeat import STALE_AFTER, last_beat

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.config.settings import Settings
    from app.vtu.runtime import VtuRuntime

PENDING_TOO_LONG = datetime.timedelta(hours=1)
RATE_WINDOW = datetime.timedelta(minutes=15)
RATE_MIN_PURCHASES = 20  # fewer final purchases in the window: too few to judge
LISTED = 10  # ids / plans named in an alert's details

_p = Purchase.__table__.c
_e = m.MonnifyEvent.__table__.c


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Check:
    family: str  # alert keys equal to it or starting with "<family>:" are this check's to raise and clear
    conditions: list[Condition]

    def owns(self, key: str) -> bool:
        return key == self.family or key.startswith(self.family + ":")


async def heartbeat(redis: Any, now: datetime.datetime) -> Check:
    beat = await last_beat(redis)
    if beat is None:
        found = [Condition("worker_heartbeat", "No worker heartbeat recorded: is the worker running?")]
    elif beat.stale(now):
        minutes = int(beat.age(now).total_seconds() // 60)
        found = [
            Condition(
                "worker_heartbeat",
                f"The worker's last heartbeat was {minutes} min ago (from {beat.host}): is it running?",
                {"last_at": beat.at.isoformat(), "host": beat.host, "pid": beat.pid},
            )
        ]
    else:
        found = []
    return Check("worker_heartbeat", found)


async def reconcile(redis: Any) -> Check:
    last = await last_result(redis)
    if last is None or last.ok:
        return Check("reconcile", [])
    return Check(
        "reconcile",
        [
            Condition(
                "reconcile",
                f"Ledger reconcile found {last.drift} drift(s) at {last.at:%Y-%m-%d %H:%M} UTC: run "
                "`vtu ledger reconcile` and investigate.",
                {"at": last.at.isoformat(), **last.summary},
            )
        ],
    )


async def floats(session: AsyncSession, redis: Any, runtime: VtuRuntime, settings: Settings) -> list[Check]:
    """One check per provider; a provider that did not answer is left out (its alert stays as it is).
    Must run before `session` opens a transaction (the provider may be asked)."""
    threshold = settings.alert_float_kobo
    checks = []
    for status in await float_statuses(redis, runtime, session):
        family = f"float_low:{status.slug}"
        if status.provider_kobo is None:
            continue
        found = []
        if threshold and status.provider_kobo < threshold:
            found.append(
                Condition(
                    family,
                    f"{status.slug} float is {format_naira(status.provider_kobo)}, below the alert level "
                    f"{format_naira(threshold)}: top it up before purchases start failing.",
                    {"provider_kobo": status.provider_kobo, "threshold_kobo": threshold},
                )
            )
        checks.append(Check(family, found))
    return checks


async def success_rates(session: AsyncSession, settings: Settings, now: datetime.datetime) -> Check:
    threshold = settings.alert_success_rate_percent
    rows = await session.execute(
        select(_p.service_id, func.count().filter(_p.status == SUCCESSFUL), func.count())
        .where(_p.completed_at >= now - RATE_WINDOW, _p.status.in_((SUCCESSFUL, FAILED, REVERSED)))
        .group_by(_p.service_id)
        .order_by(_p.service_id)
    )
    found = []
    for service_id, ok, total in rows:
        if threshold and total >= RATE_MIN_PURCHASES and ok * 100 < threshold * total:
            pct = 100 * ok / total
            found.append(
                Condition(
                    f"success_rate:{service_id}",
                    f"{service_id}: only {pct:.0f}% of {total} purchases succeeded in the last 15 min "
                    f"(alert below {threshold}%).",
                    {"successful": ok, "final": total, "threshold_percent": threshold},
                )
            )
    return Check("success_rate", found)


async def below_cost(session: AsyncSession, runtime: VtuRuntime) -> Check:
    """What the plans page shows in red for data and cable plans: a tier's price below the provider's cost
    (e.g. a sync raised a plan's cost above a fixed price). Airtime / electricity terms are not checked: no
    sync changes their cost, and the defaults' reseller discount is a configuration choice, not an event."""
    found = []
    for service in SERVICES:
        if service.kind not in (ServiceKind.DATA, ServiceKind.CABLE):
            continue
        try:
            slug = runtime.providers.slug_for(service.service_id)
        except ProviderError:
            continue
        pricing = await price_rules.service_pricing(
            session, service_id=service.service_id, provider_slug=slug, config=runtime.config
        )
        for tier in TIERS:
            losing = [p for p in pricing.plans if p.active and p.prices[tier].margin_kobo < 0]
            if losing:
                found.append(
                    Condition(
                        f"below_cost:{service.service_id}:{tier}",
                        f"{service.name}: {len(losing)} plan(s) sell below the provider's cost for {tier}s "
                        f"(e.g. {losing[0].name}). Check /staff/plans?service_id={service.service_id}.",
                        {
                            "plans": [
                                {
                                    "variation_code": p.variation_code,
                                    "cost_kobo": p.provider_price_kobo,
                                    "margin_kobo": p.prices[tier].margin_kobo,
                                }
                                for p in losing[:LISTED]
                            ],
                            "count": len(losing),
                        },
                    )
                )
    return Check("below_cost", found)


async def pending_too_long(session: AsyncSession, now: datetime.datetime) -> Check:
    old = (_p.status == PENDING, _p.created_at < now - PENDING_TOO_LONG)
    count, oldest = (await session.execute(select(func.count(), func.min(_p.created_at)).where(*old))).one()
    if not count:
        return Check("pending_over_1h", [])
    ids = (await session.execute(select(_p.id).where(*old).order_by(_p.created_at).limit(LISTED))).scalars()
    return Check(
        "pending_over_1h",
        [
            Condition(
                "pending_over_1h",
                f"{count} purchase(s) pending for more than an hour (oldest since {oldest:%Y-%m-%d %H:%M} "
                "UTC). Check them with the provider: /staff/purchases?status=pending.",
                {"count": count, "oldest_at": oldest.isoformat(), "ids": [str(i) for i in ids]},
            )
        ],
    )


async def unmatched_transfers(session: AsyncSession) -> Check:
    count, paid = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(_e.amount_paid_kobo), 0)).where(
                _e.status == m.EVENT_UNMATCHED
            )
        )
    ).one()
    if not count:
        return Check("unmatched_transfers", [])
    return Check(
        "unmatched_transfers",
        [
            Condition(
                "unmatched_transfers",
                f"{count} bank transfer(s) ({format_naira(int(paid))}) wait unmatched: see "
                "/staff/funding?status=unmatched.",
                {"count": count, "amount_paid_kobo": int(paid)},
            )
        ],
    )


async def evaluate(
    session: AsyncSession,
    *,
    redis: Any,
    runtime: VtuRuntime,
    settings: Settings,
    now: datetime.datetime,
) -> list[Check]:
    """Every check. `session` must have no transaction open: the provider floats are asked first."""
    checks = await floats(session, redis, runtime, settings)
    checks += [
        await heartbeat(redis, now),
        await reconcile(redis),
        await success_rates(session, settings, now),
        await below_cost(session, runtime),
        await pending_too_long(session, now),
        await unmatched_transfers(session),
    ]
    return checks


__all__ = ["STALE_AFTER", "Check", "Condition", "evaluate"]
