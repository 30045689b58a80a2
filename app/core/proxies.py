"""TRUSTED_PROXIES: believe X-Forwarded-For / X-Forwarded-Proto only from our own reverse proxies.

Behind a TLS proxy every request comes from the proxy's address, so per-IP throttles and API key IP
allowlists would see one client. When the direct peer is inside TRUSTED_PROXIES, this middleware:

- walks X-Forwarded-For from the right (each proxy appends the address it saw), skipping trusted
  addresses, and makes the first untrusted one the client (`scope["client"]`). Entries to its left were
  written by the client itself and are never believed. If every entry is trusted, the leftmost one is the
  client (an internal caller); a malformed entry stops the walk at the last good address.
- sets `scope["scheme"]` from X-Forwarded-Proto when it says exactly `http` or `https`.

From any other peer, and when TRUSTED_PROXIES is empty, both headers are ignored. Malformed values are
ignored, never an error. It runs outermost, so every `request.client.host` sees the real client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 32  # entries examined per request: a longer chain is not a real proxy path


def parse_address(value: str) -> Address | None:
    """'203.0.113.7', '203.0.113.7:5123', '2001:db8::1', '[2001:db8::1]:443' -> the address, else None.
    IPv4-mapped IPv6 (dual-stack sockets) becomes plain IPv4."""
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end == -1 or (text[end + 1 :] and not text[end + 1 :].startswith(":")):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return None
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def client_from(self, forwarded_for: str) -> Address | None:
        """The real client named by a trusted proxy's X-Forwarded-For, or None if it names nobody usable."""
        last_good: Address | None = None
        for hops, entry in enumerate(reversed(forwarded_for.split(","))):
            if hops >= MAX_HOPS:
                break
            address = parse_address(entry)
            if address is None:
                break
            if not self.trusts(address):
                return address
            last_good = address
        return last_good


class ProxyHeadersMiddleware:
    """Pure ASGI; a no-op when TRUSTED_PROXIES is empty."""

    def __init__(self, app: Any, trusted_proxies: Iterable[str]) -> None:
        self.app = app
        self.proxies = TrustedProxies(trusted_proxies)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.proxies and scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            peer = parse_address(str(client[0])) if client else None
            if self.proxies.trusts(peer):
                self._apply(scope)
        await self.app(scope, receive, send)

    def _apply(self, scope: Any) -> None:
        forwarded: list[str] = []
        protos: list[str] = []
        for name, value in scope.get("headers") or ():
            if name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                protos.append(value.decode("latin-1").strip().lower())
        if forwarded:
            # Repeated headers are one list in order (RFC 9110 field combination).
            client = self.proxies.client_from(",".join(forwarded))
            if client is not None:
                scope["client"] = (str(client), 0)
        if len(protos) == 1 and protos[0] in ("http", "https"):
            secure = protos[0] == "https"
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if secure else "ws"
            else:
                scope["scheme"] = protos[0]


__all__ = ["ProxyHeadersMiddleware", "TrustedProxies", "parse_address"]
