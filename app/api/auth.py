"""Bearer API-key authentication for /api/v1 (a middleware on the API router only).

Per request: hash the presented key and look it up with its owner (one indexed statement outside any
transaction; a revoked key or an inactive user is unknown; a suspended user's key is refused with 403
`account_suspended`), check the key's IP allowlist, count the request
against the key's rate limit in Redis (skipped when the limit is off), and record `last_used_at` at most
once a minute per key (the Redis call says when; without a limit, this process's own clock). Browser sessions
and CSRF play no part here: the session middleware excludes ^/api/ and CSRF is exempt for it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy.ext.asyncio import AsyncEngine

from app.accounts.apikeys import hash_key, ip_allowed, looks_like_key
from app.api.callbacks import remember_callback_url
from app.api.errors import ApiError, suspended
from app.core.db import driver_connection
from app.core.request_context import bind_user
from app.core.throttle import RateDecision, Throttle, throttle_for

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.connection import ASGIConnection
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = structlog.get_logger("app.api.auth")

LAST_USED_EVERY_SECONDS = 60  # how often a key's last_used_at is written


@dataclass(frozen=True, slots=True)
class ApiUser:
    """The key's owner, as much as the API needs (fits app.vtu.service.Buyer)."""

    id: uuid.UUID
    tier: str
    account_reference: str


@dataclass(frozen=True, slots=True)
class ApiPrincipal:
    """Who is calling: the key and its owner."""

    key_id: uuid.UUID
    key_prefix: str
    user: ApiUser

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id


class ApiRuntime:
    """Per-process helpers of the API: the app's engine and session factory, the Redis rate limiter, and
    when each key's last use was last written by this process (when rate limiting is off, Redis is not
    asked at all)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], limiter: Throttle) -> None:
        self.sessionmaker = sessionmaker
        engine = sessionmaker.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("the API needs a sessionmaker bound to an AsyncEngine")
        self.engine = engine
        self.limiter = limiter
        self._last_touch: dict[uuid.UUID, float] = {}

    def touch_due(self, key_id: uuid.UUID) -> bool:
        """True at most once a minute per key (per process): time to record the key's last use."""
        now = time.monotonic()
        if now - self._last_touch.get(key_id, -1e9) < LAST_USED_EVERY_SECONDS:
            return False
        if len(self._last_touch) > 100_000:  # bounded: forget everything rather than grow forever
            self._last_touch.clear()
        self._last_touch[key_id] = now
        return True


def get_api_runtime(app: Litestar) -> ApiRuntime:
    runtime: ApiRuntime | None = app.state.get("api")
    if runtime is None:  # no await between the check and the assignment: one per process
        runtime = ApiRuntime(app.state.alchemy.create_session_maker(), throttle_for(app.state.redis))
        app.state["api"] = runtime
    return runtime


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


# One statement on a bare pooled connection (no transaction): this runs before every API request.
_LOOKUP = (
    "SELECT k.id, k.prefix, k.allowed_ips, k.callback_url, u.id AS user_id, u.tier, u.account_reference,"
    " u.suspended_at IS NOT NULL AS suspended"
    " FROM api_keys k JOIN users u ON u.id = k.user_id"
    " WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.is_active AND u.tier = ANY($2::text[])"
)
_TOUCH = "UPDATE api_keys SET last_used_at = now() WHERE id = $1"


class ApiKeyAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = bearer_token(connection.headers.get("authorization"))
        if token is None:
            raise ApiError(401, "unauthorized", "Missing API key: send `Authorization: Bearer <key>`.")
        if not looks_like_key(token):
            raise ApiError(401, "unauthorized", "Unknown or revoked API key.")
        runtime = get_api_runtime(connection.app)
        async with driver_connection(runtime.engine) as conn:
            # A key whose owner left the API tiers (API_KEY_TIERS) stops working with them.
            tiers = list(connection.app.state.settings.api_key_tiers)
            row = await conn.fetchrow(_LOOKUP, hash_key(token), tiers)
        if row is None:
            raise ApiError(401, "unauthorized", "Unknown or revoked API key.")
        key_id, prefix, allowed_ips = row["id"], row["prefix"], row["allowed_ips"]
        if isinstance(allowed_ips, str):
            allowed_ips = json.loads(allowed_ips)
        user = ApiUser(row["user_id"], row["tier"], row["account_reference"])
        bind_user(row["user_id"])  # every later log line of this request names the key's owner
        remember_callback_url(key_id, row["callback_url"])
        client_ip = connection.client.host if connection.client else None
        if not ip_allowed(allowed_ips, client_ip):
            log.warning("api_key_ip_refused", key=prefix, ip=client_ip)
            raise ApiError(403, "ip_not_allowed", "This API key may not be used from this address.")
        if row["suspended"]:  # read on every call (nothing cached): a suspension applies to the next request
            log.info("api_key_owner_suspended", key=prefix)
            raise suspended()
        settings = connection.app.state.settings
        if settings.api_rate_limit_per_minute > 0:
            decision = await runtime.limiter.sliding(
                f"api:{key_id}",
                settings.api_rate_limit_per_minute,
                mark_key=f"api-used:{key_id}",
                mark_ttl=LAST_USED_EVERY_SECONDS,
            )
        else:  # no limit: nothing to count in Redis; last-used bookkeeping stays in this process
            decision = RateDecision(True, 0, runtime.touch_due(key_id))
        if decision.first_in_mark_window:
            await _touch(runtime, key_id)
        if not decision.allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"More than {settings.api_rate_limit_per_minute} requests a minute with this key.",
                headers={"Retry-After": str(decision.retry_after_seconds)},
            )
        return AuthenticationResult(user=ApiPrincipal(key_id, prefix, user), auth=key_id)


async def _touch(runtime: ApiRuntime, key_id: uuid.UUID) -> None:
    try:
        async with driver_connection(runtime.engine) as conn:
            await conn.execute(_TOUCH, key_id)
    except Exception:  # bookkeeping only: never fail a request over it
        log.exception("api_key_touch_failed", key_id=str(key_id))


def principal(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiPrincipal:
    user = connection.scope.get("user")
    if not isinstance(user, ApiPrincipal):  # the middleware always runs first; this is a wiring bug
        raise ApiError(401)
    return user


__all__ = [
    "ApiKeyAuthMiddleware",
    "ApiPrincipal",
    "ApiRuntime",
    "ApiUser",
    "bearer_token",
    "get_api_runtime",
    "principal",
]
