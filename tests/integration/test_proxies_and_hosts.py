"""ALLOWED_HOSTS (host names, whatever the port) and TRUSTED_PROXIES (whose X-Forwarded-* are believed), on
the real app: in process with a chosen peer address, and through real `vtu run` processes (uvicorn's own
proxy-header handling must not believe anything behind our back)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.fakes.server import free_port
from tests.helpers import csrf_token, running
from tests.integration.api_fixtures import new_reseller
from tests.integration.test_api_processes import _stop

ROOT = Path(__file__).resolve().parents[2]
PROXY = "10.1.2.3"  # the TLS proxy in front of the app
CLIENT = "203.0.113.7"  # a customer on the internet
OTHER = "198.51.100.20"  # another customer


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def edge_app(settings: Any) -> AsyncIterator[Any]:
    from app.asgi import create_app

    configured = dataclasses.replace(
        settings,
        allowed_hosts=("127.0.0.1", ".example.com", "topup.ng", "::1"),
        trusted_proxies=("10.0.0.0/8",),
        login_max_failures=1,  # the per-IP login limit is 4x this
        api_rate_limit_per_minute=0,
    )
    async with running(create_app(configured)) as application:
        yield application


def peer(app: Any, address: str, host: str = "topup.ng") -> httpx.AsyncClient:
    """A client whose TCP peer address (as the app sees it) is `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}", timeout=30)


# --- ALLOWED_HOSTS -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),  # the port does not matter
        ("127.0.0.1", True),
        ("topup.ng:443", True),
        ("TopUp.NG.", True),  # case and a trailing dot
        ("example.com", True),  # a leading-dot pattern: the domain itself ...
        ("shop.example.com:8443", True),  # ... and its subdomains
        ("a.b.example.com", True),
        ("badexample.com", False),
        ("example.com.evil.ng", False),
        ("evil.example:8000", False),
        ("[::1]:8000", True),
        ("[::1]", True),
        ("[0:0::1]:80", True),  # another spelling of ::1
        ("[::2]:8000", False),
        ("::1", False),  # an IPv6 literal in a Host header is bracketed
        ("topup.ng:8000:1", False),
        ("topup.ng:port", False),
        ("topup.ng@evil.ng", False),
        ("", False),
    ],
)
async def test_allowed_hosts_match_host_names_whatever_the_port(edge_app, clean_db, host, allowed):
    async with peer(edge_app, CLIENT) as client:
        response = await client.get("/login", headers={"host": host})
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/plain")
        assert "host name" in response.text and "Traceback" not in response.text


async def test_probes_answer_whatever_the_host_and_forwarded_host_is_not_believed(edge_app, clean_db):
    async with peer(edge_app, PROXY) as client:
        assert (await client.get("/health", headers={"host": "10.9.9.9:8000"})).status_code == 200
        refused = await client.get("/login", headers={"host": "evil.ng", "x-forwarded-host": "topup.ng"})
        assert refused.status_code == 400


# --- TRUSTED_PROXIES ---------------------------------------------------------------------------------


async def _wallet(app: Any, address: str, key: str, forwarded_for: str | None = None, **extra: str) -> int:
    headers: dict[str, Any] = {"authorization": f"Bearer {key}", **extra}
    if forwarded_for is not None:
        headers["x-forwarded-for"] = forwarded_for.encode("latin-1")  # raw bytes, as a client may send
    async with peer(app, address) as client:
        response = await client.get("/api/v1/wallet", headers=headers)
    assert response.status_code in (200, 403), response.text
    return response.status_code


async def test_forwarded_for_decides_the_api_key_ip_allowlist_only_behind_a_trusted_proxy(
    edge_app, clean_db, sessionmaker
):
    reseller = await new_reseller(sessionmaker, allowed_ips=CLIENT)
    key = reseller.key
    # Straight from the customer: the peer is the client.
    assert await _wallet(edge_app, CLIENT, key) == 200
    # An untrusted peer's X-Forwarded-For is ignored entirely: it cannot claim the allowed address ...
    assert await _wallet(edge_app, OTHER, key, CLIENT) == 403
    # ... nor hide its own.
    assert await _wallet(edge_app, CLIENT, key, OTHER) == 200
    # Through the trusted proxy: the rightmost untrusted hop is the client.
    assert await _wallet(edge_app, PROXY, key, CLIENT) == 200
    assert await _wallet(edge_app, PROXY, key, f"{CLIENT}, 10.0.0.9") == 200  # a second, inner proxy
    assert await _wallet(edge_app, PROXY, key, OTHER) == 403
    # Spoofed leftmost entries (written by the client, appended to by the proxy) do not help.
    assert await _wallet(edge_app, PROXY, key, f"{CLIENT}, {OTHER}") == 403
    assert await _wallet(edge_app, PROXY, key, None, **{"x-forwarded-for": CLIENT}) == 200
    # Garbage is ignored, never a 500: the client stays the proxy (not in the allowlist).
    for garbage in ("", "unknown", "999.1.1.1", "\x7f\x80", ", ,", "[::1", "1.2.3.4:x:y", "fe80::1%eth0"):
        assert await _wallet(edge_app, PROXY, key, garbage) == 403, garbage
    # ... but garbage to the left of the real client does not hide it.
    assert await _wallet(edge_app, PROXY, key, f"unknown, {CLIENT}") == 200
    # Repeated headers are one list, in order.
    async with peer(edge_app, PROXY) as client:
        response = await client.get(
            "/api/v1/wallet",
            headers=[
                ("authorization", f"Bearer {key}"),
                ("x-forwarded-for", OTHER),
                ("x-forwarded-for", CLIENT),
            ],
        )
    assert response.status_code == 200


async def _failed_login(client: httpx.AsyncClient, email: str, forwarded_for: str) -> int:
    token = await csrf_token(client)
    response = await client.post(
        "/login",
        data={"email": email, "password": "wrong-password-1", "_csrf_token": token},
        headers={"x-forwarded-for": forwarded_for},
    )
    return response.status_code


async def test_login_throttle_keys_on_the_real_client_behind_the_proxy(edge_app, clean_db):
    """Per-IP throttling behind a TLS proxy: one customer's failures do not lock out everyone else."""
    async with peer(edge_app, PROXY) as client:
        statuses = [await _failed_login(client, f"spray{i}@example.ng", CLIENT) for i in range(5)]
        assert 429 not in statuses[:4], statuses
        assert statuses[4] == 429  # the sprayer's own address is throttled ...
        assert await _failed_login(client, "someone@example.ng", OTHER) != 429  # ... not the next customer


async def test_forwarded_proto_is_believed_from_the_proxy_only(edge_app, clean_db):
    seen: list[str] = []

    async def probe(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["scheme"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    from app.core.proxies import ProxyHeadersMiddleware

    wrapped = ProxyHeadersMiddleware(probe, ["10.0.0.0/8"])
    for address, proto, expected in [
        (PROXY, "https", "https"),
        (PROXY, "HTTPS ", "https"),
        (PROXY, "ftp", "http"),
        (PROXY, "https, http", "http"),
        (CLIENT, "https", "http"),
    ]:
        transport = httpx.ASGITransport(app=wrapped, client=(address, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://topup.ng") as client:
            await client.get("/", headers={"x-forwarded-proto": proto})
        assert seen[-1] == expected, (address, proto)


# --- through real `vtu run` processes --------------------------------------------------------------


def _start(port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {**os.environ, "LOG_LEVEL": "WARNING", "API_RATE_LIMIT_PER_MINUTE": "0", **env}
    full.pop("FORWARDED_ALLOW_IPS", None)  # uvicorn's default (trust 127.0.0.1) unless `vtu` turns it off
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def web_processes(service_urls, tmp_path_factory) -> Iterator[dict[str, str]]:
    """Two servers on 127.0.0.1: one trusting 127.0.0.1 as its proxy, one trusting nobody."""
    logs = tmp_path_factory.mktemp("edge-web")
    ports = {"trusting": free_port(), "plain": free_port()}
    procs = {
        "trusting": _start(
            ports["trusting"], logs / "trusting.log", TRUSTED_PROXIES="127.0.0.1", ALLOWED_HOSTS="127.0.0.1"
        ),
        "plain": _start(ports["plain"], logs / "plain.log", TRUSTED_PROXIES="", ALLOWED_HOSTS="127.0.0.1"),
    }
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        deadline = time.monotonic() + 90
        for name, url in urls.items():
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if procs[name].poll() is not None or time.monotonic() > deadline:
                    text = "\n".join(p.read_text()[-2000:] for p in logs.iterdir())
                    raise RuntimeError(f"vtu run did not start:\n{text}")
                time.sleep(0.2)
        yield urls
    finally:
        for proc in procs.values():
            _stop(proc)


async def test_real_servers_believe_forwarded_for_only_from_trusted_proxies(
    web_processes, clean_db, sessionmaker
):
    reseller = await new_reseller(sessionmaker, allowed_ips=CLIENT)
    auth = {"authorization": f"Bearer {reseller.key}"}
    async with httpx.AsyncClient(timeout=30) as client:
        trusting, plain = web_processes["trusting"], web_processes["plain"]
        # Host 127.0.0.1:<port> is accepted with ALLOWED_HOSTS=127.0.0.1; another name is refused.
        assert (await client.get(f"{plain}/login")).status_code == 200
        refused = await client.get(f"{plain}/login", headers={"host": "evil.example:8000"})
        assert refused.status_code == 400 and "host name" in refused.text
        # Nobody trusted: the header is ignored (uvicorn's own default would have believed 127.0.0.1).
        spoofed = await client.get(f"{plain}/api/v1/wallet", headers={**auth, "x-forwarded-for": CLIENT})
        assert spoofed.status_code == 403, spoofed.text
        # 127.0.0.1 is the trusted proxy: its rightmost untrusted hop is the client.
        through = await client.get(f"{trusting}/api/v1/wallet", headers={**auth, "x-forwarded-for": CLIENT})
        assert through.status_code == 200, through.text
        prepended = f"{CLIENT}, {OTHER}"  # the client wrote CLIENT; the proxy appended OTHER
        spoof = await client.get(f"{trusting}/api/v1/wallet", headers={**auth, "x-forwarded-for": prepended})
        assert spoof.status_code == 403
        garbage = await client.get(f"{trusting}/api/v1/wallet", headers={**auth, "x-forwarded-for": "a, b"})
        assert garbage.status_code == 403  # the peer (127.0.0.1) is not in the allowlist
