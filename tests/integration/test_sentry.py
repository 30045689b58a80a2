"""Sentry with SENTRY_DSN (app/core/sentry.py): the app started with a DSN pointing at a local envelope
collector initialises the SDK with it, and what reaches the collector has no secrets. Run in a subprocess:
the SDK patches Litestar and logging process-wide, which the other tests' apps must not inherit."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.fakes.server import serve


class Collector:
    """A Sentry ingest stand-in: keeps every envelope POSTed to /api/<project>/envelope/."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        if headers.get(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        if scope["path"].endswith("/envelope/"):
            self.envelopes.append(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    def events(self) -> list[dict[str, Any]]:
        found = []
        for envelope in self.envelopes:
            lines = envelope.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found


SCRIPT = textwrap.dedent(
    """
    import os, sentry_sdk, structlog
    from app.asgi import create_app

    app = create_app()
    client = sentry_sdk.get_client()
    assert client.is_active(), "Sentry not started"
    assert str(client.dsn) == os.environ["SENTRY_DSN"], client.dsn
    assert client.options["environment"] == "test"
    assert client.options["traces_sample_rate"] == 0.25
    # An ERROR log line becomes an event (the logging integration), with a request's worth of secrets.
    structlog.get_logger("app.test").error(
        "payment_page_failed", pin="4321", authorization="Bearer sk_live_abcdef0123", phone="08011111111"
    )
    sentry_sdk.capture_event({
        "message": "handler failed",
        "request": {
            "headers": {"Authorization": "Bearer sk_live_abcdef0123", "Cookie": "vtu_session=s3ss10n"},
            "data": {"password": "hunter2-password", "pin": "4321", "phone": "08011111111"},
        },
    })
    sentry_sdk.flush(10)
    print("SENTRY-OK")
    """
)


@pytest.mark.usefixtures("service_urls")
def test_the_app_reports_to_sentry_without_secrets() -> None:
    collector = Collector()
    with serve(collector) as server:
        dsn = f"http://publickey@127.0.0.1:{server.port}/1"
        env = {**os.environ, "SENTRY_DSN": dsn, "SENTRY_TRACES_SAMPLE_RATE": "0.25", "APP_ENV": "test"}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SENTRY-OK" in done.stdout
    events = collector.events()
    raw = b"\n".join(collector.envelopes).decode()
    assert any("payment_page_failed" in json.dumps(e) for e in events), raw[:2000]
    assert any(e.get("message") == "handler failed" for e in events), raw[:2000]
    for secret in ("4321", "sk_live_abcdef0123", "s3ss10n", "hunter2-password"):
        at = raw.find(secret)
        assert at < 0, raw[max(0, at - 300) : at + 100]
    assert "08011111111" in raw  # the rest of the event is kept
    assert all(e.get("environment") == "test" for e in events)


def test_no_dsn_no_sentry(settings: Any) -> None:
    from app.core.sentry import init_sentry

    assert init_sentry(settings, component="web") is False
