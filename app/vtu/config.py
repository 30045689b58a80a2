"""Purchase rules that operators tune without a deploy: amount limits, reseller discounts, provider routing.

Read from the environment once (`load_vtu_config`), like app.config.settings; tests pass their own
`VtuConfig` (e.g. a 100 kobo airtime minimum) instead of patching the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from app.vtu.providers.catalog import ServiceKind

# Public contracts (docs/architecture.md): airtime N50-N50,000; electricity meter minimum to N500,000.
AIRTIME_MIN_KOBO = 5_000
AIRTIME_MAX_KOBO = 5_000_000
ELECTRICITY_MIN_KOBO = 50_000  # floor when the meter reports no minimum of its own (VTpass sandbox: N500)
ELECTRICITY_MAX_KOBO = 50_000_000
# Resellers buy below face value by default; customers pay face value.
RESELLER_DISCOUNT_BPS = {ServiceKind.AIRTIME: 200, ServiceKind.DATA: 100}
PLAN_SYNC_SERVICES = (
    "mtn-data", "glo-data", "airtel-data", "etisalat-data", "dstv", "gotv", "startimes",
    "waec", "waec-registration", "jamb",  # exam PINs
)  # fmt: skip
PLAN_SYNC_CRON = "0 3 * * *"  # 04:00 in Lagos, after VTpass's overnight catalogue updates
VERIFY_JOB_TIMEOUT = 45  # one requery: connect 5 s + read 15 s, with room to write the result
VERIFY_PER_MINUTE = 20
# VTpass 019 "likely duplicate" covers the same product and number for 30 s: a held purchase is sent again
# this long after the refusal (30 s + a margin for clocks and the network).
DUPLICATE_HOLD_SECONDS = 35
# At most this many provider attempts per purchase (failovers and 019 holds together): past it, a
# nothing-placed answer fails the purchase and refunds it.
MAX_PROVIDER_ATTEMPTS = 5
BULK_LINES_PER_SECOND = 5  # purchases a bulk order starts per second (provider rate limits); 0 = unpaced
BULK_LEASE_SECONDS = 30  # a bulk runner silent this long is presumed dead; the sweep hands its order on


class VtuConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class VtuConfig:
    airtime_min_kobo: int = AIRTIME_MIN_KOBO
    airtime_max_kobo: int = AIRTIME_MAX_KOBO
    electricity_min_kobo: int = ELECTRICITY_MIN_KOBO
    electricity_max_kobo: int = ELECTRICITY_MAX_KOBO
    reseller_discount_bps: Mapping[ServiceKind, int] = field(
        default_factory=lambda: dict(RESELLER_DISCOUNT_BPS)
    )
    # What the provider gives back on each sale (VTpass commission), so cost = face - commission.
    # Unknown by default (0): margin is then selling price - face value.
    provider_commission_bps: Mapping[ServiceKind, int] = field(default_factory=dict)
    provider_by_service: Mapping[str, str] = field(default_factory=dict)  # per-service VTU_PROVIDER override
    # VTU_PROVIDER_ORDER: per service, the providers to try in order (app/vtu/routing.py); the first is used
    # when a purchase opens, the next ones only after a provider definitely placed no order.
    provider_order: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    duplicate_hold_seconds: int = DUPLICATE_HOLD_SECONDS
    max_provider_attempts: int = MAX_PROVIDER_ATTEMPTS
    plan_sync_services: tuple[str, ...] = PLAN_SYNC_SERVICES
    plan_sync_cron: str = PLAN_SYNC_CRON
    # SAQ timeout of one requery job; a job still "active" this long after it started had its worker die.
    verify_job_timeout_seconds: int = VERIFY_JOB_TIMEOUT
    # Meter / smartcard checks (each one a merchant-verify call to the provider) per customer per minute on
    # the buy pages; 0 = no limit. A customer checks a number or two; a script checking thousands is not one.
    verify_per_minute: int = VERIFY_PER_MINUTE
    # Bulk orders (app/vtu/bulk_runner.py): lines started per second (0 = no pacing), and how long a runner's
    # hold on an order lasts without being renewed (it renews every third of it while alive).
    bulk_lines_per_second: int = BULK_LINES_PER_SECOND
    bulk_lease_seconds: int = BULK_LEASE_SECONDS


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise VtuConfigError(f"{name} must be a whole number, 0 or more (got {raw!r})")
    return int(raw)


def _pairs(env: Mapping[str, str], name: str) -> dict[str, str]:
    """ "a=1,b=2" -> {"a": "1", "b": "2"}."""
    out: dict[str, str] = {}
    for part in (env.get(name) or "").split(","):
        if part.strip():
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise VtuConfigError(f"{name} must look like 'key=value,key=value' (got {part!r})")
            out[key.strip().lower()] = value.strip()
    return out


def _orders(env: Mapping[str, str], name: str) -> dict[str, tuple[str, ...]]:
    """ "mtn=vtpass,clubkonnect;mtn-data=vtpass" -> {"mtn": ("vtpass", "clubkonnect"), ...}."""
    out: dict[str, tuple[str, ...]] = {}
    for part in (env.get(name) or "").split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        slugs = tuple(s.strip().lower() for s in value.split(","))
        if not sep or not key.strip() or not all(slugs):
            raise VtuConfigError(
                f"{name} must look like 'service=provider,provider;service=provider' (got {part!r})"
            )
        if len(set(slugs)) != len(slugs):
            raise VtuConfigError(f"{name}: {key.strip()} lists a provider twice ({value.strip()!r})")
        out[key.strip().lower()] = slugs
    return out


def _bps_by_kind(
    env: Mapping[str, str], name: str, default: Mapping[ServiceKind, int]
) -> dict[ServiceKind, int]:
    result = dict(default)
    for key, value in _pairs(env, name).items():
        try:
            kind = ServiceKind(key)
        except ValueError:
            kinds = ", ".join(k.value for k in ServiceKind)
            raise VtuConfigError(f"{name}: unknown service kind {key!r} (use {kinds})") from None
        if not value.isdigit() or int(value) > 10_000:
            raise VtuConfigError(f"{name}: {key} must be basis points 0-10000 (got {value!r})")
        result[kind] = int(value)
    return result


def load_vtu_config(env: Mapping[str, str] | None = None) -> VtuConfig:
    source = os.environ if env is None else env
    services = tuple(s.strip() for s in (source.get("VTU_PLAN_SYNC_SERVICES") or "").split(",") if s.strip())
    return VtuConfig(
        airtime_min_kobo=_int(source, "VTU_AIRTIME_MIN_KOBO", AIRTIME_MIN_KOBO),
        airtime_max_kobo=_int(source, "VTU_AIRTIME_MAX_KOBO", AIRTIME_MAX_KOBO),
        electricity_min_kobo=_int(source, "VTU_ELECTRICITY_MIN_KOBO", ELECTRICITY_MIN_KOBO),
        electricity_max_kobo=_int(source, "VTU_ELECTRICITY_MAX_KOBO", ELECTRICITY_MAX_KOBO),
        reseller_discount_bps=_bps_by_kind(source, "VTU_RESELLER_DISCOUNT_BPS", RESELLER_DISCOUNT_BPS),
        provider_commission_bps=_bps_by_kind(source, "VTU_PROVIDER_COMMISSION_BPS", {}),
        provider_by_service=_pairs(source, "VTU_PROVIDER_BY_SERVICE"),
        provider_order=_orders(source, "VTU_PROVIDER_ORDER"),
        duplicate_hold_seconds=_int(source, "VTU_DUPLICATE_HOLD_SECONDS", DUPLICATE_HOLD_SECONDS),
        max_provider_attempts=_int(source, "VTU_MAX_PROVIDER_ATTEMPTS", MAX_PROVIDER_ATTEMPTS) or 1,
        plan_sync_services=services or PLAN_SYNC_SERVICES,
        plan_sync_cron=(source.get("VTU_PLAN_SYNC_CRON") or "").strip() or PLAN_SYNC_CRON,
        verify_job_timeout_seconds=_int(source, "VTU_VERIFY_JOB_TIMEOUT_SECONDS", VERIFY_JOB_TIMEOUT) or 1,
        verify_per_minute=_int(source, "VTU_VERIFY_PER_MINUTE", VERIFY_PER_MINUTE),
        bulk_lines_per_second=_int(source, "BULK_LINES_PER_SECOND", BULK_LINES_PER_SECOND),
        bulk_lease_seconds=_int(source, "BULK_LEASE_SECONDS", BULK_LEASE_SECONDS) or 1,
    )


@lru_cache(maxsize=1)
def get_vtu_config() -> VtuConfig:
    return load_vtu_config()


def routed_slugs(config: VtuConfig) -> list[tuple[str, str]]:
    """Every (service, provider) pair the routing settings name, lower-cased."""
    pairs = [(sid, slug.lower()) for sid, slug in config.provider_by_service.items()]
    return pairs + [(sid, slug) for sid, slugs in config.provider_order.items() for slug in slugs]


def _source(config: VtuConfig, services: list[str]) -> str:
    """Which routing setting to name in a message about `services` (all of them when empty)."""
    wanted = set(services)
    by_service = any(not wanted or s in wanted for s in config.provider_by_service)
    ordered = any(not wanted or s in wanted for s in config.provider_order)
    if by_service and ordered:
        return "VTU_PROVIDER_BY_SERVICE / VTU_PROVIDER_ORDER"
    return "VTU_PROVIDER_ORDER" if ordered else "VTU_PROVIDER_BY_SERVICE"


def production_problems(config: VtuConfig) -> list[str]:
    """What must not serve real customers: stub routes, and reseller discounts the provider's commission
    does not cover (pricing.py: reseller price = face - discount, cost = face - commission, so any
    discount above the commission sells every default-priced product below cost)."""
    from app.vtu.providers import PROVIDER_SLUGS

    found: list[str] = []
    routes = routed_slugs(config)
    stubbed = sorted(sid for sid, slug in routes if slug == "stub")
    if stubbed:
        found.append(
            f"{_source(config, stubbed)} routes "
            + ", ".join(stubbed)
            + " to the stub provider, which cannot "
            "sell real top-ups"
        )
    unknown = sorted({f"{sid}={slug}" for sid, slug in routes if slug not in PROVIDER_SLUGS})
    if unknown:
        found.append(f"{_source(config, [])} names unknown providers: {', '.join(unknown)}")
    for kind in ServiceKind:
        discount = config.reseller_discount_bps.get(kind, 0)
        commission = config.provider_commission_bps.get(kind, 0)
        if discount > commission:
            found.append(
                f"VTU_RESELLER_DISCOUNT_BPS {kind.value}={discount} is above VTU_PROVIDER_COMMISSION_BPS "
                f"{kind.value}={commission}: resellers would buy below cost (lower the discount or set the "
                "commission the provider pays)"
            )
    return found


def config_problems(env: Mapping[str, str] | None = None, *, is_prod: bool = False) -> list[str]:
    """Start-up check (app.config.settings.validate): a malformed VTU_* value anywhere, and in prod the
    settings that would lose money."""
    source = os.environ if env is None else env
    try:
        config = load_vtu_config(source)
    except VtuConfigError as exc:
        return [str(exc)]
    if not is_prod:
        return []
    found = production_problems(config)
    routed = sorted({sid for sid, slug in routed_slugs(config) if slug == "clubkonnect"})
    missing = [k for k in ("CLUBKONNECT_USER_ID", "CLUBKONNECT_API_KEY") if not (source.get(k) or "").strip()]
    if routed and missing:
        found.append(
            f"{_source(config, routed)} routes {', '.join(routed)} to ClubKonnect: "
            f"set {' and '.join(missing)}"
        )
    return found
