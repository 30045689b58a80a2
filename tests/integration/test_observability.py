"""Observability over real HTTP (the app served by uvicorn on 127.0.0.1, real PostgreSQL and Redis):
`GET /metrics` and its token, the counters a purchase / webhook / provider call moves, the scrape-time
gauges read from Redis and PostgreSQL, `X-Request-ID`, and the log context of a purchase."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import structlog
from prometheus_client.parser import text_string_to_metric_families

from app.payments.signatures import compute_monnify_signature
from tests.fakes.server import serve
from tests.integration.api_fixtures import ALL_TIERS, ApiServer, airtime, new_reseller

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "metrics-token-" + "0123456789abcdef" * 2
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


@pytest.fixture(scope="module")
def served(settings: Any) -> Iterator[ApiServer]:
    """One served app with METRICS_TOKEN set, API keys for every tier and no API limits."""
    from app.asgi import create_app

    configured = dataclasses.replace(
        settings,
        metrics_token=TOKEN,
        api_key_tiers=ALL_TIERS,
        api_rate_limit_per_minute=0,
        api_daily_spend_limit_kobo=0,
        vtpass_callback_token="callback-token-0123456789",
    )
    app = create_app(configured)
    with serve(app) as server:
        yield ApiServer(server, app, configured)


@pytest_asyncio.fixture(loop_scope="session")
async def http(served: ApiServer, clean_db: None) -> AsyncIterator[httpx.AsyncClient]:
    from app.core.metrics import forget_live_values

    forget_live_values()
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def plain(served: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    """The served app without a clean database (requests that write nothing)."""
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        yield client


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    from app.core.metrics import forget_live_values

    forget_live_values()
    response = await http.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# -- /metrics and its token ---------------------------------------------------------------------------


async def test_metrics_need_the_token_compared_exactly(http: httpx.AsyncClient) -> None:
    assert (await http.get("/metrics")).status_code == 401
    refused = await http.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in refused.text and "vtu_" not in refused.text
    for header in (
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN.upper()}",
        TOKEN,
        "Bearer",
    ):
        assert (await http.get("/metrics", headers={"Authorization": header})).status_code == 401, header
    ok = await http.get("/metrics", headers=AUTH)
    assert ok.status_code == 200
    assert "vtu_http_requests_total" in ok.text
    # no browser session, no CSRF cookie, never cached
    assert "set-cookie" not in ok.headers
    assert ok.headers["cache-control"] == "no-store"
    schema = (await http.get("/api/docs/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


async def test_metrics_are_closed_when_no_token_is_configured(
    served: ApiServer, http: httpx.AsyncClient
) -> None:
    with served.limits(metrics_token=""):
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer x"}, AUTH):
            assert (await http.get("/metrics", headers=headers)).status_code == 404


async def test_a_purchase_moves_the_counters_by_route_template(
    sessionmaker: Any, http: httpx.AsyncClient
) -> None:
    reseller = await new_reseller(sessionmaker, fund=100_000)
    before = await scrape(http)
    bought = await http.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())
    assert bought.status_code == 201, bought.text
    assert bought.json()["status"] == "successful"
    shown = await http.get(f"/api/v1/purchases/{bought.json()['id']}", headers=reseller.headers)
    assert shown.status_code == 200
    after = await scrape(http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("vtu_purchases_opened_total", provider="stub", service="mtn") == 1
    assert delta("vtu_purchases_settled_total", status="successful", provider="stub", service="mtn") == 1
    assert delta("vtu_provider_calls_total", provider="stub", operation="pay", result="delivered") == 1
    assert delta("vtu_provider_call_duration_seconds_count", provider="stub", operation="pay") == 1
    post = {"route": "/api/v1/purchases", "method": "POST", "status": "2xx"}
    assert delta("vtu_http_requests_total", **post) == 1
    assert delta("vtu_http_request_duration_seconds_count", **post) == 1
    # the template, never the raw path (bounded cardinality)
    routes = {dict(labels).get("route") for name, labels in after if name == "vtu_http_requests_total"}
    assert bought.json()["id"] not in " ".join(r or "" for r in routes)
    templates = [r for r in routes if r and r.startswith("/api/v1/purchases/")]
    assert templates and all("{" in r for r in templates), templates
    # scrapes are not counted
    assert not any(r == "/metrics" for r in routes)


async def test_a_failed_purchase_is_counted_as_failed(sessionmaker: Any, http: httpx.AsyncClient) -> None:
    reseller = await new_reseller(sessionmaker, fund=100_000)
    before = await scrape(http)
    bought = await http.post(
        "/api/v1/purchases", json=airtime(phone="08031234567"), headers=reseller.buy_headers()
    )
    assert bought.status_code == 201 and bought.json()["status"] == "failed", bought.text
    after = await scrape(http)
    labels = {"status": "failed", "provider": "stub", "service": "mtn"}
    assert (
        value(after, "vtu_purchases_settled_total", **labels)
        - value(before, "vtu_purchases_settled_total", **labels)
        == 1
    )
    calls = {"provider": "stub", "operation": "pay", "result": "failed"}
    assert (
        value(after, "vtu_provider_calls_total", **calls) - value(before, "vtu_provider_calls_total", **calls)
        == 1
    )


async def test_webhook_results_are_counted(served: ApiServer, http: httpx.AsyncClient) -> None:
    before = await scrape(http)
    body = json.dumps(
        {
            "eventType": "SUCCESSFUL_DISBURSEMENT",
            "eventData": {"transactionReference": f"MNFY|{uuid.uuid4()}"},
        }
    ).encode()
    signature = compute_monnify_signature(body, served.settings.monnify_secret_key)
    url = "/payments/webhooks/monnify/"
    assert (await http.post(url, content=body, headers={"monnify-signature": "0" * 128})).status_code == 401
    for _ in range(2):  # the second delivery is a duplicate
        answer = await http.post(url, content=body, headers={"monnify-signature": signature})
        assert answer.status_code == 200, answer.text
    assert (await http.post("/vtu/webhooks/vtpass/wrong-token", json={})).status_code == 404
    ignored = await http.post(
        f"/vtu/webhooks/vtpass/{served.settings.vtpass_callback_token}", json={"type": "x"}
    )
    assert ignored.status_code == 200
    after = await scrape(http)

    def delta(source: str, result: str) -> float:
        return value(after, "vtu_webhooks_total", source=source, result=result) - value(
            before, "vtu_webhooks_total", source=source, result=result
        )

    assert delta("monnify", "bad_signature") == 1
    assert delta("monnify", "ignored") == 1
    assert delta("monnify", "duplicate") == 1
    assert delta("vtpass", "bad_token") == 1
    assert delta("vtpass", "ignored") == 1


async def test_scrape_time_gauges_read_redis_and_the_database(
    served: ApiServer, redis: Any, http: httpx.AsyncClient
) -> None:
    from app.ledger.reconcile import save_result
    from workers.heartbeat import beat
    from workers.settings import QUEUE_NAME

    samples = await scrape(http)
    assert value(samples, "vtu_worker_heartbeat_age_seconds") == float("inf")  # no worker ever beat
    assert ("vtu_ledger_reconcile_ok", ()) not in samples  # never ran: no claim either way
    assert value(samples, "vtu_ledger_reconcile_timestamp_seconds") == 0

    now = datetime.datetime.now(datetime.UTC)
    await beat(redis, now=now - datetime.timedelta(seconds=400))
    ran = now - datetime.timedelta(minutes=30)
    await save_result(redis, {"ok": False, "drift": 3}, at=ran)
    from saq.queue.redis import RedisQueue

    queue = RedisQueue(redis, name=QUEUE_NAME)  # the test loop's own client (the app runs on another loop)
    job = await queue.enqueue("ping", key=f"metrics-test-{uuid.uuid4()}", timeout=5)
    assert job is not None
    samples = await scrape(http)
    assert 399 <= value(samples, "vtu_worker_heartbeat_age_seconds") < 460
    assert value(samples, "vtu_ledger_reconcile_ok") == 0
    assert value(samples, "vtu_ledger_reconcile_drift") == 3
    assert value(samples, "vtu_ledger_reconcile_timestamp_seconds") == pytest.approx(ran.timestamp(), abs=1)
    assert value(samples, "vtu_saq_jobs", state="queued") >= 1
    assert value(samples, "vtu_purchases_pending") == 0

    await save_result(redis, {"ok": True, "drift": 0})
    assert value(await scrape(http), "vtu_ledger_reconcile_ok") == 1


# -- request ids -------------------------------------------------------------------------------------


async def test_every_answer_carries_a_request_id(plain: httpx.AsyncClient) -> None:
    seen = set()
    for path in ("/", "/health", "/login", "/no-such-page", "/api/v1/wallet", "/static/nope.css"):
        response = await plain.get(path)
        rid = response.headers.get("x-request-id")
        assert rid is not None and REQUEST_ID.fullmatch(rid), (path, rid)
        assert len(response.headers.get_list("x-request-id")) == 1
        seen.add(rid)
    assert len(seen) == 6  # a new one each time


async def test_a_clean_client_request_id_is_kept(plain: httpx.AsyncClient) -> None:
    for given in ("abcdefgh", "req-2026.12.01_0001", "A" * 64, str(uuid.uuid4())):
        response = await plain.get("/health", headers={"X-Request-ID": given})
        assert response.headers["x-request-id"] == given


@pytest.mark.parametrize(
    "given",
    [
        "short",  # under 8
        "A" * 65,
        "x" * 1000,
        "abc def ghi",
        "abcdefgh<script>",
        "abcdefgh;rm -rf",
        "abcdefgh%0d%0aSet-Cookie:x=1",
        "abcdefgh\tX",
    ],
)
async def test_an_unsafe_client_request_id_is_replaced(plain: httpx.AsyncClient, given: str) -> None:
    response = await plain.get("/health", headers={"X-Request-ID": given})
    rid = response.headers["x-request-id"]
    assert rid != given and re.fullmatch(r"[0-9a-f]{32}", rid)


async def test_unicode_and_crlf_in_a_request_id_never_reach_the_answer(served: ApiServer) -> None:
    """Raw bytes on the socket: UTF-8 (obs-text), and a CR LF that tries to add a header."""
    host, port = "127.0.0.1", served.server.port

    def exchange(header_value: bytes) -> bytes:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(
                b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: "
                + header_value
                + b"\r\nConnection: close\r\n\r\n"
            )
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    answer = exchange("ïñjéctïøn-ïd-ñø".encode())
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head.startswith("http/1.1 200")
    rid = re.search(r"\r\nx-request-id: ([^\r\n]*)", head)
    assert rid and re.fullmatch(r"[0-9a-f]{32}", rid.group(1)), head

    # A CR LF inside a value ends the header there: the "injected" line is a header of the REQUEST, and the
    # id (what came before it) is too short to keep; nothing of it is echoed as a response header.
    answer = exchange(b"abc\r\nSet-Cookie: pwned=1")
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert "pwned" not in head
    if head.startswith("http/1.1 200"):
        rid = re.search(r"\r\nx-request-id: ([^\r\n]*)", head)
        assert rid and re.fullmatch(r"[0-9a-f]{32}", rid.group(1)), head


# -- the log context of a purchase --------------------------------------------------------------------


class _Lines(logging.Handler):
    """Every log record rendered as JSON through the app's own structlog chain (contextvars merged)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(default=str),
                ],
                foreign_pre_chain=[structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level],
            )
        )
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)


async def test_log_lines_of_a_purchase_name_the_request_the_user_and_the_purchase(
    sessionmaker: Any, http: httpx.AsyncClient, log_lines: list[dict[str, Any]]
) -> None:
    reseller = await new_reseller(sessionmaker, fund=100_000)
    rid = f"buy-{uuid.uuid4().hex[:20]}"
    bought = await http.post(
        "/api/v1/purchases", json=airtime(), headers={**reseller.buy_headers(), "X-Request-ID": rid}
    )
    assert bought.status_code == 201, bought.text
    assert bought.headers["x-request-id"] == rid
    reference = bought.json()["reference"]
    ours = [line for line in log_lines if line.get("request_id") == rid]
    assert ours, "no log line carried the request id"
    assert all(line.get("user_id") == str(reseller.user_id) for line in ours), ours
    about = [line for line in ours if line.get("purchase_reference") == reference]
    events = {line["event"] for line in about}
    assert "purchase_created" in events, ours
    assert all(line.get("purchase_id") == bought.json()["id"] for line in about)
    # the next request (same connection) starts with a clean context: no user or purchase of the last one
    refused = await http.post(
        "/payments/webhooks/monnify/", content=b"{}", headers={"X-Request-ID": "next-request-0001"}
    )
    assert refused.status_code == 401
    nxt = [line for line in log_lines if line.get("request_id") == "next-request-0001"]
    assert [line["event"] for line in nxt] == ["monnify_webhook_bad_signature"]
    assert "user_id" not in nxt[0] and "purchase_reference" not in nxt[0] and "purchase_id" not in nxt[0]
