"""Demo data for `vtu seed` / `vtu dev`: the data bundles, TV bouquets and exam PIN types, synced from the
stub provider (the real `sync_plans` path) for every data, cable and exam service the stub sells and that has
no plans yet, so the buy pages list plans from the first start. Idempotent: a service with plans is left to
the worker's daily sync and to staff."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import func, select

from app.core.demo_hooks import AFTER_SEED


async def sync_stub_plans(session: Any) -> None:
    from app.config.settings import get_settings
    from app.core.db import standalone_session
    from app.vtu.config import get_vtu_config
    from app.vtu.models import Plan
    from app.vtu.plans import PlanSyncError, sync_plans
    from app.vtu.providers import ProviderError
    from app.vtu.providers.catalog import SERVICES, ServiceKind
    from app.vtu.registry import ProviderRegistry

    settings = get_settings()
    registry = ProviderRegistry(settings, get_vtu_config())
    try:
        for service in SERVICES:
            if service.kind not in (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM):
                continue
            try:
                if registry.slug_for(service.service_id) != "stub":
                    continue  # a real provider's plans come from the worker's sync
            except ProviderError:
                continue
            query = (
                select(func.count())
                .select_from(Plan)
                .where(Plan.provider_slug == "stub", Plan.service_id == service.service_id)
            )
            if await session.scalar(query):
                continue
            async with standalone_session(settings) as own:  # sync_plans needs a session of its own
                try:
                    await sync_plans(own, registry.get("stub"), service.service_id)
                except PlanSyncError as exc:
                    click.echo(f"  plans for {service.service_id} not synced: {exc}")
    finally:
        await registry.aclose()


AFTER_SEED.append(sync_stub_plans)
