"""Where a reseller callback may be POSTed: checked at send time, pinned for the connection.

A callback URL is the customer's; without care, `https://my-shop.example/hook` resolving to 127.0.0.1,
10.x or 169.254.169.254 makes our worker call our own network (SSRF). So, for every attempt:

1. the host is resolved once (`resolve`, the only DNS lookup);
2. every address it resolves to must be public (`is_public`: not loopback, private, link-local, CGNAT
   100.64/10, multicast, reserved, unspecified, nor an IPv6 form embedding one of those), unless the
   settings allow private addresses (dev and test only: their receivers listen on 127.0.0.1);
3. the request goes to the checked address itself (`Target.url`), with the original `Host` header and
   TLS server name (certificate checked against the host name), so a second lookup cannot swap in another
   address between the check and the connection (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are IPv4
# Certificates of callback receivers are checked against the public CAs (tests swap in their own CA).
TLS_VERIFY: ssl.SSLContext | bool = True


class CallbackTargetError(Exception):
    """The callback URL cannot be sent to now; the message is the reason recorded for the attempt."""


@dataclass(frozen=True, slots=True)
class Target:
    """One checked address of the callback host, ready to connect to."""

    address: str
    url: httpx.URL  # the callback URL with the host replaced by `address`
    headers: dict[str, str] = field(default_factory=dict)  # the original Host
    extensions: dict[str, Any] = field(default_factory=dict)  # the original TLS server name


def is_public(address: Address) -> bool:
    """True for addresses on the public internet only."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None or address.is_site_local:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order (the one DNS lookup per attempt)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        if str(sockaddr[0]) not in addresses:
            addresses.append(str(sockaddr[0]))
    return addresses


async def resolve_targets(url: str, *, allow_private: bool, resolve_seconds: float) -> list[Target]:
    """Checked, pinned targets for one attempt (try them in order); CallbackTargetError with the reason."""
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise CallbackTargetError("callback URL is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise CallbackTargetError("callback URL is not an http(s) URL")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    literal = _ip(host.strip("[]"))
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await asyncio.wait_for(resolve(host, port), resolve_seconds)
        except (OSError, UnicodeError, TimeoutError) as exc:
            raise CallbackTargetError(
                f"callback host {host} could not be resolved ({type(exc).__name__})"
            ) from None
    checked: list[Address] = []
    for text in addresses:
        address = _ip(text)
        if address is None:  # a scoped (link-local) address or something the resolver should not give
            raise CallbackTargetError(f"callback host {host} resolves to {text[:60]}: refused")
        if not allow_private and not is_public(address):
            raise CallbackTargetError(
                f"callback host {host} resolves to {address}, not a public address: refused"
            )
        checked.append(address)
    if not checked:
        raise CallbackTargetError(f"callback host {host} has no address")
    host_header = parsed.netloc.decode("ascii")  # host[:port] as the customer wrote it (IDNA-encoded)
    sni = {"sni_hostname": host} if parsed.scheme == "https" and literal is None else {}
    return [
        Target(str(address), parsed.copy_with(host=str(address)), {"Host": host_header}, sni)
        for address in checked
    ]


def _ip(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return None
    return address


__all__ = ["TLS_VERIFY", "CallbackTargetError", "Target", "is_public", "resolve", "resolve_targets"]
