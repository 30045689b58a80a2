"""One provider instance per slug per process, shared by every purchase (the VTpass adapter remembers which
request ids it already sent to /pay, so there must be one of it), plus per-service routing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from app.config.settings import Settings
from app.vtu.config import VtuConfig
from app.vtu.providers import PROVIDER_SLUGS, Provider, ProviderError, get_provider
from app.vtu.providers.instrumented import instrumented
from app.vtu.routing import configured_order

if TYPE_CHECKING:
    from app.vtu.provider_health import CallRecorder


class ProviderRegistry:
    def __init__(
        self,
        settings: Settings,
        config: VtuConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        providers: Mapping[str, Provider] | None = None,
        recorder: CallRecorder | None = None,
    ) -> None:
        self._settings = settings
        self._config = config
        self._http = http_client
        # Every adapter is wrapped once: its calls are timed and counted (app/vtu/providers/instrumented.py),
        # and, with a `recorder` (app/vtu/provider_health.ProviderHealth), reported to the circuit breaker.
        self._recorder = recorder
        self._providers: dict[str, Provider] = {
            slug: instrumented(provider, recorder) for slug, provider in (providers or {}).items()
        }
        self._owned: list[Provider] = []

    def slug_for(self, service_id: str) -> str:
        """Which provider sells `service_id` first: VTU_PROVIDER_ORDER's first, else the
        VTU_PROVIDER_BY_SERVICE override, else VTU_PROVIDER (app/vtu/routing.py)."""
        slug = configured_order(self._config, self._settings.vtu_provider, service_id)[0]
        if slug not in PROVIDER_SLUGS and slug not in self._providers:
            raise ProviderError(f"Unknown VTU provider {slug!r} for {service_id}")
        return slug

    def get(self, slug: str) -> Provider:
        provider = self._providers.get(slug)
        if provider is None:
            provider = instrumented(
                get_provider(self._settings, slug=slug, http_client=self._http), self._recorder
            )
            self._providers[slug] = provider
            self._owned.append(provider)
        return provider

    def usable_slug(self, slug: str) -> bool:
        """Whether `slug` names a provider this registry can build."""
        return slug in PROVIDER_SLUGS or slug in self._providers

    def for_service(self, service_id: str) -> Provider:
        return self.get(self.slug_for(service_id))

    async def aclose(self) -> None:
        for provider in self._owned:
            await provider.aclose()
        self._owned.clear()
        self._providers.clear()


__all__ = ["ProviderRegistry"]
