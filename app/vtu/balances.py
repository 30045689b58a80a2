"""Provider float: what the provider says our balance is (`Provider.balance()`, e.g. VTpass's balance API)
beside what our ledger's `provider_float:<slug>` account holds (the sum of its entries: the cost of every
purchase settled to that provider, less reversals; top-ups are not booked there).

Both are cached in Redis for `CACHE_SECONDS` per provider, so the staff overview (polled every 10 s by
every open tab) and the minute's alert check ask the provider at most once a minute. A provider that does
not answer (error, timeout) is cached as "unavailable" for the same time, so a failing provider is not
hammered either. Every answer is also kept as the provider's last known float for routing
(app/vtu/provider_health.py, VTU_FLOAT_FRESH_SECONDS). Never called with a database transaction open
(money invariant 8): callers commit first.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select

from app.ledger.accounts import provider_float
from app.ledger.models import LedgerAccount, LedgerEntry
from app.vtu.providers import ProviderError
from app.vtu.providers.catalog import SERVICES
from app.vtu.routing import configured_order

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.vtu.runtime import VtuRuntime

log = structlog.get_logger("app.vtu.balances")

CACHE_SECONDS = 60
BALANCE_TIMEOUT_SECONDS = 5.0
CACHE_KEY = "vtu:float:{slug}"


@dataclass(frozen=True, slots=True)
class FloatStatus:
    slug: str
    provider_kobo: int | None  # None: the provider did not answer (see `error`)
    error: str | None
    ledger_kobo: int
    checked_at: datetime.datetime


def provider_slugs(runtime: VtuRuntime) -> list[str]:
    """Every provider that sells at least one service (VTU_PROVIDER, VTU_PROVIDER_BY_SERVICE and every
    provider of VTU_PROVIDER_ORDER: a second choice's float matters before it is needed)."""
    slugs: set[str] = set()
    for service in SERVICES:
        try:
            slugs.add(runtime.providers.slug_for(service.service_id))
        except ProviderError:
            continue
        slugs.update(configured_order(runtime.config, runtime.settings.vtu_provider, service.service_id))
    return sorted(slugs)


async def _ledger_float(session: AsyncSession, slug: str) -> int:
    total = await session.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0))
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerAccount.code == provider_float(slug))
    )
    return int(total.scalar_one())


async def _ask(runtime: VtuRuntime, slug: str) -> tuple[int | None, str | None]:
    try:
        balance = await asyncio.wait_for(runtime.providers.get(slug).balance(), BALANCE_TIMEOUT_SECONDS)
    except ProviderError as exc:
        return None, exc.message[:200]
    except TimeoutError:
        return None, f"no answer within {BALANCE_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # a page figure: any failure is "unavailable", never a 500
        return None, f"{type(exc).__name__}: {exc}"[:200]
    return int(balance), None


def _load(slug: str, raw: bytes | str | None) -> FloatStatus | None:
    if not raw:
        return None
    try:
        v = json.loads(raw)
        return FloatStatus(
            slug,
            None if v["provider_kobo"] is None else int(v["provider_kobo"]),
            v["error"],
            int(v["ledger_kobo"]),
            datetime.datetime.fromisoformat(v["checked_at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


async def float_status(
    redis: Any,
    runtime: VtuRuntime,
    session: AsyncSession,
    slug: str,
    *,
    fresh: bool = False,
) -> FloatStatus:
    """The cached status (at most CACHE_SECONDS old), or a new one (`fresh=True` skips the cache): the
    provider is asked first, then the ledger read on `session` (which must have no transaction open)."""
    key = CACHE_KEY.format(slug=slug)
    if not fresh and (cached := _load(slug, await redis.get(key))) is not None:
        return cached
    provider_kobo, error = await _ask(runtime, slug)  # outside any transaction
    if error:
        log.warning("provider_balance_unavailable", provider=slug, error=error)
    else:  # routing's last known float (app/vtu/provider_health.py), kept longer than this cache
        from app.vtu.provider_health import remember_float

        await remember_float(redis, runtime.settings, slug, int(provider_kobo or 0))
    ledger_kobo = await _ledger_float(session, slug)
    status = FloatStatus(slug, provider_kobo, error, ledger_kobo, datetime.datetime.now(datetime.UTC))
    value = {
        "provider_kobo": provider_kobo,
        "error": error,
        "ledger_kobo": ledger_kobo,
        "checked_at": status.checked_at.isoformat(),
    }
    await redis.set(key, json.dumps(value), ex=CACHE_SECONDS)
    return status


async def float_statuses(
    redis: Any, runtime: VtuRuntime, session: AsyncSession, *, fresh: bool = False
) -> list[FloatStatus]:
    """Every selling provider's float. `session` must have no transaction open (the provider may be asked
    before it is used; no transaction is held across that call)."""
    return [await float_status(redis, runtime, session, s, fresh=fresh) for s in provider_slugs(runtime)]


__all__ = ["CACHE_SECONDS", "FloatStatus", "float_status", "float_statuses", "provider_slugs"]
