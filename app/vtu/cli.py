"""`vtu plans sync` and `vtu purchases sweep` (registered in app/cli.py DOMAIN_COMMANDS)."""

from __future__ import annotations

import asyncio
import sys

import click


@click.group(name="plans", help="Data bundle and TV bouquet plans.")
def plans_group() -> None:
    pass


@plans_group.command(name="sync", help="Fetch a service's plans from the provider and upsert them.")
@click.option("--service-id", required=True, help="e.g. mtn-data, glo-data, dstv")
@click.option("--provider-slug", default=None, help="stub or vtpass (default: the service's provider)")
def plans_sync(service_id: str, provider_slug: str | None) -> None:
    from app.config.settings import get_settings
    from app.core.db import standalone_session
    from app.vtu.config import get_vtu_config
    from app.vtu.plans import PlanSyncError, SyncReport, sync_plans
    from app.vtu.registry import ProviderRegistry
    from app.vtu.runtime import provider_http_client

    settings = get_settings()

    async def run() -> SyncReport:
        http = provider_http_client()
        registry = ProviderRegistry(settings, get_vtu_config(), http_client=http)
        try:
            provider = registry.get(provider_slug) if provider_slug else registry.for_service(service_id)
            async with standalone_session(settings) as session:
                return await sync_plans(session, provider, service_id)
        finally:
            await registry.aclose()
            await http.aclose()

    try:
        report = asyncio.run(run())
    except PlanSyncError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if report.empty:
        click.echo(f"warning: {report.summary()}", err=True)
    else:
        click.echo(report.summary())
        for code, old, new in report.price_changes:
            click.echo(f"  price {code}: {old} -> {new} kobo")
        for code in report.deactivated:
            click.echo(f"  deactivated {code}")


@click.group(name="purchases", help="Purchase operations.")
def purchases_group() -> None:
    pass


@purchases_group.command(name="sweep", help="Re-enqueue pending purchases whose requery job was lost.")
@click.option("--inline", is_flag=True, default=False, help="Requery them here instead of enqueueing.")
@click.option("--grace-seconds", default=15, show_default=True, type=int)
def purchases_sweep(inline: bool, grace_seconds: int) -> None:
    from app.config.settings import get_settings
    from app.core.db import make_engine, make_sessionmaker
    from app.vtu.runtime import QUEUE_NAME, VtuRuntime
    from app.vtu.service import SweepReport
    from workers.settings import saq_config

    settings = get_settings()

    async def run() -> SweepReport:
        engine = make_engine(settings, pool_size=2, max_overflow=0)
        queue = None if inline else saq_config(settings).get_queues().get(QUEUE_NAME)
        if queue is not None:
            await queue.connect()
        runtime = VtuRuntime(settings, make_sessionmaker(engine), queue=queue)
        try:
            return await runtime.purchases.sweep(grace_seconds=grace_seconds, inline=inline)
        finally:
            await runtime.aclose()
            if queue is not None:
                await queue.disconnect()
            await engine.dispose()

    click.echo(asyncio.run(run()).summary())


__all__ = ["plans_group", "purchases_group"]
