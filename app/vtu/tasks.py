"""SAQ jobs of the purchase engine (registered in workers/settings.py). Each uses the worker's VtuRuntime
(ctx["vtu"], built in workers/context.py), which opens its own DB sessions from ctx["sessionmaker"]."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from app.vtu.bulk_runner import sweep as sweep_bulk
from app.vtu.plans import PlanSyncError, sync_plans
from app.vtu.runtime import VtuRuntime

log = structlog.get_logger("app.vtu.tasks")


def _runtime(ctx: dict[str, Any]) -> VtuRuntime:
    runtime = ctx.get("vtu")
    if runtime is None:
        raise RuntimeError("ctx['vtu'] is missing: workers/context.py startup did not run")
    return runtime  # type: ignore[no-any-return]


async def verify_pending_purchase(ctx: dict[str, Any], *, purchase_id: str, attempt: int) -> str:
    """Requery number `attempt` of a pending purchase; schedules the next one while it stays pending."""
    purchase = await _runtime(ctx).purchases.requery(uuid.UUID(purchase_id), source="worker", attempt=attempt)
    return purchase.status if purchase is not None else "missing"


async def sweep_pending_purchases(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron, every minute: re-enqueue pending purchases whose requery job was lost."""
    report = await _runtime(ctx).purchases.sweep()
    return {"due": report.due, "enqueued": report.enqueued, "revived": report.revived}


async def probe_providers(ctx: dict[str, Any]) -> dict[str, str]:
    """Cron, every minute (app/vtu/provider_health.py): probe each half-open provider with `balance()` (its
    answer closes the breaker, an error re-opens it) and refresh the last known float of each closed one."""
    from app.vtu.balances import float_status
    from app.vtu.provider_health import ProviderHealth, probe_and_refresh
    from app.vtu.provider_routes import routed_slugs

    runtime = _runtime(ctx)
    health = (
        ctx.get("provider_health")
        or runtime.health
        or ProviderHealth(ctx["redis"], ctx["sessionmaker"], runtime.settings)
    )
    async with ctx["sessionmaker"]() as session:
        slugs = await routed_slugs(session, runtime.settings, runtime.config)

    async def refresh(slug: str) -> None:
        async with ctx["sessionmaker"]() as session:  # float_status asks the provider before it reads
            await float_status(ctx["redis"], runtime, session, slug)

    providers = []
    for slug in slugs:
        try:
            providers.append(runtime.providers.get(slug))
        except Exception as exc:  # e.g. a provider without credentials here: nothing to probe
            log.warning("provider_probe_skipped", provider=slug, error=str(exc))
    return await probe_and_refresh(health, providers, refresh)


async def run_bulk_order(ctx: dict[str, Any], *, bulk_id: str) -> str:
    """Buy a bulk order's remaining lines (app/vtu/bulk_runner.py); hands on to a new run after its budget."""
    return await _runtime(ctx).bulk_runner.run(uuid.UUID(bulk_id))


async def sweep_bulk_orders(ctx: dict[str, Any]) -> int:
    """Cron, every minute: start a run for running bulk orders nobody holds (killed worker, lost job)."""
    runtime = _runtime(ctx)
    return await sweep_bulk(ctx["sessionmaker"], runtime.bulk)


async def sync_data_bundles(ctx: dict[str, Any]) -> dict[str, str]:
    """Cron (daily, VTU_PLAN_SYNC_CRON): sync the plans of every service in VTU_PLAN_SYNC_SERVICES."""
    runtime = _runtime(ctx)
    results: dict[str, str] = {}
    for service_id in runtime.config.plan_sync_services:
        provider = runtime.providers.for_service(service_id)
        try:
            async with ctx["sessionmaker"]() as session:
                results[service_id] = (await sync_plans(session, provider, service_id)).summary()
        except PlanSyncError as exc:  # one provider hiccup must not stop the other services
            log.error("plan_sync_failed", service_id=service_id, error=str(exc))
            results[service_id] = f"failed: {exc}"
    return results


__all__ = [
    "probe_providers",
    "run_bulk_order",
    "sweep_bulk_orders",
    "sweep_pending_purchases",
    "sync_data_bundles",
    "verify_pending_purchase",
]
