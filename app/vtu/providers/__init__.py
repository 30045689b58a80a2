"""VTU providers: one protocol, a deterministic stub, the VTpass adapter and the ClubKonnect adapter (see
app/vtu/README.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.vtu.providers.base import (
    CustomerInfo,
    CustomerVerificationFailed,
    DuplicatePayAttempt,
    ExamPin,
    Outcome,
    Provider,
    ProviderError,
    ProviderResult,
    PurchaseOrder,
    Variation,
)
from app.vtu.providers.catalog import SERVICES, SERVICES_BY_ID, Service, ServiceKind, get_service
from app.vtu.providers.mapping import callback_request_id, map_vtpass_body
from app.vtu.providers.request_ids import new_request_id

if TYPE_CHECKING:
    import httpx

    from app.config.settings import Settings
    from app.vtu.providers.clubkonnect import ClubKonnectProvider
    from app.vtu.providers.stub import StubProvider
    from app.vtu.providers.vtpass import VTPassProvider

PROVIDER_SLUGS = ("stub", "vtpass", "clubkonnect")

# The adapters (and httpx, ~0.7 s of imports) load on first use: the catalog and the settings checks
# (app/vtu/config.py, run by every `vtu` command) need none of them.
_ADAPTERS = {
    "ClubKonnectProvider": "app.vtu.providers.clubkonnect",
    "StubProvider": "app.vtu.providers.stub",
    "VTPassProvider": "app.vtu.providers.vtpass",
}


def __getattr__(name: str) -> Any:
    module = _ADAPTERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def stub_latency_seconds() -> float:
    """VTU_STUB_LATENCY_MS: an artificial delay on every stub call (benchmarks, demos of pending states)."""
    import os

    raw = (os.environ.get("VTU_STUB_LATENCY_MS") or "").strip()
    if not raw:
        return 0.0
    if not raw.isdigit() or int(raw) > 60_000:
        raise ProviderError(f"VTU_STUB_LATENCY_MS must be whole milliseconds 0-60000 (got {raw!r})")
    return int(raw) / 1000


def get_provider(
    settings: Settings, *, slug: str | None = None, http_client: httpx.AsyncClient | None = None
) -> Provider:
    """The provider named by `slug` (default settings.vtu_provider). Close it with `await p.aclose()`;
    an `http_client` passed in stays owned by the caller."""
    chosen = (slug or settings.vtu_provider).strip().lower()
    if chosen == "stub":
        from app.vtu.providers.stub import StubProvider

        return StubProvider(latency_seconds=stub_latency_seconds())
    if chosen == "vtpass":
        from app.vtu.providers.vtpass import VTPassProvider

        return VTPassProvider(settings, http_client=http_client)
    if chosen == "clubkonnect":
        from app.vtu.providers.clubkonnect import ClubKonnectProvider

        return ClubKonnectProvider(settings, http_client=http_client)
    raise ProviderError(f"Unknown VTU provider {chosen!r}; expected one of {', '.join(PROVIDER_SLUGS)}")


__all__ = [
    "PROVIDER_SLUGS",
    "SERVICES",
    "SERVICES_BY_ID",
    "ClubKonnectProvider",
    "CustomerInfo",
    "CustomerVerificationFailed",
    "DuplicatePayAttempt",
    "ExamPin",
    "Outcome",
    "Provider",
    "ProviderError",
    "ProviderResult",
    "PurchaseOrder",
    "Service",
    "ServiceKind",
    "StubProvider",
    "VTPassProvider",
    "Variation",
    "callback_request_id",
    "get_provider",
    "get_service",
    "map_vtpass_body",
    "new_request_id",
]
