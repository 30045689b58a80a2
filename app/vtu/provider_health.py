"""Provider health for routing (docs/architecture.md, "Provider health and routing"): a circuit breaker per
provider slug and the provider's last known float, both in Redis so every web and worker process shares
them, plus the staff-edited provider order (`provider_routes`, app/vtu/provider_routes.py).

`ProviderHealth` implements the router's `RouteHealth` protocol:
- `order_for(service_id)`: the staff-edited provider order, or None (use the configured order);
- `usable(slug, amount_kobo)`: the breaker lets a call through AND the last known float covers the amount.

What counts as an error (`call_failed` / `result_failed`): no usable answer came back. A `ProviderResult`
with `code is None` (transport failure, timeout, HTTP 5xx, a body that is not the expected JSON) or a
`ProviderError` without a code (same, for balance / verify / variations), or any other exception (a bug,
the /pay cut-off's cancellation). A definite business answer is NOT an error, whatever it says: a failed
top-up (016, invalid number), a rejected meter, 018 low wallet, even "pending" with a code (099): the
provider answered. `DuplicatePayAttempt` is neither (no call was made).

Breaker (keys `vtu:breaker:<slug>:errors|open_until|probe`, each step one Lua script, so concurrent
processes cannot interleave):
- closed: every call goes through; each error increments `errors` (forgotten ERRORS_WINDOW seconds after
  the last one), each success deletes it. At VTU_BREAKER_ERRORS consecutive errors it opens:
  `open_until = now + VTU_BREAKER_COOLDOWN_SECONDS`.
- open (now < open_until): `usable` is False.
- half-open (now >= open_until): `usable` claims `probe` with SET NX (expiring after
  VTU_BREAKER_PROBE_SECONDS, in case the prober dies): exactly one caller gets True, all others False until
  the probe's answer is recorded. Success closes (all keys deleted); an error re-opens for another cool-down.
  The worker's `probe_providers` cron (app/vtu/tasks.py) probes half-open providers with `balance()`, so a
  provider recovers even when no purchase is routed to it.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from redis.exceptions import RedisError
from sqlalchemy import select

from app.core.metrics import PROVIDER_BREAKER
from app.vtu.providers.base import DuplicatePayAttempt, ProviderError, ProviderResult

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.config.settings import Settings
    from app.vtu.providers.base import Provider

log = structlog.get_logger("app.vtu.provider_health")

ERRORS_WINDOW_SECONDS = 600  # consecutive errors further apart than this start counting again
ROUTES_CACHE_SECONDS = 5.0  # staff edits reach other processes within this
PROBE_TIMEOUT_SECONDS = 10.0  # the probe cron's balance() call
FLOAT_KEY = "vtu:float:last:{slug}"  # "<kobo>:<unix time>", expires after VTU_FLOAT_FRESH_SECONDS
# /pay answers that mean "our float with this provider cannot pay for this order" (nothing placed).
LOW_FLOAT_CODES = {"vtpass": frozenset({"018"}), "clubkonnect": frozenset({"417"})}


def _key(slug: str, part: str) -> str:
    return f"vtu:breaker:{slug}:{part}"


class RouteHealth(Protocol):
    async def order_for(self, service_id: str) -> list[str] | None: ...

    async def usable(self, slug: str, amount_kobo: int) -> bool: ...


class CallRecorder(Protocol):
    """What the provider wrapper (app/vtu/providers/instrumented.py) reports after every call, and after a
    /pay refused for low float (`LOW_FLOAT_CODES`) the amount that float could not cover."""

    async def record(self, slug: str, ok: bool, reason: str = "") -> None: ...

    async def record_low_float(self, slug: str, amount_kobo: int) -> None: ...


def low_float(slug: str, result: ProviderResult) -> bool:
    return result.code in LOW_FLOAT_CODES.get(slug, frozenset())


def result_failed(result: ProviderResult) -> bool:
    """A pay / requery answer that is no answer (code None: transport, timeout, 5xx, unreadable body)."""
    return result.code is None


def call_failed(exc: BaseException) -> bool | None:
    """Whether an exception out of a provider call counts as a breaker error; None: it says nothing about
    the provider (a second /pay refused locally, or the process exiting)."""
    if isinstance(exc, DuplicatePayAttempt):
        return None
    if isinstance(exc, ProviderError):
        return exc.code is None  # with a code the provider answered (rejected meter, 087, ...)
    if isinstance(exc, asyncio.CancelledError | Exception):
        return True  # the /pay cut-off or a timeout cancelling the call, or a bug in the adapter
    return None  # KeyboardInterrupt, SystemExit


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class Breaker:
    slug: str
    state: BreakerState
    errors: int  # consecutive errors counted (while closed)
    open_until: datetime.datetime | None  # when OPEN (or since when it may be probed, when HALF_OPEN)
    probing: bool  # a probe is claimed and not yet answered
    last_error: str | None


@dataclass(frozen=True, slots=True)
class KnownFloat:
    slug: str
    kobo: int
    at: datetime.datetime


# KEYS: open_until, probe, float. ARGV: now, amount, probe ttl.
_USABLE = """
local fl = redis.call('GET', KEYS[3])
if fl then
  local kobo = tonumber(string.match(fl, '^(-?%d+)'))
  if kobo and kobo < tonumber(ARGV[2]) then return 'float' end
end
local opened = redis.call('GET', KEYS[1])
if not opened then return 'closed' end
if tonumber(ARGV[1]) < tonumber(opened) then return 'open' end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', tonumber(ARGV[3])) then return 'probe' end
return 'probing'
"""
# KEYS: open_until, probe. ARGV: now, probe ttl. (Breaker only: the worker's probe.)
_CLAIM = """
local opened = redis.call('GET', KEYS[1])
if not opened then return 'closed' end
if tonumber(ARGV[1]) < tonumber(opened) then return 'open' end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then return 'probe' end
return 'probing'
"""
# KEYS: errors, open_until, probe, last_error. ARGV: now, threshold, cooldown, window, reason.
_FAILURE = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('SET', KEYS[4], ARGV[5], 'EX', 86400)
local now = tonumber(ARGV[1])
local opened = redis.call('GET', KEYS[2])
if opened then
  redis.call('SET', KEYS[2], now + tonumber(ARGV[3]))
  redis.call('DEL', KEYS[3])
  if now >= tonumber(opened) then return 'reopened' end
  return 'extended'
end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], now + tonumber(ARGV[3]))
  redis.call('DEL', KEYS[3])
  return 'opened'
end
return 'counted'
"""
# KEYS: errors, open_until, probe.
_SUCCESS = """
local opened = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if opened then return 'closed' end
return 'ok'
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ProviderHealth:
    """Breakers, last known floats and staff routes; one per process is enough (it holds only a small
    cache of `provider_routes`), but any number may exist: the state is in Redis and PostgreSQL."""

    def __init__(
        self,
        redis: Any,
        sessionmaker: async_sessionmaker[AsyncSession] | None,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        routes_cache_seconds: float = ROUTES_CACHE_SECONDS,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.clock = clock
        self.routes_cache_seconds = routes_cache_seconds
        self._routes: tuple[float, dict[str, list[str]]] | None = None
        self._usable = redis.register_script(_USABLE)
        self._claim = redis.register_script(_CLAIM)
        self._failure = redis.register_script(_FAILURE)
        self._success = redis.register_script(_SUCCESS)

    # -- RouteHealth --------------------------------------------------------------------------------
    async def order_for(self, service_id: str, executor: Any = None) -> list[str] | None:
        """The staff-edited order of `service_id` (app/vtu/provider_routes.py), None when staff set none.
        `executor`: the caller's connection or session, read through when the cache is stale (a purchase
        being opened holds one: asking the pool for a second could wait forever once every connection is
        held by a request doing the same)."""
        routes = await self._staff_routes(executor)
        found = routes.get(service_id)
        return list(found) if found else None

    async def usable(self, slug: str, amount_kobo: int) -> bool:
        """True when the breaker lets a call through (closed, or this caller won the half-open probe) and
        the last known float (if fresh) covers `amount_kobo` (pass the provider's cost of the purchase).
        Ask it only for the provider about to be called, in order: a True while half-open is THE probe.
        Without Redis the answer is True: health is advice, and a sale must not fail because the breakers
        cannot be read (the provider's own answer still decides the purchase)."""
        try:
            answer = _text(
                await self._usable(
                    keys=[_key(slug, "open_until"), _key(slug, "probe"), FLOAT_KEY.format(slug=slug)],
                    args=[self.clock(), int(amount_kobo), self.settings.vtu_breaker_probe_seconds],
                )
            )
        except (RedisError, OSError) as exc:
            log.warning("provider_health_unreadable", provider=slug, error=type(exc).__name__)
            return True
        if answer == "probe":
            log.info("provider_breaker_probe", provider=slug)
        return answer in ("closed", "probe")

    # -- recording (CallRecorder) ------------------------------------------------------------------
    async def record(self, slug: str, ok: bool, reason: str = "") -> None:
        if ok:
            await self.record_success(slug)
        else:
            await self.record_failure(slug, reason)

    async def record_success(self, slug: str) -> None:
        keys = [_key(slug, "errors"), _key(slug, "open_until"), _key(slug, "probe")]
        if _text(await self._success(keys=keys)) == "closed":
            PROVIDER_BREAKER.labels(slug, "closed").inc()
            log.warning("provider_breaker_closed", provider=slug)

    async def record_failure(self, slug: str, reason: str = "") -> None:
        keys = [_key(slug, "errors"), _key(slug, "open_until"), _key(slug, "probe"), _key(slug, "last_error")]
        s = self.settings
        args = [
            self.clock(),
            s.vtu_breaker_errors,
            s.vtu_breaker_cooldown_seconds,
            ERRORS_WINDOW_SECONDS,
            (reason or "error")[:200],
        ]
        answer = _text(await self._failure(keys=keys, args=args))
        if answer in ("opened", "reopened"):
            PROVIDER_BREAKER.labels(slug, answer).inc()
            log.warning("provider_breaker_" + answer, provider=slug, reason=reason)

    # -- breaker reads and staff actions ------------------------------------------------------------
    async def breaker(self, slug: str) -> Breaker:
        errors, opened, probe, last_error = await self.redis.mget(
            _key(slug, "errors"), _key(slug, "open_until"), _key(slug, "probe"), _key(slug, "last_error")
        )
        until = None if opened is None else float(_text(opened))
        if until is None:
            state = BreakerState.CLOSED
        elif self.clock() < until:
            state = BreakerState.OPEN
        else:
            state = BreakerState.HALF_OPEN
        return Breaker(
            slug,
            state,
            int(_text(errors)) if errors is not None else 0,
            None if until is None else datetime.datetime.fromtimestamp(until, datetime.UTC),
            probe is not None,
            None if last_error is None else _text(last_error),
        )

    async def reset(self, slug: str) -> Breaker:
        """Staff "reset breaker": closed, errors forgotten. Returns the state it was in."""
        before = await self.breaker(slug)
        await self.redis.delete(
            _key(slug, "errors"), _key(slug, "open_until"), _key(slug, "probe"), _key(slug, "last_error")
        )
        return before

    async def claim_probe(self, slug: str) -> bool:
        """The worker's probe: claim the half-open provider's one probe (False: closed, open or taken)."""
        keys = [_key(slug, "open_until"), _key(slug, "probe")]
        answer = await self._claim(keys=keys, args=[self.clock(), self.settings.vtu_breaker_probe_seconds])
        return _text(answer) == "probe"

    async def probe(self, provider: Provider) -> bool | None:
        """Probe a half-open provider with `balance()`: True closed it, False re-opened it, None: nothing to
        probe (closed, still cooling down, or another process probes it). A balance that answers is also
        remembered as the provider's float."""
        slug = provider.slug
        if not await self.claim_probe(slug):
            return None
        try:
            kobo = await asyncio.wait_for(provider.balance(), PROBE_TIMEOUT_SECONDS)
        except Exception as exc:  # our own cancellation propagates; the claim then expires on its own
            if call_failed(exc) is False:  # it answered, with a refusal: alive
                await self.record_success(slug)
                return True
            await self.record_failure(slug, f"probe: {type(exc).__name__}: {exc}"[:200])
            return False
        await self.record_success(slug)
        await self.remember_float(slug, int(kobo))
        return True

    # -- float --------------------------------------------------------------------------------------
    async def remember_float(self, slug: str, kobo: int) -> None:
        await remember_float(self.redis, self.settings, slug, kobo, now=self.clock())

    async def record_low_float(self, slug: str, amount_kobo: int) -> None:
        """The provider refused an order of `amount_kobo` for low float: its float is below it. Kept as the
        last known float (`amount_kobo - 1`, an upper bound) unless a lower one is known, so larger orders
        skip it and smaller ones may still go, until the next balance answer tells the real figure."""
        known = await self.known_float(slug)
        bound = max(0, int(amount_kobo) - 1)
        if known is None or known.kobo > bound:
            await self.remember_float(slug, bound)
            log.warning("provider_float_too_low", provider=slug, amount_kobo=amount_kobo)

    async def known_float(self, slug: str) -> KnownFloat | None:
        raw = await self.redis.get(FLOAT_KEY.format(slug=slug))
        if raw is None:
            return None
        kobo, _, at = _text(raw).partition(":")
        try:
            return KnownFloat(slug, int(kobo), datetime.datetime.fromtimestamp(float(at), datetime.UTC))
        except ValueError:
            return None

    # -- staff routes -------------------------------------------------------------------------------
    def forget_routes(self) -> None:
        """Drop this process's cache of `provider_routes` (after a staff edit in this process)."""
        self._routes = None

    async def _staff_routes(self, executor: Any = None) -> dict[str, list[str]]:
        now = time.monotonic()
        if self._routes is not None and now - self._routes[0] < self.routes_cache_seconds:
            return self._routes[1]
        from app.vtu.provider_routes import ProviderRoute

        query = select(ProviderRoute.service_id, ProviderRoute.providers).where(
            ProviderRoute.providers.is_not(None)
        )
        routes: dict[str, list[str]] = {}
        if executor is not None:
            routes = {sid: list(slugs) for sid, slugs in await executor.execute(query) if slugs}
        elif self.sessionmaker is not None:
            async with self.sessionmaker() as session:
                routes = {sid: list(slugs) for sid, slugs in await session.execute(query) if slugs}
        self._routes = (now, routes)
        return routes


async def remember_float(
    redis: Any, settings: Settings, slug: str, kobo: int, *, now: float | None = None
) -> None:
    """Store a provider's balance as its last known float (app/vtu/balances.py calls it on every answer)."""
    at = time.time() if now is None else now
    await redis.set(FLOAT_KEY.format(slug=slug), f"{int(kobo)}:{at}", ex=settings.vtu_float_fresh_seconds)


async def probe_and_refresh(
    health: ProviderHealth, providers: Iterable[Provider], refresh: Callable[[str], Any]
) -> dict[str, str]:
    """One round of the worker's cron: probe each half-open provider; refresh the float of each closed one
    (`refresh(slug)`: app/vtu/balances.float_status, cached 60 s, so the alert check's call is reused).
    An open provider (cooling down) is left alone."""
    report: dict[str, str] = {}
    for provider in providers:
        slug = provider.slug
        state = (await health.breaker(slug)).state
        if state is BreakerState.HALF_OPEN:
            probed = await health.probe(provider)
            report[slug] = {True: "closed", False: "reopened", None: "probing"}[probed]
        elif state is BreakerState.OPEN:
            report[slug] = "open"
        else:
            await refresh(slug)
            report[slug] = "refreshed"
    return report


__all__ = [
    "FLOAT_KEY",
    "LOW_FLOAT_CODES",
    "Breaker",
    "BreakerState",
    "CallRecorder",
    "KnownFloat",
    "ProviderHealth",
    "RouteHealth",
    "call_failed",
    "low_float",
    "probe_and_refresh",
    "remember_float",
    "result_failed",
]
