"""Prometheus metrics and `GET /metrics` (docs/architecture.md, "Observability").

Two kinds of metric:
- Counters and histograms counted where things happen (HTTP requests, purchases opened and settled,
  provider calls, webhooks). They live in the process that counted them. With PROMETHEUS_MULTIPROC_DIR set
  (the same directory for every web and SAQ worker process on a host, emptied before they start),
  prometheus-client keeps them in files there and `/metrics` adds every process's values up, so a requery
  settled by a worker shows next to the purchases the web opened. Without it, `/metrics` shows this process
  only (one web process, workers unseen).
- Gauges read at scrape time from Redis and PostgreSQL (queue depth, worker heartbeat age, the last ledger
  reconcile, pending purchases): every process answers the same. They are cached for CACHE_SECONDS per
  process, so scrapes cost at most one round of cheap reads (two Redis reads, three queue counts and one
  indexed count) every few seconds and requests none.

Labels are bounded: the route TEMPLATE (`/purchases/{purchase_id:uuid}`, never the raw path), the method,
the status class (`2xx`), provider slugs, operation names, catalogue service ids and fixed result words.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from litestar import Request, Response, get
from litestar.datastructures import ResponseHeader
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from app.core.events import PURCHASE_FINISHED, PurchaseSettled

if TYPE_CHECKING:
    from collections.abc import Iterator

    from litestar import Litestar

log = structlog.get_logger("app.core.metrics")

METRICS_PATH = "/metrics"
CACHE_SECONDS = 5.0

HTTP_REQUESTS = Counter(
    "vtu_http_requests_total",
    "HTTP requests answered, by route template, method and status class",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "vtu_http_request_duration_seconds",
    "Time to answer an HTTP request (until the last body byte was handed to the server)",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PURCHASES_OPENED = Counter(
    "vtu_purchases_opened_total",
    "Purchases opened (wallet debited, status pending), by provider and service",
    ["provider", "service"],
)
PURCHASES_SETTLED = Counter(
    "vtu_purchases_settled_total",
    "Purchase status changes applied (successful, failed, reversed), by provider and service",
    ["status", "provider", "service"],
)
PROVIDER_CALLS = Counter(
    "vtu_provider_calls_total",
    "Calls to a VTU provider by operation (pay, requery, verify, balance, variations) and result: "
    "delivered/failed/pending/reversed for pay and requery, ok/rejected otherwise, error when no usable "
    "answer came back (network trouble, timeout, 5xx, odd body, exception)",
    ["provider", "operation", "result"],
)
PROVIDER_LATENCY = Histogram(
    "vtu_provider_call_duration_seconds",
    "Time a VTU provider call took, by provider and operation",
    ["provider", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
PROVIDER_BREAKER = Counter(
    "vtu_provider_breaker_transitions_total",
    "Provider circuit breaker changes (app/vtu/provider_health.py), by provider and the state entered: "
    "opened (too many consecutive errors), reopened (its half-open probe failed), closed (it answered)",
    ["provider", "state"],
)
WEBHOOKS = Counter(
    "vtu_webhooks_total",
    "Webhooks and callbacks received, by source (monnify, vtpass, clubkonnect) and result",
    ["source", "result"],
)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


# -- HTTP -------------------------------------------------------------------------------------------


class HttpMetricsMiddleware:
    """Counts and times every routed HTTP request by its route template. Scrapes are not counted."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escaped every handler: the server answers 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            labels = (scope.get("path_template") or "unmatched", scope["method"], status_class(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_LATENCY.labels(*labels).observe(time.perf_counter() - started)


# -- domain counters ---------------------------------------------------------------------------------


def purchase_opened(provider: str, service: str) -> None:
    PURCHASES_OPENED.labels(provider or "unknown", service).inc()


@PURCHASE_FINISHED.connect
async def count_settled(_context: Any, event: PurchaseSettled) -> None:
    """After commit, once per applied transition (app/vtu/settlement.py `apply`, the one place)."""
    PURCHASES_SETTLED.labels(event.status, event.provider_slug or "unknown", event.service_id).inc()


def webhook(source: str, result: str) -> None:
    WEBHOOKS.labels(source, result).inc()


# -- scrape-time gauges -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveValues:
    queue: dict[str, int]  # queued, active, scheduled
    heartbeat_age: float  # seconds; +Inf when no worker ever beat
    reconcile_ok: int | None  # None: never ran
    reconcile_at: float  # unix time; 0 when never ran
    reconcile_drift: int
    pending: int
    needs_attention: int


_live: tuple[float, LiveValues] | None = None


async def live_values(app: Litestar) -> LiveValues:
    """Read from Redis and PostgreSQL at most once per CACHE_SECONDS in this process."""
    global _live
    if _live is not None and time.monotonic() - _live[0] < CACHE_SECONDS:
        return _live[1]
    values = await _read_live(app)
    _live = (time.monotonic(), values)
    return values


def forget_live_values() -> None:
    """Drop the cached scrape-time values (tests that change them between two scrapes)."""
    global _live
    _live = None


_PURCHASE_COUNTS = (
    "SELECT (SELECT count(*) FROM purchases WHERE status = 'pending') AS pending,"
    " (SELECT count(*) FROM purchases WHERE needs_attention) AS needs_attention"
)


async def _read_live(app: Litestar) -> LiveValues:
    from app.core.db import driver_connection
    from app.ledger.reconcile import last_result
    from workers.heartbeat import last_beat
    from workers.settings import QUEUE_NAME

    redis = app.state.redis
    queue = app.state.saq.get_queues().get(QUEUE_NAME)
    queued = await queue.count("queued")
    active = await queue.count("active")
    incomplete = await queue.count("incomplete")
    now = datetime.datetime.now(datetime.UTC)
    beat = await last_beat(redis)
    reconcile = await last_result(redis)
    # Both counts use partial indexes (ix_purchases_pending..., ix_purchases_needs_attention).
    async with driver_connection(app.state.alchemy.get_engine()) as conn:
        row = await conn.fetchrow(_PURCHASE_COUNTS)
    return LiveValues(
        queue={"queued": queued, "active": active, "scheduled": max(0, incomplete - queued - active)},
        heartbeat_age=max(0.0, beat.age(now).total_seconds()) if beat else float("inf"),
        reconcile_ok=None if reconcile is None else int(reconcile.ok),
        reconcile_at=reconcile.at.timestamp() if reconcile else 0.0,
        reconcile_drift=reconcile.drift if reconcile else 0,
        pending=int(row["pending"]),
        needs_attention=int(row["needs_attention"]),
    )


class _LiveCollector:
    def __init__(self, values: LiveValues) -> None:
        self.values = values

    def collect(self) -> Iterator[GaugeMetricFamily]:
        v = self.values
        jobs = GaugeMetricFamily(
            "vtu_saq_jobs", "SAQ jobs in the queue by state (from Redis)", labels=["state"]
        )
        for state, count in v.queue.items():
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily(
            "vtu_worker_heartbeat_age_seconds",
            "Seconds since a SAQ worker last wrote its heartbeat (+Inf: never); alert above 180",
            value=v.heartbeat_age,
        )
        if v.reconcile_ok is not None:
            yield GaugeMetricFamily(
                "vtu_ledger_reconcile_ok",
                "Last ledger reconcile: 1 clean, 0 drift found",
                value=v.reconcile_ok,
            )
        yield GaugeMetricFamily(
            "vtu_ledger_reconcile_timestamp_seconds",
            "When the last ledger reconcile ran (unix time; 0: never)",
            value=v.reconcile_at,
        )
        yield GaugeMetricFamily(
            "vtu_ledger_reconcile_drift",
            "Drift lines the last ledger reconcile found",
            value=v.reconcile_drift,
        )
        yield GaugeMetricFamily("vtu_purchases_pending", "Purchases pending now", value=v.pending)
        yield GaugeMetricFamily(
            "vtu_purchases_needs_attention", "Purchases flagged for staff now", value=v.needs_attention
        )


def counted_metrics() -> bytes:
    """Counters and histograms: every process's (PROMETHEUS_MULTIPROC_DIR) or this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def render(values: LiveValues | None) -> bytes:
    text = counted_metrics()
    if values is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_LiveCollector(values))  # type: ignore[arg-type]
        text += generate_latest(registry)
    return text


# -- GET /metrics -------------------------------------------------------------------------------------


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def token_allowed(header: str | None, expected: str) -> bool:
    """`Authorization: Bearer <METRICS_TOKEN>`, compared in constant time (over digests, so not even the
    length leaks). No token configured: nothing is allowed."""
    if not expected or not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(_digest(given.strip()), _digest(expected))


@get(
    METRICS_PATH,
    include_in_schema=False,
    exclude_from_auth=True,
    exclude_from_csrf=True,
    cache_control=None,
)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    expected = request.app.state.settings.metrics_token
    if not expected:  # closed unless configured: never open by accident
        return Response(b"Not Found", status_code=404, media_type="text/plain")
    if not token_allowed(request.headers.get("authorization"), expected):
        return Response(
            b"Unauthorized",
            status_code=401,
            media_type="text/plain",
            headers=[ResponseHeader(name="WWW-Authenticate", value='Bearer realm="metrics"')],
        )
    try:
        values: LiveValues | None = await live_values(request.app)
    except Exception:  # Redis or PostgreSQL down: the counters still tell what happened
        log.exception("metrics_live_values_failed")
        values = None
    return Response(
        render(values),
        status_code=200,
        media_type=CONTENT_TYPE_LATEST,
        headers=[ResponseHeader(name="Cache-Control", value="no-store")],
    )


__all__ = [
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "METRICS_PATH",
    "PROVIDER_CALLS",
    "PROVIDER_LATENCY",
    "PURCHASES_OPENED",
    "PURCHASES_SETTLED",
    "WEBHOOKS",
    "HttpMetricsMiddleware",
    "LiveValues",
    "forget_live_values",
    "live_values",
    "metrics_endpoint",
    "purchase_opened",
    "render",
    "status_class",
    "token_allowed",
    "webhook",
]
