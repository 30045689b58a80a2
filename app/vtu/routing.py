"""Which providers sell a service, in the order to try them (docs/architecture.md, "Provider failover").

The configured order comes from `VTU_PROVIDER_ORDER` (`mtn=vtpass,clubkonnect;mtn-data=vtpass`), else the
single provider of `VTU_PROVIDER_BY_SERVICE` (a one-element order), else `VTU_PROVIDER`. A `RouteHealth`
may replace that order (staff-edited) and says whether a provider is usable now (circuit breaker, float).

The rules:
- `candidates(service_id, amount)` (nothing excluded, when a purchase opens): the usable providers in order;
  when NONE is usable the whole configured order is returned anyway. Health alone never refuses a sale:
  a breaker or float reading can be stale, and the purchase engine fails safe on the provider's answer.
- `candidates(..., exclude=tried)` (failover): only the usable providers not tried yet. A purchase with no
  usable next provider fails and is refunded, as it would have without failover.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

from app.vtu.config import VtuConfig


class RouteHealth(Protocol):
    # The staff-edited order; None = config. `executor`: the caller's connection or session, used for any
    # read, so a caller that holds a pooled connection never waits for a second one (docs/architecture.md).
    async def order_for(self, service_id: str, executor: Any = None) -> list[str] | None: ...

    async def usable(self, slug: str, amount_kobo: int) -> bool: ...  # breaker + float check


class AlwaysUsable:
    """No health information: the configured order, every provider usable."""

    async def order_for(self, service_id: str, executor: Any = None) -> list[str] | None:
        return None

    async def usable(self, slug: str, amount_kobo: int) -> bool:
        return True


def configured_order(config: VtuConfig, default_slug: str, service_id: str) -> tuple[str, ...]:
    """The configured providers of `service_id`, first choice first (lower-case slugs)."""
    ordered = config.provider_order.get(service_id)
    if ordered:
        return tuple(s.strip().lower() for s in ordered)
    single = config.provider_by_service.get(service_id) or default_slug
    return (single.strip().lower(),)


class Router:
    def __init__(self, config: VtuConfig, default_slug: str, health: RouteHealth | None = None) -> None:
        self.config = config
        self.default_slug = default_slug
        self.health: RouteHealth = health or AlwaysUsable()

    def first(self, service_id: str) -> str:
        """The configured first choice (no health): plan listings, meter checks, the registry."""
        return configured_order(self.config, self.default_slug, service_id)[0]

    async def order(self, service_id: str, executor: Any = None) -> list[str]:
        staff = await self.health.order_for(service_id, executor)
        if staff:
            return [s.strip().lower() for s in staff]
        return list(configured_order(self.config, self.default_slug, service_id))

    async def candidates(
        self, service_id: str, amount_kobo: int, *, exclude: Collection[str] = ()
    ) -> list[str]:
        """The ordered slugs to try: the first is used at open time; at failover, the next not yet tried."""
        order = await self.order(service_id)
        remaining = [s for s in order if s not in exclude]
        usable = [s for s in remaining if await self.health.usable(s, amount_kobo)]
        if usable or exclude:
            return usable
        return remaining  # nothing usable when opening: try the configured order anyway (module docstring)

    async def choose(
        self,
        service_id: str,
        amount_kobo: int,
        *,
        can_take: Callable[[str], Awaitable[bool]],
        exclude: Collection[str] = (),
        executor: Any = None,
    ) -> str | None:
        """The provider to send to: the first in order, not excluded, that `can_take` the purchase (built
        here, sells its plan) and that the health says is usable. Health is asked lazily, one provider at a
        time and never past the one chosen: a True while a breaker is half-open is that provider's single
        probe, so it must be spent only on a provider really called. Same rules as `candidates`: opening
        (nothing excluded) falls back to the first that can take it; failover returns None. `executor`: the
        caller's connection, for the staff order's read (never a second pooled connection)."""
        fallback = None
        for slug in await self.order(service_id, executor):
            if slug in exclude or not await can_take(slug):
                continue
            fallback = fallback or slug
            if await self.health.usable(slug, amount_kobo):
                return slug
        return None if exclude else fallback


__all__ = ["AlwaysUsable", "RouteHealth", "Router", "configured_order"]
