"""Request ids and the log context (docs/architecture.md, "Observability").

Every response carries `X-Request-ID`. A client's (or the proxy's) id is kept only when it matches
`^[A-Za-z0-9._-]{8,64}$`; anything else (CR/LF, unicode, 1,000 characters, nothing) is replaced by a fresh
uuid4 hex, so a header we echo can never split a response or flood a log line.

structlog's contextvars carry `request_id` for every line logged while a request is served (the middleware
binds it first thing), `user_id` once a session or an API key identified the caller (`bind_user`, called by
both authentication middlewares), and `purchase_id` / `purchase_reference` while a purchase is handled
(`purchase_context`). Each request and each SAQ job runs in its own asyncio task, whose copy of the context
dies with it: nothing leaks into the next request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
_SCOPE_KEY = "vtu_request_id"
VALID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def clean_request_id(value: str | bytes | None) -> str:
    """The client's id when it is safe to echo and log, else a new uuid4 hex."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            value = None
    if value is not None and VALID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def request_id_for(scope: Any) -> str:
    """This request's id, decided once per request and remembered in its ASGI scope."""
    known = scope.get(_SCOPE_KEY)
    if known is None:
        given = None
        for name, value in scope.get("headers") or ():
            if name == _HEADER_BYTES:
                given = value
                break
        known = clean_request_id(given)
        scope[_SCOPE_KEY] = known
    return str(known)


class RequestContextMiddleware:
    """Outermost of our middlewares: a fresh log context holding only this request's id."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id_for(scope))
        await self.app(scope, receive, send)


def add_request_id_header(message: Any, scope: Any) -> None:
    """before_send: the id on every answer, including those no route matched (404) or a middleware gave."""
    headers = message.setdefault("headers", [])
    if not any(bytes(name).lower() == _HEADER_BYTES for name, _ in headers):
        headers.append((_HEADER_BYTES, request_id_for(scope).encode()))


def bind_user(user_id: object) -> None:
    """The signed-in user (session or API key) on every later log line of this request."""
    structlog.contextvars.bind_contextvars(user_id=str(user_id))


@contextmanager
def purchase_context(purchase_id: object, reference: str | None = None) -> Iterator[None]:
    """Log lines inside carry the purchase (its id and the provider reference) and the previous values
    come back afterwards (a bulk job handles many purchases in one task)."""
    values: dict[str, str] = {"purchase_id": str(purchase_id)}
    if reference:
        values["purchase_reference"] = reference
    with structlog.contextvars.bound_contextvars(**values):
        yield


__all__ = [
    "HEADER",
    "VALID",
    "RequestContextMiddleware",
    "add_request_id_header",
    "bind_user",
    "clean_request_id",
    "purchase_context",
    "request_id_for",
]
