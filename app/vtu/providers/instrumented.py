"""Provider call metrics: one wrapper around every adapter the registry hands out (app/vtu/registry.py), so
each call is timed and counted by provider, operation and result (app/core/metrics.py) whatever the
adapter. It adds no I/O: a counter and a histogram update per call."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from app.core.metrics import PROVIDER_CALLS, PROVIDER_LATENCY
from app.vtu.providers.base import (
    CustomerInfo,
    CustomerVerificationFailed,
    Provider,
    ProviderResult,
    PurchaseOrder,
    Variation,
)


def result_label(result: ProviderResult) -> str:
    """pay / requery: the mapped outcome, or `error` when no usable answer came back (no code)."""
    return "error" if result.code is None else str(result.outcome)


class InstrumentedProvider:
    """Delegates to `inner` (the Provider protocol and any other attribute) and records every call."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.slug = inner.slug

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def max_pay_seconds(self) -> float:
        return self.inner.max_pay_seconds

    def _record(self, operation: str, result: str, started: float) -> None:
        PROVIDER_LATENCY.labels(self.slug, operation).observe(time.perf_counter() - started)
        PROVIDER_CALLS.labels(self.slug, operation, result).inc()

    async def purchase(self, order: PurchaseOrder) -> ProviderResult:
        started = time.perf_counter()
        try:
            result = await self.inner.purchase(order)
        except BaseException:  # cancelled (the /pay cut-off) or a bug: no answer either way
            self._record("pay", "error", started)
            raise
        self._record("pay", result_label(result), started)
        return result

    async def requery(
        self, request_id: str, *, paid_at: datetime | None, needs_token: bool = False
    ) -> ProviderResult:
        started = time.perf_counter()
        try:
            result = await self.inner.requery(request_id, paid_at=paid_at, needs_token=needs_token)
        except BaseException:
            self._record("requery", "error", started)
            raise
        self._record("requery", result_label(result), started)
        return result

    async def list_variations(self, service_id: str) -> list[Variation]:
        started = time.perf_counter()
        try:
            found = await self.inner.list_variations(service_id)
        except BaseException:
            self._record("variations", "error", started)
            raise
        self._record("variations", "ok", started)
        return found

    async def verify_customer(self, service_id: str, customer_number: str, type: str | None) -> CustomerInfo:
        started = time.perf_counter()
        try:
            info = await self.inner.verify_customer(service_id, customer_number, type)
        except CustomerVerificationFailed:  # a wrong meter number is an answer, not an error
            self._record("verify", "rejected", started)
            raise
        except BaseException:
            self._record("verify", "error", started)
            raise
        self._record("verify", "ok", started)
        return info

    async def balance(self) -> int:
        started = time.perf_counter()
        try:
            value = await self.inner.balance()
        except BaseException:
            self._record("balance", "error", started)
            raise
        self._record("balance", "ok", started)
        return value

    async def aclose(self) -> None:
        await self.inner.aclose()


def instrumented(provider: Provider) -> Provider:
    if isinstance(provider, InstrumentedProvider):
        return provider
    return InstrumentedProvider(provider)


__all__ = ["InstrumentedProvider", "instrumented", "result_label"]
