"""Per-process wiring of the purchase engine: one shared HTTP client, one provider per slug, the SAQ queue and
the PurchaseService. The worker builds it at start-up (workers/context.py, ctx["vtu"]); the web process
builds it on first use (`get_vtu(app)`) and should close it on shutdown (`close_vtu(app)`). Given a Redis
client, it also keeps the providers' health (`health`, app/vtu/provider_health.py): every provider call is
reported to the circuit breakers, and the router asks it which providers are usable."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from app.config.settings import Settings
from app.vtu.bulk import BulkService
from app.vtu.bulk_runner import BulkRunner
from app.vtu.config import VtuConfig, get_vtu_config
from app.vtu.provider_health import ProviderHealth
from app.vtu.registry import ProviderRegistry
from app.vtu.scheduling import NoScheduler, SaqScheduler, VerificationScheduler
from app.vtu.service import PurchaseService

if TYPE_CHECKING:
    from litestar import Litestar
    from saq import Queue
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.vtu.providers import Provider

QUEUE_NAME = "vtu"


def provider_http_client() -> httpx.AsyncClient:
    # retries=0: /pay must never be re-sent by the transport (VTpass dedupes, but 014 is not an answer).
    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(retries=0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


class VtuRuntime:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        queue: Queue | None = None,
        config: VtuConfig | None = None,
        providers: Mapping[str, Provider] | None = None,
        scheduler: VerificationScheduler | None = None,
        redis: Any = None,
    ) -> None:
        self.settings = settings
        self.config = config or get_vtu_config()
        self.queue = queue
        self.http = provider_http_client()
        # Provider health (breakers, last known floats, staff routes) when a Redis client is given.
        self.health = ProviderHealth(redis, sessionmaker, settings) if redis is not None else None
        self.providers = ProviderRegistry(
            settings, self.config, http_client=self.http, providers=providers, recorder=self.health
        )
        if scheduler is None:
            timeout = self.config.verify_job_timeout_seconds
            scheduler = SaqScheduler(queue, timeout_seconds=timeout) if queue else NoScheduler()
        self.purchases = PurchaseService(
            sessionmaker=sessionmaker,
            settings=settings,
            config=self.config,
            providers=self.providers,
            scheduler=scheduler,
            route_health=self.health,  # None without Redis: the configured order, every provider usable
        )
        # Bulk orders (app/vtu/bulk.py): checked and recorded here, bought line by line by the worker.
        self.bulk = BulkService(sessionmaker, self.purchases, queue)
        self.bulk_runner = BulkRunner(
            sessionmaker,
            self.bulk,
            lines_per_second=self.config.bulk_lines_per_second,
            lease_seconds=self.config.bulk_lease_seconds,
        )

    async def aclose(self) -> None:
        await self.providers.aclose()
        await self.http.aclose()


async def get_vtu(app: Litestar) -> VtuRuntime:
    """The web process's runtime, built on first use from the app's database config and SAQ queue."""
    runtime: VtuRuntime | None = app.state.get("vtu")
    if runtime is not None:
        return runtime
    lock = app.state.get("vtu_lock")
    if lock is None:  # no await since the check: only one task creates it
        lock = app.state["vtu_lock"] = asyncio.Lock()
    async with lock:
        runtime = app.state.get("vtu")
        if runtime is None:
            runtime = VtuRuntime(
                app.state.settings,
                app.state.alchemy.create_session_maker(),
                queue=await _web_queue(app),
                redis=app.state.get("redis"),
            )
            app.state["vtu"] = runtime
    return runtime


async def close_vtu(app: Litestar) -> None:
    """on_shutdown hook for the web app."""
    runtime: VtuRuntime | None = app.state.get("vtu")
    if runtime is not None:
        app.state["vtu"] = None
        await runtime.aclose()


async def _web_queue(app: Litestar) -> Any:
    from litestar_saq import SAQPlugin

    try:
        queue = app.plugins.get(SAQPlugin).get_queue(QUEUE_NAME)
    except Exception:  # no SAQ configured (some tests): requeries are left to the worker's sweep
        return None
    await queue.connect()
    return queue


__all__ = ["QUEUE_NAME", "VtuRuntime", "close_vtu", "get_vtu", "provider_http_client"]
