"""MonnifyClient over real HTTP against the Monnify simulator (no database)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post

from app.config.settings import Settings
from app.payments.events import parse_monnify_event
from app.payments.monnify_client import (
    MonnifyAuthError,
    MonnifyClient,
    MonnifyRequestError,
    MonnifyUnavailable,
    renew_margin,
)
from app.payments.signatures import verify_monnify_signature
from tests.fakes.monnify import BANKS, MonnifySimulator
from tests.fakes.server import ThreadedServer, serve

TRANSACTIONS = "/api/v2/transactions/"
LOGIN = "/api/v1/auth/login"
RESERVED = "/api/v2/bank-transfer/reserved-accounts"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class SimSwitch:
    """One server per module; each test swaps in a fresh simulator (starting uvicorn costs ~0.25 s)."""

    def __init__(self) -> None:
        self.sim = MonnifySimulator()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.sim.app(scope, receive, send)


@pytest.fixture(scope="module")
def switch() -> Iterator[tuple[SimSwitch, ThreadedServer]]:
    app = SimSwitch()
    with serve(app) as running:
        yield app, running


@pytest.fixture
def sim(switch: tuple[SimSwitch, ThreadedServer]) -> MonnifySimulator:
    switch[0].sim = MonnifySimulator(expires_in=3600)
    return switch[0].sim


@pytest.fixture
def server(switch: tuple[SimSwitch, ThreadedServer], sim: MonnifySimulator) -> ThreadedServer:
    return switch[1]


@pytest.fixture
def settings(sim: MonnifySimulator, server: ThreadedServer) -> Settings:
    return replace(
        Settings(),
        monnify_base_url=server.url,
        monnify_api_key=sim.api_key,
        monnify_secret_key=sim.secret_key,
        monnify_contract_code=sim.contract_code,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[MonnifyClient]:
    async with MonnifyClient(settings, backoff_base=0.001, backoff_max=0.01, clock=clock) as monnify:
        yield monnify


async def reserve(client: MonnifyClient, reference: str = "usr_ada") -> None:
    await client.create_reserved_account(reference, "Ada Obi", "ada@example.com", "Ada Obi")


# ---- token ----------------------------------------------------------------------------------------


def test_renew_margin() -> None:
    assert renew_margin(3600) == 360  # 10 % of a long lifetime
    assert renew_margin(300) == 60  # at least a minute
    assert renew_margin(40) == 20  # but a short-lived token is still used for half its life


async def test_token_cached_then_renewed_before_expiry(
    client: MonnifyClient, sim: MonnifySimulator, clock: FakeClock
) -> None:
    await reserve(client)
    await client.get_reserved_account("usr_ada")
    await client.get_reserved_account("usr_ada")
    assert sim.login_count == 1

    clock.now += 3600 - 361  # just outside the 360 s renewal margin: still cached
    await client.get_reserved_account("usr_ada")
    assert sim.login_count == 1

    clock.now += 2  # inside the margin: renewed before Monnify would expire it
    await client.get_reserved_account("usr_ada")
    assert sim.login_count == 2
    await client.get_reserved_account("usr_ada")
    assert sim.login_count == 2


async def test_token_lifetime_comes_from_expires_in(settings: Settings, sim: MonnifySimulator) -> None:
    sim.expires_in = 1  # real clock, real expiry on the simulator's side
    async with MonnifyClient(settings) as monnify:
        assert await monnify.get_reserved_account("nobody") is None
        assert await monnify.get_reserved_account("nobody") is None
        assert sim.login_count == 1
        await asyncio.sleep(0.6)  # past half of the 1 s lifetime
        assert await monnify.get_reserved_account("nobody") is None
        assert sim.login_count == 2


async def test_one_login_for_50_concurrent_calls_with_expired_token(
    client: MonnifyClient, sim: MonnifySimulator, clock: FakeClock
) -> None:
    await reserve(client)
    assert sim.login_count == 1
    clock.now += 10_000  # the cached token is now expired
    sim.delay(0.2, LOGIN)  # keep the login in flight while the other 49 calls pile up
    results = await asyncio.gather(*(client.get_reserved_account("usr_ada") for _ in range(50)))
    assert sim.login_count == 2
    assert sim.calls(LOGIN) == 2
    assert all(r is not None and r.account_reference == "usr_ada" for r in results)


async def test_one_login_for_50_concurrent_calls_from_cold(
    client: MonnifyClient, sim: MonnifySimulator
) -> None:
    sim.delay(0.1, LOGIN)
    results = await asyncio.gather(*(client.get_reserved_account(f"ref-{i}") for i in range(50)))
    assert results == [None] * 50
    assert sim.login_count == 1


async def test_login_failure_is_shared_not_stampeded(client: MonnifyClient, sim: MonnifySimulator) -> None:
    sim.fail_next(3, 503, LOGIN)
    sim.delay(0.05, LOGIN)
    outcomes = await asyncio.gather(
        *(client.get_reserved_account("x") for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(o, MonnifyUnavailable) for o in outcomes), outcomes
    assert sim.calls(LOGIN) == 3  # one login with its retries, not 20 x 3
    assert await client.get_reserved_account("x") is None  # recovers afterwards


async def test_401_logs_in_again_once(client: MonnifyClient, sim: MonnifySimulator) -> None:
    await reserve(client)
    sim.expire_tokens()  # Monnify revoked it early: our cache still thinks it is valid
    account = await client.get_reserved_account("usr_ada")
    assert account is not None
    assert sim.login_count == 2


async def test_401_twice_is_an_auth_error(client: MonnifyClient, sim: MonnifySimulator) -> None:
    await reserve(client)
    sim.fail_next(2, 401, TRANSACTIONS)
    with pytest.raises(MonnifyAuthError):
        await client.get_transaction_status("MNFY|01|20240101000000|000001")
    assert sim.login_count == 2
    assert sim.calls(TRANSACTIONS) == 2


async def test_wrong_credentials(settings: Settings, sim: MonnifySimulator) -> None:
    async with MonnifyClient(replace(settings, monnify_secret_key="wrong")) as monnify:
        with pytest.raises(MonnifyAuthError):
            await monnify.get_reserved_account("usr_ada")
    assert sim.calls(LOGIN) == 1  # a 401 from login is not retried
    async with MonnifyClient(replace(settings, monnify_api_key="")) as monnify:
        with pytest.raises(MonnifyAuthError):
            await monnify.get_reserved_account("usr_ada")
    assert sim.calls(LOGIN) == 1  # not even sent without credentials


# ---- retries --------------------------------------------------------------------------------------


async def test_5xx_then_success_is_retried(client: MonnifyClient, sim: MonnifySimulator) -> None:
    await reserve(client)
    transfer = sim.record_transfer("usr_ada", 500_000)
    sim.fail_next(2, 502, TRANSACTIONS)
    status = await client.get_transaction_status(transfer.transaction_reference)
    assert status.payment_status == "PAID"
    assert sim.calls(TRANSACTIONS) == 3


@pytest.mark.parametrize("attempts", [1, 3, 5])
async def test_persistent_5xx_is_unavailable_after_n_attempts(
    settings: Settings, sim: MonnifySimulator, attempts: int
) -> None:
    async with MonnifyClient(settings, max_attempts=attempts, backoff_base=0.001) as monnify:
        await monnify.get_reserved_account("warm-up")  # log in first
        sim.fail_next(100, 500, RESERVED)
        with pytest.raises(MonnifyUnavailable):
            await monnify.get_reserved_account("usr_ada")
    assert sim.calls(RESERVED) == 1 + attempts


async def test_4xx_is_not_retried(client: MonnifyClient, sim: MonnifySimulator) -> None:
    with pytest.raises(MonnifyRequestError) as info:
        await client.get_transaction_status("MNFY|99|20240101000000|999999")
    assert info.value.status == 404 and info.value.response_code == "99"
    assert sim.calls(TRANSACTIONS) == 1

    sim.fail_next(1, 400, RESERVED)
    with pytest.raises(MonnifyRequestError) as info:
        await reserve(client)
    assert info.value.status == 400
    assert sim.calls(RESERVED) == 1


async def test_read_timeout_is_retried_then_unavailable(settings: Settings, sim: MonnifySimulator) -> None:
    timeout = httpx.Timeout(connect=5.0, read=0.2, write=5.0, pool=5.0)
    async with MonnifyClient(settings, timeout=timeout, backoff_base=0.001) as monnify:
        await monnify.get_reserved_account("warm-up")
        sim.delay(1.0, RESERVED)
        with pytest.raises(MonnifyUnavailable):
            await monnify.get_reserved_account("usr_ada")
    assert sim.calls(RESERVED) == 1 + 3


async def test_connection_errors_are_retried(settings: Settings) -> None:
    attempts = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("connection refused", request=request)

    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    transport = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    monnify = MonnifyClient(settings, client=transport, backoff_base=1.0, sleep=record_sleep)
    with pytest.raises(MonnifyUnavailable):
        await monnify.get_reserved_account("usr_ada")
    await transport.aclose()
    assert attempts == 3
    # Exponential back-off with jitter: 1 s then 2 s, each scaled into [50 %, 100 %].
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


# ---- reserved accounts ----------------------------------------------------------------------------


async def test_reserved_account_create_get_and_duplicate(
    client: MonnifyClient, sim: MonnifySimulator
) -> None:
    created = await client.create_reserved_account(
        "usr_ada", "Ada Obi", "ada@example.com", "Ada Obi", bvn="22212345678"
    )
    assert created.account_reference == "usr_ada" and created.status == "ACTIVE"
    assert created.reservation_reference
    assert {a.bank_code for a in created.accounts} == set(BANKS)
    assert all(len(a.account_number) == 10 and a.account_number.isdigit() for a in created.accounts)
    assert {a.bank_name for a in created.accounts} == set(BANKS.values())

    fetched = await client.get_reserved_account("usr_ada")
    assert fetched == created

    # A second create (retried job, lost response) returns the existing accounts, not an error.
    again = await client.create_reserved_account("usr_ada", "Ada Obi", "ada@example.com", "Ada Obi")
    assert again == created
    assert sim.calls(RESERVED) == 4  # POST, GET, POST (422 R42), GET
    assert len(sim.reserved) == 1

    assert await client.get_reserved_account("usr_missing") is None


async def test_reserved_account_preferred_banks(client: MonnifyClient, sim: MonnifySimulator) -> None:
    account = await client.create_reserved_account(
        "usr_bola", "Bola", "bola@example.com", "Bola", preferred_banks=["50515", "232"]
    )
    assert [a.bank_code for a in account.accounts] == ["50515", "232"]


async def test_reserved_account_validation_error_is_not_mistaken_for_duplicate(
    client: MonnifyClient,
) -> None:
    with pytest.raises(MonnifyRequestError) as info:
        await client.create_reserved_account("usr_c", "C", "c@example.com", "C", bvn="123")
    assert info.value.status == 400 and "BVN" in info.value.message


# ---- transaction status ---------------------------------------------------------------------------


async def test_transaction_status_with_pipes_in_reference(
    client: MonnifyClient, sim: MonnifySimulator
) -> None:
    await reserve(client)
    transfer = sim.record_transfer("usr_ada", 3_000_050)
    reference = transfer.transaction_reference
    assert reference.count("|") == 3

    status = await client.get_transaction_status(reference)
    assert status.transaction_reference == reference
    assert status.payment_reference == reference
    assert status.is_paid and status.payment_status == "PAID"
    assert status.amount_paid_kobo == 3_000_050
    assert status.settlement_amount_kobo == 3_000_050 - transfer.fee_kobo
    assert status.product_reference == "usr_ada"
    assert status.paid_on is not None and status.paid_on.tzinfo is not None
    assert status.raw["currency"] == "NGN"
    encoded = reference.replace("|", "%7C")
    assert ("GET", f"{TRANSACTIONS}{encoded}") in sim.requests

    sim.set_transaction(reference, payment_status="PENDING", amount_paid_kobo=100)
    pending = await client.get_transaction_status(reference)
    assert not pending.is_paid and pending.payment_status == "PENDING"
    assert pending.amount_paid_kobo == 100


# ---- logging --------------------------------------------------------------------------------------


async def test_secrets_and_tokens_never_logged(
    client: MonnifyClient, sim: MonnifySimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await reserve(client)
    sim.fail_next(1, 500, RESERVED)
    await client.get_reserved_account("usr_ada")
    sim.expire_tokens()
    await client.get_reserved_account("usr_ada")
    with pytest.raises(MonnifyRequestError):
        await client.get_transaction_status("MNFY|00|20240101000000|000000")

    basic = base64.b64encode(f"{sim.api_key}:{sim.secret_key}".encode()).decode()
    assert len(sim.issued_tokens) == 2
    assert "monnify" in caplog.text  # the client did log
    for secret in (sim.secret_key, basic, *sim.issued_tokens):
        assert secret not in caplog.text
        assert secret not in repr(client)


# ---- simulator webhooks (what the webhook endpoint will receive) --------------------------------


async def test_simulated_transfer_webhook_is_signed_and_parses(
    client: MonnifyClient, sim: MonnifySimulator
) -> None:
    received: list[tuple[bytes, str | None]] = []

    @post("/payments/webhooks/monnify/", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> dict[str, str]:
        received.append((await request.body(), request.headers.get("monnify-signature")))
        return {}

    account = await client.create_reserved_account("usr_ada", "Ada Obi", "ada@example.com", "Ada Obi")
    with serve(Litestar([hook], openapi_config=None, logging_config=None)) as receiver:
        url = f"{receiver.url}/payments/webhooks/monnify/"
        sent = await sim.send_transfer(url, "usr_ada", 3_000_000)
        by_number = await sim.send_transfer(
            url, None, 1_000_050, account_number=account.accounts[1].account_number, sources="object"
        )
    assert sent.response.status_code == 200 and by_number.response.status_code == 200
    assert [body for body, _ in received] == [sent.body, by_number.body]

    for body, header in received:
        assert verify_monnify_signature(body, header, sim.secret_key)
        assert not verify_monnify_signature(body, header, "another-secret")
    first = parse_monnify_event(json.loads(received[0][0]), received[0][0])
    assert first.transaction_reference == sent.transaction.transaction_reference
    assert re.fullmatch(r"MNFY\|\d{2}\|\d{14}\|\d{6}", first.dedupe_reference)
    assert first.product_reference == "usr_ada" and first.product_type == "RESERVED_ACCOUNT"
    assert first.amount_paid_kobo == 3_000_000
    assert first.settlement_amount_kobo == 3_000_000 - 30_000  # 1 % simulator fee
    assert isinstance(json.loads(received[0][0])["eventData"]["settlementAmount"], str)
    assert first.payment_status == "PAID" and first.payment_method == "ACCOUNT_TRANSFER"
    assert len(first.payment_sources) == 1

    second = parse_monnify_event(json.loads(received[1][0]))
    assert second.amount_paid_kobo == 1_000_050 and second.payment_sources == ()
    destination = second.raw["eventData"]["destinationAccountInformation"]
    assert destination["accountNumber"] == account.accounts[1].account_number

    # The webhook's transaction is what the status endpoint reports.
    status = await client.get_transaction_status(sent.transaction.transaction_reference)
    assert status.amount_paid_kobo == first.amount_paid_kobo
    assert status.settlement_amount_kobo == first.settlement_amount_kobo

    body, signature = sim.build_webhook("usr_ada", 500)
    assert verify_monnify_signature(body, signature, sim.secret_key)
    assert parse_monnify_event(json.loads(body)).amount_paid_kobo == 500
