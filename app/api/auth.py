"""Bearer API-key authentication for /api/v1 (a middleware on the API router only).

Per request: hash the presented key and look it up with its owner (one indexed query; a revoked key or an
inactive user is unknown), check the key's IP allowlist, count the request against the key's rate limit in
Redis, and record `last_used_at` at most once a minute per key (the Redis call says when). Browser sessions
and CSRF play no part here: the session middleware excludes ^/api/ and CSRF is exempt for it.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import select, update

from app.accounts.apikeys import ApiKey, hash_key, ip_allowed, looks_like_key
from app.accounts.models import User
from app.api.errors import ApiError
from app.api.ratelimit import RateLimiter

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.connection import ASGIConnection
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = structlog.get_logger("app.api.auth")


@dataclass(frozen=True, slots=True)
class ApiPrincipal:
    """Who is calling: the key and its owner (a detached User row; read-only here)."""

    key_id: uuid.UUID
    key_prefix: str
    user: User

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id


class ApiRuntime:
    """Per-process helpers of the API: a session factory on the app's engine and the Redis rate limiter."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], limiter: RateLimiter) -> None:
        self.sessionmaker = sessionmaker
        self.limiter = limiter


def get_api_runtime(app: Litestar) -> ApiRuntime:
    runtime: ApiRuntime | None = app.state.get("api")
    if runtime is None:  # no await between the check and the assignment: one per process
        runtime = ApiRuntime(app.state.alchemy.create_session_maker(), RateLimiter(app.state.redis))
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


_LOOKUP = (
    select(ApiKey.id, ApiKey.prefix, ApiKey.allowed_ips, User)
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.revoked_at.is_(None), User.is_active.is_(True))
)


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
        async with runtime.sessionmaker() as session:
            row = (await session.execute(_LOOKUP.where(ApiKey.key_hash == hash_key(token)))).one_or_none()
        if row is None:
            raise ApiError(401, "unauthorized", "Unknown or revoked API key.")
        key_id, prefix, allowed_ips, user = row
        client_ip = connection.client.host if connection.client else None
        if not ip_allowed(allowed_ips, client_ip):
            log.warning("api_key_ip_refused", key=prefix, ip=client_ip)
            raise ApiError(403, "ip_not_allowed", "This API key may not be used from this address.")
        settings = connection.app.state.settings
        decision = await runtime.limiter.hit(key_id, settings.api_rate_limit_per_minute)
        if decision.record_last_used:
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
        async with runtime.sessionmaker() as session:
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(last_used_at=datetime.datetime.now(datetime.UTC))
                .execution_options(synchronize_session=False)
            )
            await session.commit()
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
    "bearer_token",
    "get_api_runtime",
    "principal",
]
