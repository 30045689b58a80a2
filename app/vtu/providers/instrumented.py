"""Provider call metrics: one wrapper around every adapter the registry hands out (app/vtu/registry.py), so
each call is timed and counted by provider, operation and result (app/core/metrics.py) whatever the
adapter: a counter and a histogram update per call. With a `recorder` (app/vtu/provider_health.py
`ProviderHealth`), every call's health is also reported (one Redis script per call): an error is a call
that got no usable answer (`provider_health.result_failed` / `call_failed`), anything else a success. A
recorder that fails (Redis down) is logged and never fails the provider call."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from app.core.metrics import PROVIDER_CALLS, PROVIDER_LATENCY
from app.vtu.providers.base import (
    CustomerInfo,
    CustomerVerificationFailed,
    Provider,
    ProviderResult,
    PurchaseOrder,
    Variation,
)

if TYPE_CHECKING:
    from app.vtu.provider_health import CallRecorder

log = structlog.get_logger("app.vtu.providers.instrumented")
_background: set[asyncio.Task[None]] = set()  # health reports of cancelled calls, kept until they finish


def result_label(result: ProviderResult) -> str:
    """pay / requery: the mapped outcome, or `error` when no usable answer came back (no code)."""
    return "error" if result.code is None else str(result.outcome)


class InstrumentedProvider:
    """Delegates to `inner` (the Provider protocol and any other attribute) and records every call."""

    def __init__(self, inner: Provider, recorder: CallRecorder | None = None) -> None:
        self.inner = inner
        self.slug = inner.slug
        self.recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def max_pay_seconds(self) -> float:
        return self.inner.max_pay_seconds

    def _record(self, operation: str, result: str, started: float) -> None:
        PROVIDER_LATENCY.labels(self.slug, operation).observe(time.perf_counter() - started)
        PROVIDER_CALLS.labels(self.slug, operation, result).inc()

    async def _health(self, operation: str, ok: bool, reason: str = "") -> None:
        if self.recorder is None:
            return
        try:
            await self.recorder.record(self.slug, ok, f"{operation}: {reason}" if reason else operation)
        except Exception as exc:  # health is advice: never fail (or hide) the provider's own answer
            log.warning("provider_health_record_failed", provider=self.slug, error=str(exc))

    async def _health_of(self, operation: str, exc: BaseException) -> None:
        from app.vtu.provider_health import call_failed

        failed = call_failed(exc)
        if failed is None or self.recorder is None:
            return
        reason = f"{type(exc).__name__}: {exc}"[:200]
        if isinstance(exc, Exception):
            await self._health(operation, not failed, reason)
            return
        # Cancelled (the /pay cut-off, a caller's timeout): report from a task of its own, not this one.
        task = asyncio.get_running_loop().create_task(self._health(operation, not failed, reason))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _low_float(self, order: PurchaseOrder, result: ProviderResult) -> None:
        from app.vtu.provider_health import low_float

        if self.recorder is None or not low_float(self.slug, result):
            return
        try:
            await self.recorder.record_low_float(self.slug, order.amount_kobo)
        except Exception as exc:
            log.warning("provider_health_record_failed", provider=self.slug, error=str(exc))

    async def _health_result(self, operation: str, result: ProviderResult) -> None:
        from app.vtu.provider_health import result_failed

        failed = result_failed(result)
        await self._health(operation, not failed, result.message[:200] if failed else "")

    async def purchase(self, order: PurchaseOrder) -> ProviderResult:
        started = time.perf_counter()
        try:
            result = await self.inner.purchase(order)
        except BaseException as exc:  # cancelled (the /pay cut-off) or a bug: no answer either way
            self._record("pay", "error", started)
            await self._health_of("pay", exc)
            raise
        self._record("pay", result_label(result), started)
        await self._health_result("pay", result)
        await self._low_float(order, result)
        return result

    async def requery(
        self, request_id: str, *, paid_at: datetime | None, needs_token: bool = False
    ) -> ProviderResult:
        started = time.perf_counter()
        try:
            result = await self.inner.requery(request_id, paid_at=paid_at, needs_token=needs_token)
        except BaseException as exc:
            self._record("requery", "error", started)
            await self._health_of("requery", exc)
            raise
        self._record("requery", result_label(result), started)
        await self._health_result("requery", result)
        return result

    async def list_variations(self, service_id: str) -> list[Variation]:
        started = time.perf_counter()
        try:
            found = await self.inner.list_variations(service_id)
        except BaseException as exc:
            self._record("variations", "error", started)
            await self._health_of("variations", exc)
            raise
        self._record("variations", "ok", started)
        await self._health("variations", True)
        return found

    async def verify_customer(self, service_id: str, customer_number: str, type: str | None) -> CustomerInfo:
        started = time.perf_counter()
        try:
            info = await self.inner.verify_customer(service_id, customer_number, type)
        except CustomerVerificationFailed:  # a wrong meter number is an answer, not an error
            self._record("verify", "rejected", started)
            await self._health("verify", True)
            raise
        except BaseException as exc:
            self._record("verify", "error", started)
            await self._health_of("verify", exc)
            raise
        self._record("verify", "ok", started)
        await self._health("verify", True)
        return info

    async def balance(self) -> int:
        started = time.perf_counter()
        try:
            value = await self.inner.balance()
        except BaseException as exc:
            self._record("balance", "error", started)
            await self._health_of("balance", exc)
            raise
        self._record("balance", "ok", started)
        await self._health("balance", True)
        return value

    async def aclose(self) -> None:
        await self.inner.aclose()


def instrumented(provider: Provider, recorder: CallRecorder | None = None) -> Provider:
    if isinstance(provider, InstrumentedProvider):
        if recorder is not None:
            provider.recorder = recorder
        return provider
    return InstrumentedProvider(provider, recorder)


__all__ = ["InstrumentedProvider", "instrumented", "result_label"]
