"""Staff-edited provider order per service (`provider_routes`, migration 0024), and what the staff page
`/staff/providers` shows (docs/architecture.md, "Provider health and routing").

A row's `providers` is the ordered list of provider slugs to try for the service; NULL means "use the
configured order" (a staff "reset to configured" keeps the row, so who reset it and when stays visible; the
audit log has the whole history). `ProviderHealth.order_for` (app/vtu/provider_health.py) reads the rows.

Rules (`validate_order`, all checked before anything is written): at least one provider, only known slugs
(`PROVIDER_SLUGS`; never `stub` in production), no duplicates, at most MAX_PROVIDERS. Every change is
audited (`provider_route.set` / `provider_route.reset`) in the caller's transaction.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, String, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Mapped, mapped_column

from app.audit import service as audit
from app.vtu import routing
from app.vtu.providers import PROVIDER_SLUGS
from app.vtu.providers.catalog import SERVICES, SERVICES_BY_ID

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.config.settings import Settings
    from app.vtu.config import VtuConfig
    from app.vtu.provider_health import Breaker, KnownFloat, ProviderHealth

MAX_PROVIDERS = 5


class ProviderRoute(DefaultBase):
    __tablename__ = "provider_routes"
    __table_args__ = (
        CheckConstraint(
            "providers IS NULL OR cardinality(providers) BETWEEN 1 AND 5", name="providers_length"
        ),
    )

    service_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    providers: Mapped[list[str] | None] = mapped_column(ARRAY(String(32)), default=None)
    updated_by: Mapped[str] = mapped_column(String(254))  # Actor.source: staff:<email> | cli:<user>
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))


class RouteError(ValueError):
    """Refused before anything was written; `message` is for the staff member."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class RouteChange:
    service_id: str
    before: list[str] | None  # None: the configured order applied
    after: list[str] | None


def configured_order(service_id: str, settings: Settings, config: VtuConfig) -> list[str]:
    """The order from configuration when staff set none: VTU_PROVIDER_ORDER, else VTU_PROVIDER_BY_SERVICE,
    else VTU_PROVIDER (the router's own rule: app/vtu/routing.py)."""
    return list(routing.configured_order(config, settings.vtu_provider, service_id))


def known_slugs(settings: Settings) -> tuple[str, ...]:
    return tuple(s for s in PROVIDER_SLUGS if not (settings.is_prod and s == "stub"))


def parse_order(raw: str) -> list[str]:
    """ "vtpass, clubkonnect" or "vtpass clubkonnect" -> ["vtpass", "clubkonnect"] (not yet validated)."""
    return [part.strip().lower() for part in raw.replace(",", " ").split() if part.strip()]


def validate_order(service_id: str, slugs: Sequence[str], settings: Settings) -> list[str]:
    if service_id not in SERVICES_BY_ID:
        raise RouteError(f"Unknown service {service_id!r}.")
    order = [s.strip().lower() for s in slugs]
    if not order or not all(order):
        raise RouteError("List at least one provider, e.g. “vtpass, clubkonnect”.")
    known = known_slugs(settings)
    unknown = [s for s in order if s not in known]
    if unknown:
        raise RouteError(f"Unknown provider {', '.join(repr(s) for s in unknown)}: use {', '.join(known)}.")
    repeated = sorted({s for s in order if order.count(s) > 1})
    if repeated:
        raise RouteError(f"{', '.join(repeated)} is listed more than once: name each provider once.")
    if len(order) > MAX_PROVIDERS:
        raise RouteError(f"At most {MAX_PROVIDERS} providers.")
    return order


async def _current(session: AsyncSession, service_id: str) -> list[str] | None:
    row = await session.execute(
        select(ProviderRoute.providers).where(ProviderRoute.service_id == service_id).with_for_update()
    )
    found = row.scalar_one_or_none()
    return list(found) if found else None


async def _write(
    session: AsyncSession, service_id: str, providers: list[str] | None, actor: audit.Actor
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    values = {"providers": providers, "updated_by": actor.source[:254], "updated_at": now}
    await session.execute(
        insert(ProviderRoute)
        .values(service_id=service_id, **values)
        .on_conflict_do_update(index_elements=[ProviderRoute.service_id], set_=values)
    )


async def set_order(
    session: AsyncSession,
    *,
    service_id: str,
    slugs: Sequence[str],
    actor: audit.Actor,
    settings: Settings,
    reason: str = "",
) -> RouteChange:
    """Staff set `service_id`'s provider order (validated first; the caller commits)."""
    order = validate_order(service_id, slugs, settings)
    before = await _current(session, service_id)
    await _write(session, service_id, order, actor)
    await audit.record(
        session,
        actor,
        "provider_route.set",
        target=("provider_route", service_id),
        before={"providers": before},
        after={"providers": order},
        reason=reason or None,
    )
    return RouteChange(service_id, before, order)


async def reset_order(
    session: AsyncSession, *, service_id: str, actor: audit.Actor, reason: str = ""
) -> RouteChange:
    """Back to the configured order (the caller commits)."""
    if service_id not in SERVICES_BY_ID:
        raise RouteError(f"Unknown service {service_id!r}.")
    before = await _current(session, service_id)
    await _write(session, service_id, None, actor)
    await audit.record(
        session,
        actor,
        "provider_route.reset",
        target=("provider_route", service_id),
        before={"providers": before},
        after={"providers": None},
        reason=reason or None,
    )
    return RouteChange(service_id, before, None)


async def reset_breaker(
    session: AsyncSession, health: ProviderHealth, *, slug: str, actor: audit.Actor
) -> Breaker:
    """Staff "reset breaker": audited and committed first, then the breaker is closed in Redis (so a
    failed commit resets nothing). Returns the breaker as it was."""
    if slug not in PROVIDER_SLUGS:
        raise RouteError(f"Unknown provider {slug!r}.")
    before = await health.breaker(slug)
    await audit.record(
        session,
        actor,
        "provider_breaker.reset",
        target=("provider", slug),
        before={"state": str(before.state), "errors": before.errors, "last_error": before.last_error},
        after={"state": "closed", "errors": 0},
    )
    await session.commit()
    await health.reset(slug)
    return before


async def routed_slugs(session: AsyncSession, settings: Settings, config: VtuConfig) -> list[str]:
    """Every provider some service may be routed to (configured orders and staff orders)."""
    found: set[str] = set()
    staff = await session.execute(select(ProviderRoute.providers).where(ProviderRoute.providers.is_not(None)))
    for slugs in staff.scalars():
        found.update(slugs or [])
    for service in SERVICES:
        found.update(configured_order(service.service_id, settings, config))
    return sorted(s for s in found if s in PROVIDER_SLUGS)


# -- the staff page's figures -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServiceRoute:
    service_id: str
    name: str
    order: list[str]  # effective
    staff_order: list[str] | None
    configured: list[str]
    updated_by: str | None
    updated_at: datetime.datetime | None


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    slug: str
    breaker: Breaker
    known_float: KnownFloat | None


@dataclass(frozen=True, slots=True)
class RoutingOverview:
    services: list[ServiceRoute]
    providers: list[ProviderStatus]
    known: tuple[str, ...]


async def overview(
    session: AsyncSession, health: ProviderHealth, settings: Settings, config: VtuConfig
) -> RoutingOverview:
    rows = {r.service_id: r for r in (await session.execute(select(ProviderRoute))).scalars().all()}
    services: list[ServiceRoute] = []
    used: set[str] = set()
    for service in SERVICES:
        row = rows.get(service.service_id)
        configured = configured_order(service.service_id, settings, config)
        staff = list(row.providers) if row is not None and row.providers else None
        order = staff or configured
        used.update(order)
        services.append(
            ServiceRoute(
                service.service_id,
                service.name,
                order,
                staff,
                configured,
                row.updated_by if row else None,
                row.updated_at if row else None,
            )
        )
    known = known_slugs(settings)
    slugs = [s for s in PROVIDER_SLUGS if s in used or s in known]
    providers = [
        ProviderStatus(slug, await health.breaker(slug), await health.known_float(slug)) for slug in slugs
    ]
    return RoutingOverview(services, providers, known)


__all__ = [
    "MAX_PROVIDERS",
    "ProviderRoute",
    "ProviderStatus",
    "RouteChange",
    "RouteError",
    "RoutingOverview",
    "ServiceRoute",
    "configured_order",
    "known_slugs",
    "overview",
    "parse_order",
    "reset_breaker",
    "reset_order",
    "routed_slugs",
    "set_order",
    "validate_order",
]
