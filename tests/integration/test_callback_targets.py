"""Reseller callbacks go only where they may, checked at send time: the host is resolved once by the job,
non-public addresses are refused in prod (recorded as a failed attempt, nothing sent), and the POST goes to
the checked address with the original Host and TLS name (no second lookup: DNS rebinding). The job runs on
the real database against receivers served over real HTTP/TLS; only the resolver (our module's DNS lookup,
the provider boundary) is replaced, so test names resolve to 127.0.0.1."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn

from app.api import callback_targets, callbacks
from app.api.callback_targets import CallbackTargetError, is_public, resolve_targets
from app.api.callbacks import CallbackFailed, deliver_purchase_callback, verify_signature
from tests.fakes.server import free_port, serve
from tests.integration import api_fixtures
from tests.integration.api_fixtures import DELIVERED, airtime, new_reseller
from tests.integration.test_api_callbacks import Receiver, _delivery

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http

NAME = "callbacks.vtu-test"  # not in any DNS: only our resolver knows it


class RedirectingReceiver(Receiver):
    """Answers the first POST with a redirect to itself, to see whether it is followed."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/moved":
            self.calls.append(({"path": "/moved"}, b""))
            await send(
                {"type": "http.response.start", "status": 307, "headers": [(b"location", b"/elsewhere")]}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await super().__call__(scope, receive, send)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[RedirectingReceiver, int]]:
    app = RedirectingReceiver()
    with serve(app) as server:
        yield app, server.port


@pytest.fixture
def resolver(monkeypatch) -> list[tuple[str, int]]:
    """Our module's DNS lookup: NAME -> 127.0.0.1; records every lookup."""
    lookups: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        if host == NAME:
            return ["127.0.0.1"]
        raise OSError(f"unknown host {host}")

    monkeypatch.setattr(callback_targets, "resolve", resolve)
    return lookups


async def _finished_purchase(http: Any, sessionmaker: Any, url: str) -> tuple[Any, dict[str, Any]]:
    reseller = await new_reseller(sessionmaker, callback_url=url)
    made = await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=reseller.buy_headers())
    assert made.status_code == 201 and made.json()["status"] == "successful"
    return reseller, made.json()


def _ctx(sessionmaker: Any, settings: Any, attempt: int = 1) -> dict[str, Any]:
    job = SimpleNamespace(attempts=attempt, retries=callbacks.CALLBACK_ATTEMPTS)
    return {"sessionmaker": sessionmaker, "settings": settings, "job": job}


async def test_a_name_resolving_to_loopback_is_refused_at_send_time_in_prod(
    http, sessionmaker, settings, receiver, resolver
):
    recv, port = receiver
    recv.calls.clear()
    reseller, made = await _finished_purchase(http, sessionmaker, f"http://{NAME}:{port}/hook")
    prod = dataclasses.replace(settings, app_env="prod")
    with pytest.raises(CallbackFailed, match="not a public address"):
        await deliver_purchase_callback(
            _ctx(sessionmaker, prod), purchase_id=made["id"], final_status="successful"
        )
    assert recv.calls == [] and resolver == [(NAME, port)]
    row = await _delivery(sessionmaker, made["id"], "successful")
    assert row.attempts == 1 and row.delivered_at is None and row.gave_up_at is None  # SAQ retries it
    assert row.last_error == f"callback host {NAME} resolves to 127.0.0.1, not a public address: refused"

    # The same decision outside prod is the setting's: off -> refused too ...
    strict = dataclasses.replace(settings, callback_allow_private=False)
    with pytest.raises(CallbackFailed):
        await deliver_purchase_callback(
            _ctx(sessionmaker, strict, 2), purchase_id=made["id"], final_status="successful"
        )
    assert recv.calls == []
    # ... on (the dev/test default) -> delivered to the address that was checked, with the original Host.
    assert settings.callbacks_reach_private
    result = await deliver_purchase_callback(
        _ctx(sessionmaker, settings, 3), purchase_id=made["id"], final_status="successful"
    )
    assert result == "delivered" and len(resolver) == 3  # one lookup per attempt, ours
    headers, body = recv.calls[0]
    assert headers["host"] == f"{NAME}:{port}"
    assert verify_signature(body, headers["x-vtu-signature"], reseller.callback_secret)
    row = await _delivery(sessionmaker, made["id"], "successful")
    assert row.attempts == 3 and row.delivered_at is not None and row.last_error is None


async def test_a_literal_private_address_and_an_unknown_host_are_failed_attempts(
    http, sessionmaker, settings, receiver, resolver
):
    recv, port = receiver
    recv.calls.clear()
    prod = dataclasses.replace(settings, app_env="prod")
    _, made = await _finished_purchase(http, sessionmaker, f"http://127.0.0.1:{port}/hook")
    with pytest.raises(CallbackFailed):
        await deliver_purchase_callback(
            _ctx(sessionmaker, prod), purchase_id=made["id"], final_status="successful"
        )
    assert resolver == []  # a literal address needs no lookup
    row = await _delivery(sessionmaker, made["id"], "successful")
    assert row.last_error == "callback host 127.0.0.1 resolves to 127.0.0.1, not a public address: refused"

    _, unknown = await _finished_purchase(http, sessionmaker, f"http://nowhere.vtu-test:{port}/hook")
    with pytest.raises(CallbackFailed):
        await deliver_purchase_callback(
            _ctx(sessionmaker, settings), purchase_id=unknown["id"], final_status="successful"
        )
    row = await _delivery(sessionmaker, unknown["id"], "successful")
    assert (
        row.attempts == 1
        and row.last_error == "callback host nowhere.vtu-test could not be resolved (OSError)"
    )
    assert recv.calls == []


async def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(
    http, sessionmaker, settings, receiver, resolver
):
    recv, port = receiver
    recv.calls.clear()
    _, made = await _finished_purchase(http, sessionmaker, f"http://{NAME}:{port}/moved")
    with pytest.raises(CallbackFailed, match="answered 307"):
        await deliver_purchase_callback(
            _ctx(sessionmaker, settings), purchase_id=made["id"], final_status="successful"
        )
    assert recv.calls == [({"path": "/moved"}, b"")]  # /elsewhere never called
    row = await _delivery(sessionmaker, made["id"], "successful")
    assert row.last_error == "callback URL answered 307" and row.delivered_at is None


# --- TLS: connect to the checked address, verify the certificate against the host name -------------


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for NAME only (not for 127.0.0.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vtu test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture(scope="module")
def tls_receiver(tmp_path_factory) -> Iterator[tuple[Receiver, int, Path]]:
    ca, cert, key = _certificates(tmp_path_factory.mktemp("tls"))
    app, port = Receiver(), free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        ssl_certfile=str(cert), ssl_keyfile=str(key),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "TLS receiver did not start"
        time.sleep(0.01)
    try:
        yield app, port, ca
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def test_tls_keeps_the_host_name_while_connecting_to_the_checked_address(
    http, sessionmaker, settings, tls_receiver, resolver, monkeypatch
):
    recv, port, ca = tls_receiver
    recv.calls.clear()
    monkeypatch.setattr(callback_targets, "TLS_VERIFY", ssl.create_default_context(cafile=str(ca)))
    _, made = await _finished_purchase(http, sessionmaker, f"https://{NAME}:{port}/secure")
    result = await deliver_purchase_callback(
        _ctx(sessionmaker, settings), purchase_id=made["id"], final_status="successful"
    )
    # The certificate is for NAME only: verified against NAME (the TLS server name), while the connection
    # went to 127.0.0.1 without another lookup.
    assert result == "delivered" and resolver == [(NAME, port)]
    assert recv.calls[0][0]["host"] == f"{NAME}:{port}"

    # The same receiver addressed by its IP: the certificate does not match, the attempt fails.
    _, other = await _finished_purchase(http, sessionmaker, f"https://127.0.0.1:{port}/secure")
    with pytest.raises(CallbackFailed, match="ConnectError"):
        await deliver_purchase_callback(
            _ctx(sessionmaker, settings), purchase_id=other["id"], final_status="successful"
        )
    assert len(recv.calls) == 1


# --- the address rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # CGNAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),  # multicast
        ("239.255.255.250", False),
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("192.0.2.1", False),  # documentation
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fec0::1", False),  # site-local
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("::127.0.0.1", False),  # IPv4-compatible (deprecated)
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
    ],
)
def test_public_addresses(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


async def test_targets_are_pinned_to_the_checked_address(monkeypatch):
    answers = {
        "shop.example.ng": ["8.8.8.8", "2606:4700:4700::1111"],
        "mixed.example.ng": ["8.8.8.8", "10.0.0.7"],
    }

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    monkeypatch.setattr(callback_targets, "resolve", resolve)
    targets = await resolve_targets("https://Shop.Example.ng/cb?x=1", allow_private=False, resolve_seconds=5)
    assert [str(t.url) for t in targets] == [
        "https://8.8.8.8/cb?x=1",
        "https://[2606:4700:4700::1111]/cb?x=1",
    ]
    assert all(t.headers == {"Host": "shop.example.ng"} for t in targets)
    assert all(t.extensions == {"sni_hostname": "shop.example.ng"} for t in targets)
    with pytest.raises(CallbackTargetError, match=r"resolves to 10\.0\.0\.7, not a public address"):
        await resolve_targets("https://mixed.example.ng:8443/cb", allow_private=False, resolve_seconds=5)
    literal = await resolve_targets("https://8.8.8.8/cb", allow_private=False, resolve_seconds=5)
    assert literal[0].extensions == {} and literal[0].headers == {"Host": "8.8.8.8"}
    for bad in ("ftp://shop.example.ng/", "https:///x", "not a url"):
        with pytest.raises(CallbackTargetError):
            await resolve_targets(bad, allow_private=True, resolve_seconds=5)
