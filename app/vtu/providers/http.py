"""What the HTTP providers (VTpass, ClubKonnect) share: their timeouts and client, the one-send-per-order
memory, and the timed request that turns a transport error into `TransportFailed` with the request's log.

Why a process remembers what it sent: an order's request id is sent to the provider once; a second send
of the same id could be a second delivery, so a later look at it must be a requery (docs/architecture.md,
"Purchase lifecycle")."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Self

import httpx

from app.vtu.providers.base import DuplicatePayAttempt

REMEMBERED_PAY_IDS = 50_000  # request ids kept per process (a bounded memory, oldest forgotten first)


def longest_wait(timeout: httpx.Timeout) -> float:
    """The longest one request can take under `timeout`: waiting for a pooled connection, connecting,
    writing and reading, each up to its own limit. The one place a pay's longest duration is computed."""
    phases = (timeout.pool, timeout.connect, timeout.write, timeout.read)
    if any(phase is None for phase in phases):
        raise ValueError("every /pay timeout must be finite")
    return float(sum(phase or 0.0 for phase in phases))


class TransportFailed(Exception):
    """No HTTP answer came back; `log` is the redacted request, `reason` a short cause for staff."""

    def __init__(self, log: dict[str, Any], exc: httpx.HTTPError) -> None:
        super().__init__(str(exc))
        self.log = log
        self.reason = "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__


class HttpProvider:
    """Base of the providers spoken to over HTTP (subclasses set `slug` and call `_init_http`)."""

    slug: str
    max_pay_seconds: float

    def _init_http(
        self,
        http_client: httpx.AsyncClient | None,
        *,
        connect_timeout: float,
        read_timeout: float,
        pay_read_timeout: float,
    ) -> None:
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._pay_timeout = httpx.Timeout(
            connect=connect_timeout, read=pay_read_timeout, write=pay_read_timeout, pool=pay_read_timeout
        )
        self.max_pay_seconds = longest_wait(self._pay_timeout)
        self._owns_client = http_client is None
        # No transport retries: a retried pay could be a second order.
        self._client = http_client or httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(retries=0))
        self._paid_ids: OrderedDict[str, None] = OrderedDict()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _refuse_if_sent(self, request_id: str) -> None:
        """First thing an order does: this process already sent that id, so only a requery may follow."""
        if request_id in self._paid_ids:
            raise DuplicatePayAttempt(f"{request_id} was already sent to {self.slug}; requery it instead")

    def _mark_sent(self, request_id: str) -> None:
        """Just before the order goes out (a failed attempt is still an attempt)."""
        self._paid_ids[request_id] = None
        if len(self._paid_ids) > REMEMBERED_PAY_IDS:
            self._paid_ids.popitem(last=False)

    @staticmethod
    async def _timed(
        log: dict[str, Any], send: Callable[[], Awaitable[httpx.Response]]
    ) -> tuple[dict[str, Any], httpx.Response]:
        """Run `send`, adding `elapsed_ms` to the request's log; a transport error becomes TransportFailed."""
        started = time.monotonic()
        try:
            response = await send()
        except httpx.HTTPError as exc:
            log["elapsed_ms"] = round((time.monotonic() - started) * 1000)
            raise TransportFailed(log, exc) from exc
        log["elapsed_ms"] = round((time.monotonic() - started) * 1000)
        return log, response
