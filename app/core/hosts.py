"""ALLOWED_HOSTS: which Host headers the site answers, whatever the port (Django's rules).

A pattern is an exact host name (`topup.ng`), a leading-dot domain (`.topup.ng`: the domain and every
subdomain), `*` (anything), or an IP literal (`127.0.0.1`, `::1` or `[::1]`). The Host header's port is
ignored: `127.0.0.1` accepts `Host: 127.0.0.1:8000`. Only the Host header counts (X-Forwarded-Host is never
believed: a proxy passes the client's Host through). A refused or malformed Host gets a plain 400.

Litestar's own AllowedHostsConfig compares the whole header, port included, hence this middleware.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

# Host names as they may appear in a Host header (letters, digits, dots, hyphens; underscores seen in the
# wild); IPv6 literals are bracketed.
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")
_HOST_HEADER = re.compile(r"(?P<host>[a-z0-9_.-]+|\[[0-9a-f:.]+\])(:(?P<port>[0-9]{1,5}))?")
# Probes come from load balancers and orchestrators that address the container by its IP.
EXEMPT_PATHS = frozenset({"/health", "/ready"})
REFUSED_BODY = b"Bad Request: this site does not answer to that host name.\n"


def _ip_literal(value: str) -> str | None:
    """'::1', '[::1]', '127.0.0.1' -> the address's canonical text, else None."""
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


def normalise_pattern(raw: str) -> str:
    """An ALLOWED_HOSTS entry in canonical form; ValueError with the reason for anything else."""
    value = raw.strip().lower()
    if value == "*":
        return value
    literal = _ip_literal(value)
    if literal is not None:
        return literal
    name = value[1:] if value.startswith(".") else value
    if ":" in name or "/" in name:
        raise ValueError(f"{raw.strip()!r}: list host names only, without a scheme or port")
    if not _NAME.fullmatch(name.rstrip(".")):
        raise ValueError(f"{raw.strip()!r} is not a host name")
    return ("." if value.startswith(".") else "") + name.rstrip(".")


def host_of(header: str) -> str | None:
    """The host part of a Host header (lower case, no port, no trailing dot), or None when malformed."""
    match = _HOST_HEADER.fullmatch(header.strip().lower())
    if match is None:
        return None
    host = match.group("host")
    if host.startswith("["):
        return _ip_literal(host)
    return host.rstrip(".") or None


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    literal = _ip_literal(host)
    for pattern in patterns:
        if pattern == "*":
            return True
        if literal is not None:
            if pattern == literal:
                return True
        elif pattern.startswith("."):
            if host == pattern[1:] or host.endswith(pattern):
                return True
        elif host == pattern:
            return True
    return False


class AllowedHostsMiddleware:
    """Pure ASGI: refuse HTTP requests whose Host header is missing, malformed or not in ALLOWED_HOSTS."""

    def __init__(self, app: Any, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.patterns = tuple(allowed_hosts)
        self.any_host = "*" in self.patterns  # development default: no check at all

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.any_host or scope["type"] not in ("http", "websocket") or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope.get("headers") or ():
            if name == b"host":
                raw = value.decode("latin-1")
                break
        host = host_of(raw) if raw is not None else None
        if host is not None and host_allowed(host, self.patterns):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(REFUSED_BODY)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": REFUSED_BODY})


__all__ = ["AllowedHostsMiddleware", "host_allowed", "host_of", "normalise_pattern"]
