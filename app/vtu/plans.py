"""Plans (data bundles, TV bouquets): reading them with the caller's price, and syncing them from a provider.

Sync upserts what the provider lists, deactivates synced plans it no longer lists (never deletes: purchases
point at their codes), records every price change in `plan_price_changes`, and treats an empty answer as
"the provider told us nothing": nothing changes and the report says so (staff then manage the plans).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import connection_of
from app.vtu.config import VtuConfig
from app.vtu.models import Plan, PlanPriceChange
from app.vtu.pricing import RuleTerms, default_terms, most_specific, price_with
from app.vtu.providers import Provider, ProviderError, Variation
from app.vtu.providers.catalog import ServiceKind, get_service
from app.vtu.views import Executor

log = structlog.get_logger("app.vtu.plans")


@dataclass(frozen=True, slots=True)
class PricedPlan:
    variation_code: str
    name: str
    price_kobo: int  # the caller's tier price
    face_kobo: int  # the provider's price


@dataclass(slots=True)
class SyncReport:
    provider_slug: str
    service_id: str
    fetched: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # name or fixed-price flag changed
    price_changes: list[tuple[str, int, int]] = field(default_factory=list)  # (code, old, new)
    deactivated: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    empty: bool = False  # the provider listed nothing: nothing was changed

    def summary(self) -> str:
        where = f"{self.service_id} from {self.provider_slug}"
        if self.empty:
            return f"{where}: the provider returned no plans; nothing changed (plans stay as staff left them)"
        return (
            f"{where}: {self.fetched} listed, {len(self.created)} new, {len(self.price_changes)} price "
            f"changes, {len(self.updated)} renamed, {len(self.reactivated)} reactivated, "
            f"{len(self.deactivated)} deactivated"
        )


class PlanSyncError(Exception):
    pass


async def sync_plans(session: AsyncSession, provider: Provider, service_id: str) -> SyncReport:
    """Fetch the provider's variations for `service_id`, then apply them in one committed transaction."""
    service = get_service(service_id)
    if service is None:
        raise PlanSyncError(f"unknown service {service_id!r}")
    if service.kind is ServiceKind.AIRTIME:
        raise PlanSyncError(f"{service_id} is airtime: it has no plans to sync")
    if session.in_transaction():
        # Never hold a transaction open across the provider call; callers pass a fresh session.
        raise PlanSyncError("sync_plans needs a session outside any transaction")
    try:
        variations = await provider.list_variations(service_id)
    except ProviderError as exc:
        raise PlanSyncError(f"{provider.slug} could not list {service_id} plans: {exc.message}") from exc
    report = SyncReport(provider.slug, service_id, fetched=len(variations))
    if not variations:
        report.empty = True
        log.warning("plan_sync_empty", provider=provider.slug, service_id=service_id)
        return report
    async with session.begin():
        await _apply(session, provider.slug, service_id, _dedupe(variations), report)
    log.info(
        "plan_sync_done",
        provider=provider.slug,
        service_id=service_id,
        created=len(report.created),
        price_changes=len(report.price_changes),
        deactivated=len(report.deactivated),
    )
    return report


def _dedupe(variations: Sequence[Variation]) -> dict[str, Variation]:
    # One row per code; if the provider repeats a code, the last listing wins.
    return {v.variation_code: v for v in variations}


async def _apply(
    session: AsyncSession, slug: str, service_id: str, listed: dict[str, Variation], report: SyncReport
) -> None:
    # Concurrent syncs of one service (cron + CLI) take turns instead of racing on the same rows.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"plan-sync:{slug}:{service_id}"}
    )
    now = datetime.datetime.now(datetime.UTC)
    existing = {
        p.variation_code: p
        for p in (
            await session.execute(
                select(Plan)
                .where(Plan.provider_slug == slug, Plan.service_id == service_id)
                .with_for_update()
            )
        ).scalars()
    }
    for code, variation in listed.items():
        plan = existing.get(code)
        if plan is None:
            session.add(
                Plan(
                    provider_slug=slug,
                    service_id=service_id,
                    variation_code=code,
                    name=variation.name[:200],
                    provider_price_kobo=variation.amount_kobo,
                    fixed_price=variation.fixed_price,
                    active=True,
                    last_synced_at=now,
                )
            )
            report.created.append(code)
            continue
        if plan.provider_price_kobo != variation.amount_kobo:
            session.add(
                PlanPriceChange(
                    plan_id=plan.id,
                    old_price_kobo=plan.provider_price_kobo,
                    new_price_kobo=variation.amount_kobo,
                    source="sync",
                )
            )
            report.price_changes.append((code, plan.provider_price_kobo, variation.amount_kobo))
            log.info(
                "plan_price_changed",
                provider=slug,
                service_id=service_id,
                variation_code=code,
                old_kobo=plan.provider_price_kobo,
                new_kobo=variation.amount_kobo,
            )
            plan.provider_price_kobo = variation.amount_kobo
        if plan.name != variation.name[:200] or plan.fixed_price != variation.fixed_price:
            report.updated.append(code)
            plan.name, plan.fixed_price = variation.name[:200], variation.fixed_price
        if not plan.active and not plan.staff_hidden:  # back upstream; a staff decision stands
            report.reactivated.append(code)
            plan.active = True
        plan.last_synced_at = now
    vanished = [c for c, p in existing.items() if c not in listed and p.active and p.source == "sync"]
    if vanished:
        await session.execute(
            update(Plan)
            .where(
                Plan.provider_slug == slug, Plan.service_id == service_id, Plan.variation_code.in_(vanished)
            )
            .values(active=False, updated_at=now)
        )
        report.deactivated.extend(sorted(vanished))


async def active_plan(
    session: Executor, slug: str, service_id: str, variation_code: str
) -> tuple[int, str] | None:
    """(provider price, name) of an active plan, or None."""
    row = (
        await session.execute(
            select(Plan.provider_price_kobo, Plan.name).where(
                Plan.provider_slug == slug,
                Plan.service_id == service_id,
                Plan.variation_code == variation_code,
                Plan.active.is_(True),
            )
        )
    ).one_or_none()
    return (row.provider_price_kobo, row.name) if row is not None else None


# Each active plan with its own active rule and the service's (variation_code '') for the tier, in one
# statement sent as driver SQL (the buy forms and GET /api/v1/plans read it on every request). Rules are
# unique per (tier, service_id, variation_code), so each plan is one row; which rule applies stays in Python
# (`most_specific`: the plan's, else the service's, else the tier's defaults).
_PRICED_PLANS = """
SELECT p.variation_code, p.name, p.provider_price_kobo,
       own.fixed_price_kobo, own.discount_bps, own.id IS NOT NULL,
       whole.fixed_price_kobo, whole.discount_bps, whole.id IS NOT NULL
FROM plans p
LEFT JOIN price_rules own
    ON own.tier = $3 AND own.service_id = p.service_id AND own.variation_code = p.variation_code
   AND own.active
LEFT JOIN price_rules whole
    ON whole.tier = $3 AND whole.service_id = p.service_id AND whole.variation_code = '' AND whole.active
WHERE p.provider_slug = $1 AND p.service_id = $2 AND p.active
ORDER BY p.provider_price_kobo, lower(p.name)
"""


async def priced_plans(
    session: Executor, *, slug: str, service_id: str, tier: str, config: VtuConfig
) -> list[PricedPlan]:
    """Active plans of a service with the tier's selling price, cheapest first (GET /api/v1/plans)."""
    service = get_service(service_id)
    if service is None:
        return []
    conn = await connection_of(session)
    rows: Sequence[Any] = (await conn.exec_driver_sql(_PRICED_PLANS, (slug, service_id, tier))).all()
    fallback = default_terms(tier, service.kind, config)
    priced: list[PricedPlan] = []
    for code, name, face, own_fixed, own_bps, has_own, all_fixed, all_bps, has_all in rows:
        rules: dict[str, RuleTerms] = {}
        if has_own:
            rules[code] = RuleTerms(own_fixed, own_bps, "plan rule")
        if has_all:
            rules[""] = RuleTerms(all_fixed, all_bps, "service rule")
        terms = most_specific(rules, code) or fallback
        priced.append(
            PricedPlan(code, name, price_with(terms, face, service.kind, config).selling_kobo, face)
        )
    return priced
