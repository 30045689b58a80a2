"""What the parts of the purchase engine (opening, settlement, sweep, reads) share: the database, settings,
providers and the requery scheduler. Built once per PurchaseService (app.vtu.service)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config.settings import Settings
from app.vtu.config import VtuConfig
from app.vtu.errors import ServiceUnavailable
from app.vtu.providers import Provider, ProviderError
from app.vtu.registry import ProviderRegistry
from app.vtu.routing import RouteHealth, Router
from app.vtu.scheduling import VerificationScheduler

log = structlog.get_logger("app.vtu.context")


@dataclass(frozen=True, slots=True)
class PurchaseContext:
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    config: VtuConfig
    providers: ProviderRegistry
    scheduler: VerificationScheduler
    # The purchase path runs Core statements on a plain connection (no ORM session bookkeeping).
    engine: AsyncEngine
    # Which providers to try for a service, in order (app/vtu/routing.py).
    router: Router

    @classmethod
    def build(
        cls,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        config: VtuConfig,
        providers: ProviderRegistry,
        scheduler: VerificationScheduler,
        route_health: RouteHealth | None = None,
    ) -> PurchaseContext:
        engine = sessionmaker.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("PurchaseService needs a sessionmaker bound to an AsyncEngine")
        router = Router(config, settings.vtu_provider, route_health)
        return cls(sessionmaker, settings, config, providers, scheduler, engine, router)

    @property
    def schedule(self) -> Sequence[int]:
        """Seconds before each requery (VTU_REQUERY_SCHEDULE_SECONDS)."""
        return self.settings.requery_schedule_seconds

    def provider_for(self, service_id: str) -> Provider:
        """The provider selling `service_id`; ServiceUnavailable if it is unusable (nothing written)."""
        try:
            return self.providers.for_service(service_id)
        except ProviderError as exc:  # e.g. VTU_PROVIDER=vtpass without credentials
            log.error("provider_unavailable", service_id=service_id, error=exc.message, alert=exc.staff_alert)
            raise ServiceUnavailable("This service is not available right now.") from exc


__all__ = ["PurchaseContext"]
