"""Sentry error reporting, when SENTRY_DSN is set (docs/architecture.md, "Observability").

`init_sentry` runs in the web process (before the Litestar app is built: the Litestar integration patches
it) and in every SAQ worker (workers/context.py). Environment = APP_ENV; traces sampled at
SENTRY_TRACES_SAMPLE_RATE (default 0: errors only). Integrations: Litestar, asyncio (where a loop runs),
SQLAlchemy, Redis, and logging (ERROR log lines become events, INFO+ are breadcrumbs).

`scrub_event` is the before_send hook: whatever the SDK collected, credentials and personal identifiers
never leave the process. Headers Authorization, Cookie, Set-Cookie, monnify-signature (and any header
whose name says key/token/secret) and fields named password, pin, new_pin, password_confirm, api key,
token, bvn, nin, secret (any case, `-`/`_`/space alike, also nested in JSON bodies, extra data,
breadcrumbs and local variables) are replaced by FILTERED. Bearer tokens and our API keys inside strings
(log messages, query strings) are cut out too.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.config.settings import Settings

FILTERED = "[Filtered]"

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "monnify-signature", "x-csrftoken"}
)
_SECRET_HEADER_WORDS = ("key", "token", "secret", "signature", "password")
SECRET_FIELDS = frozenset(
    {
        "password",
        "pin",
        "new_pin",
        "current_pin",
        "password_confirm",
        "new_password",
        "current_password",
        "api_key",
        "apikey",
        "token",
        "bvn",
        "nin",
        "secret",
        "secret_key",
        "client_secret",
        "csrf_token",
        "_csrf_token",
        "authorization",
        "cookie",
        "set_cookie",
        "monnify_signature",
        # exam PINs (app/vtu/exam.py) and the provider fields that carry them
        "pins",
        "serial",
        "cards",
        "purchased_code",
        "pins_ciphertext",
    }
)
# "Bearer abc...", and whatever follows a secret-sounding name in a query string or message
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_INLINE = re.compile(
    r"(?i)\b(password|pin|pins|serial|new_pin|password_confirm|api[_-]?key|token|bvn|nin|secret)=([^&\s]+)"
)


def _norm(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def secret_field(name: object) -> bool:
    return isinstance(name, str) and _norm(name) in SECRET_FIELDS


def secret_header(name: object) -> bool:
    if not isinstance(name, str):
        return False
    lowered = name.strip().lower()
    return lowered in SECRET_HEADERS or any(word in lowered for word in _SECRET_HEADER_WORDS)


# 'pin': '1234' / "token": "..." inside a rendered dict (a structlog event dict logged through stdlib)
_QUOTED = re.compile(
    r"""(?i)(['"])(password|pin|pins|serial|purchased_code|new_pin|password_confirm|api[_-]?key|token|bvn|nin|secret|authorization|cookie)"""
    r"""\1(\s*:\s*)(['"])(.*?)(?<!\\)\4"""
)


def _scrub_string(value: str) -> str:
    value = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", value)
    value = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}'{FILTERED}'", value)
    return _INLINE.sub(lambda m: f"{m.group(1)}={FILTERED}", value)


def scrub(value: Any, depth: int = 0) -> Any:
    """Replace the values of secret fields anywhere in a JSON-like structure."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {k: FILTERED if secret_field(k) else scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        # [name, value] pairs (headers, form fields as Sentry sometimes sends them)
        out = []
        for item in value:
            if (
                isinstance(item, list | tuple)
                and len(item) == 2
                and (secret_field(item[0]) or secret_header(item[0]))
            ):
                out.append([item[0], FILTERED])
            else:
                out.append(scrub(item, depth + 1))
        return out
    if isinstance(value, str):
        return _scrub_string(value)
    return value


def _scrub_headers(headers: Any) -> Any:
    if isinstance(headers, dict):
        return {k: FILTERED if secret_header(k) else scrub(v) for k, v in headers.items()}
    if isinstance(headers, list):
        return [
            [pair[0], FILTERED]
            if isinstance(pair, list | tuple) and len(pair) == 2 and secret_header(pair[0])
            else scrub(pair)
            for pair in headers
        ]
    return headers


def scrub_event(event: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    """Sentry's before_send (also used for transactions): never drops an event, only blanks secrets."""
    request = event.get("request")
    if isinstance(request, dict):
        if "headers" in request:
            request["headers"] = _scrub_headers(request["headers"])
        if "cookies" in request:
            request["cookies"] = FILTERED
        if "data" in request:
            request["data"] = (
                _scrub_string(request["data"]) if isinstance(request["data"], str) else scrub(request["data"])
            )
        if isinstance(request.get("query_string"), str):
            request["query_string"] = _scrub_string(request["query_string"])
        if isinstance(request.get("url"), str):
            request["url"] = _scrub_string(request["url"])
        if "env" in request:
            request["env"] = scrub(request["env"])
    for key in ("extra", "contexts", "tags", "user", "logentry", "breadcrumbs", "message"):
        if key in event:
            event[key] = scrub(event[key])
    for exc in (event.get("exception") or {}).get("values") or []:
        if isinstance(exc, dict):
            if isinstance(exc.get("value"), str):
                exc["value"] = _scrub_string(exc["value"])
            for frame in (exc.get("stacktrace") or {}).get("frames") or []:
                if isinstance(frame, dict) and "vars" in frame:
                    frame["vars"] = scrub(frame["vars"])
    for thread in (event.get("threads") or {}).get("values") or []:
        for frame in ((thread or {}).get("stacktrace") or {}).get("frames") or []:
            if isinstance(frame, dict) and "vars" in frame:
                frame["vars"] = scrub(frame["vars"])
    return event


def _scrub_attributes(attributes: Any) -> Any:
    """Sentry logs / spans: {"name": value} or {"name": {"value": ..., "type": ...}}; names may be dotted
    ("sentry.message.parameter.pin")."""
    if not isinstance(attributes, dict):
        return scrub(attributes)
    out = {}
    for key, val in attributes.items():
        last = key.rsplit(".", 1)[-1] if isinstance(key, str) else key
        if secret_field(last) or secret_header(last):
            out[key] = {**val, "value": FILTERED} if isinstance(val, dict) and "value" in val else FILTERED
        else:
            out[key] = scrub(val)
    return out


def scrub_log(record: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    """before_send_log: Sentry Logs (an ERROR/INFO line sent as a log item) get the same treatment."""
    if isinstance(record.get("body"), str):
        record["body"] = _scrub_string(record["body"])
    if "attributes" in record:
        record["attributes"] = _scrub_attributes(record["attributes"])
    return record


def scrub_span(span: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    """before_send_span (only with SENTRY_TRACES_SAMPLE_RATE > 0)."""
    for key in ("attributes", "data"):
        if key in span:
            span[key] = _scrub_attributes(span[key])
    if isinstance(span.get("name"), str):
        span["name"] = _scrub_string(span["name"])
    return span


def init_sentry(settings: Settings, *, component: str) -> bool:
    """Start the SDK when SENTRY_DSN is set (once per process; a second call changes nothing).
    `component`: "web" or "worker" (a tag on every event). True when Sentry is on."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        return True
    from sentry_sdk.integrations.asyncio import AsyncioIntegration
    from sentry_sdk.integrations.litestar import LitestarIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.redis import RedisIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.app_env,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        before_send=scrub_event,  # type: ignore[arg-type]
        before_send_log=scrub_log,  # type: ignore[arg-type]
        before_send_span=scrub_span,  # type: ignore[arg-type]
        # Request bodies are never sent (a purchase form carries the PIN; the scrubber is the second line).
        data_collection={"http_bodies": [], "user_info": False},
        integrations=[
            LitestarIntegration(),
            SqlalchemyIntegration(),
            RedisIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            # asyncio patches the running loop: a worker starts Sentry inside its loop, the web process
            # before its loop exists (enable_asyncio at start-up)
            *([AsyncioIntegration()] if _loop_running() else []),
        ],
    )
    sentry_sdk.get_global_scope().set_tag("component", component)
    return True


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def enable_asyncio(_app: Any = None) -> None:
    """The asyncio integration patches the running loop: the web process calls this at start-up."""
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        from sentry_sdk.integrations.asyncio import enable_asyncio_integration

        enable_asyncio_integration()


__all__ = [
    "FILTERED",
    "enable_asyncio",
    "init_sentry",
    "scrub",
    "scrub_event",
    "secret_field",
    "secret_header",
]
