"""VTPassProvider over real HTTP against the VTpass simulator (no database)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from app.config.settings import Settings
from app.vtu.providers import (
    CustomerVerificationFailed,
    DuplicatePayAttempt,
    Outcome,
    ProviderError,
    ProviderResult,
    PurchaseOrder,
    VTPassProvider,
    callback_request_id,
    map_vtpass_body,
    new_request_id,
)
from tests.fakes.server import ThreadedServer, serve
from tests.fakes.vtpass import VTPassSimulator

LONG_AGO = datetime.now(UTC) - timedelta(minutes=5)


@pytest.fixture(scope="module")
def sim_server() -> Iterator[tuple[VTPassSimulator, ThreadedServer]]:
    sim = VTPassSimulator()
    with serve(sim) as server:
        yield sim, server


@pytest.fixture
def sim(sim_server: tuple[VTPassSimulator, ThreadedServer]) -> VTPassSimulator:
    sim_server[0].reset()
    return sim_server[0]


def vt_settings(
    sim_server: tuple[VTPassSimulator, ThreadedServer], mode: str = "keys", **over: str
) -> Settings:
    sim, server = sim_server
    creds = (
        {
            "vtpass_api_key": sim.api_key,
            "vtpass_public_key": sim.public_key,
            "vtpass_secret_key": sim.secret_key,
        }
        if mode == "keys"
        else {"vtpass_username": "sandbox@vtu.test", "vtpass_password": "sim-password-5d2e"}
    )
    return dataclasses.replace(
        Settings(), vtu_provider="vtpass", vtpass_base_url=server.url, **(creds | over)
    )


@pytest_asyncio.fixture(loop_scope="session")
async def provider(sim_server, sim) -> AsyncIterator[VTPassProvider]:
    async with VTPassProvider(vt_settings(sim_server), pay_read_timeout=1.0) as adapter:
        yield adapter


def airtime(phone: str = "08011111111") -> PurchaseOrder:
    return PurchaseOrder(new_request_id(), "mtn", 10_000, phone)


def assert_no_secrets(result: ProviderResult, sim: VTPassSimulator) -> None:
    logged = json.dumps([result.request_log, result.response_log])
    for secret in (sim.api_key, sim.public_key, sim.secret_key, "sim-password-5d2e", sim.basic.split()[1]):
        assert secret not in logged


async def test_delivered_sends_pay_once_with_key_headers(provider, sim) -> None:
    sale = airtime()
    result = await provider.purchase(sale)
    assert (result.outcome, result.code, result.amount_kobo) == (Outcome.DELIVERED, "000", 10_000)
    assert result.provider_reference and result.response_log["http_status"] == 200
    (sent,) = sim.pay_requests(sale.request_id)
    assert sent.body == {
        "request_id": sale.request_id,
        "serviceID": "mtn",
        "amount": 100,
        "phone": "08011111111",
    }
    assert sent.headers["api-key"] == sim.api_key and sent.headers["secret-key"] == sim.secret_key
    assert "public-key" not in sent.headers
    assert result.request_log["headers"]["secret-key"] == "[redacted]"
    assert_no_secrets(result, sim)


@pytest.mark.parametrize("code", ["016", "010", "013", "018", "027", "087", "091"])
async def test_definite_failure_codes(provider, sim, code) -> None:
    sim.configure(pay_code=code)
    result = await provider.purchase(airtime())
    assert (result.outcome, result.code) == (Outcome.FAILED, code)
    assert (result.staff_alert is not None) == (code in {"018", "027", "087"})


@pytest.mark.parametrize("final", ["delivered", "failed"])
async def test_pending_then_final_on_requery(provider, sim, final) -> None:
    sim.configure(pending_answers=2, pending_code="099", outcome=final)
    sale = airtime()
    first = await provider.purchase(sale)
    assert (first.outcome, first.code) == (Outcome.PENDING, "099")
    assert (await provider.requery(sale.request_id, paid_at=LONG_AGO)).outcome is Outcome.PENDING
    assert (await provider.requery(sale.request_id, paid_at=LONG_AGO)).outcome is Outcome(final)
    assert len(sim.pay_requests(sale.request_id)) == 1


@pytest.mark.parametrize(
    ("phone", "first", "after_requery"),
    [
        ("08030000000", Outcome.FAILED, Outcome.FAILED),
        ("201000000000", Outcome.PENDING, Outcome.DELIVERED),
        ("300000000000", Outcome.PENDING, Outcome.DELIVERED),  # timeout, but the order went through
        ("400000000000", Outcome.PENDING, Outcome.FAILED),  # 503, never reached VTpass: 015 after 30 s
        ("500000000000", Outcome.PENDING, Outcome.PENDING),  # unexpected body, still unknown
    ],
)
async def test_sandbox_numbers(provider, sim, phone, first, after_requery) -> None:
    sale = airtime(phone)
    assert (await provider.purchase(sale)).outcome is first
    assert (await provider.requery(sale.request_id, paid_at=LONG_AGO)).outcome is after_requery
    assert len(sim.pay_requests(sale.request_id)) == 1


@pytest.mark.parametrize("knobs", [{"http_status": 502}, {"http_status": 500}, {"malformed": True}])
async def test_5xx_and_malformed_stay_pending_then_requery_resolves(provider, sim, knobs) -> None:
    sim.configure(**knobs)
    sale = airtime()
    result = await provider.purchase(sale)
    assert (result.outcome, result.code) == (Outcome.PENDING, None)
    assert isinstance(result.response_log["body"], str)
    assert (await provider.requery(sale.request_id, paid_at=LONG_AGO)).outcome is Outcome.DELIVERED
    assert len(sim.pay_requests(sale.request_id)) == 1


async def test_timeout_is_pending_and_never_retried(provider, sim) -> None:
    sim.configure(hang=10.0)
    sale = airtime()
    result = await provider.purchase(sale)
    assert result.outcome is Outcome.PENDING and "timed out" in result.message and result.response_log is None
    assert len(sim.pay_requests(sale.request_id)) == 1
    assert (await provider.requery(sale.request_id, paid_at=LONG_AGO)).outcome is Outcome.DELIVERED
    with pytest.raises(DuplicatePayAttempt):
        await provider.purchase(sale)
    assert len(sim.pay_requests(sale.request_id)) == 1


async def test_connection_refused_is_pending(sim_server) -> None:
    settings = dataclasses.replace(vt_settings(sim_server), vtpass_base_url="http://127.0.0.1:9")
    async with VTPassProvider(settings) as adapter:
        result = await adapter.purchase(airtime())
    assert result.outcome is Outcome.PENDING and result.code is None


async def test_duplicate_request_id_014_is_pending(provider, sim_server, sim) -> None:
    sale = airtime()
    assert (await provider.purchase(sale)).outcome is Outcome.DELIVERED
    async with VTPassProvider(vt_settings(sim_server)) as other_process:
        again = await other_process.purchase(sale)
    assert (again.outcome, again.code) == (Outcome.PENDING, "014")
    sim.configure(pay_code="014")
    assert (await provider.purchase(airtime())).code == "014"


async def test_bad_request_id_date_085_fails_with_alert(provider, sim) -> None:
    utc_stamped = datetime.now(UTC).strftime("%Y%m%d%H%M") + "abcdefabcdef"  # UTC, not Lagos time
    result = await provider.purchase(PurchaseOrder(utc_stamped, "mtn", 10_000, "08011111111"))
    assert (result.outcome, result.code) == (Outcome.FAILED, "085")
    assert "Lagos" in (result.staff_alert or "")


async def test_015_on_requery_before_and_after_30_seconds(provider, sim) -> None:
    unknown = new_request_id()
    early = await provider.requery(unknown, paid_at=datetime.now(UTC) - timedelta(seconds=5))
    assert (early.outcome, early.code) == (Outcome.PENDING, "015")
    late = await provider.requery(unknown, paid_at=datetime.now(UTC) - timedelta(seconds=31))
    assert (late.outcome, late.code) == (Outcome.FAILED, "015")


async def test_delivered_then_reversed(provider, sim) -> None:
    sim.configure(reverse=True)
    sale = airtime()
    assert (await provider.purchase(sale)).outcome is Outcome.DELIVERED
    reversal = await provider.requery(sale.request_id, paid_at=LONG_AGO)
    assert (reversal.outcome, reversal.code) == (Outcome.REVERSED, "040")


async def test_reversal_callback_is_requery_shaped(provider, sim) -> None:
    sale = airtime()
    await provider.purchase(sale)
    sim.reverse(sale.request_id)
    seen: list[dict] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"response": "success"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        answer = await sim.send_callback(
            "http://app.test/vtu/webhooks/vtpass/t0k3n", sale.request_id, client=client
        )
    assert answer.json() == {"response": "success"} and seen[0]["type"] == "transaction-update"
    assert callback_request_id(seen[0]) == sale.request_id
    assert map_vtpass_body(seen[0]["data"]).outcome is Outcome.REVERSED
    assert (await provider.requery(sale.request_id, paid_at=LONG_AGO)).outcome is Outcome.REVERSED


@pytest.mark.parametrize("layout", ["purchased_code", "token", "main_token"])
async def test_electricity_token_layouts(provider, sim, layout) -> None:
    sim.token_layout = layout
    sale = PurchaseOrder(
        new_request_id(), "ikeja-electric", 500_050, "08030000000", "1111111111111", "prepaid"
    )
    result = await provider.purchase(sale)
    assert result.outcome is Outcome.DELIVERED and result.amount_kobo == 500_050
    assert result.token and len(result.token.replace("-", "")) == 20 and result.units
    assert sim.pay_requests(sale.request_id)[0].body["amount"] == "5000.50"


async def test_payload_shapes_per_service(provider, sim) -> None:
    rid = new_request_id
    orders = {
        "data": PurchaseOrder(rid(), "mtn-data", 35_000, "08011111111", variation_code="mtn-1gb-1day"),
        "renew": PurchaseOrder(
            rid(), "dstv", 1_900_000, "08011111111", "1212121212", subscription_type="renew"
        ),
        "change": PurchaseOrder(rid(), "gotv", 580_000, "08011111111", "1212121212", "gotv-jolli", "change"),
        "startimes": PurchaseOrder(
            rid(), "startimes", 370_000, "08011111111", "1212121212", "basic", "change"
        ),
    }
    for sale in orders.values():
        assert (await provider.purchase(sale)).outcome is Outcome.DELIVERED
    sent = {name: sim.pay_requests(sale.request_id)[0].body for name, sale in orders.items()}
    assert sent["data"]["billersCode"] == "08011111111" and "amount" not in sent["data"]
    assert sent["renew"]["subscription_type"] == "renew" and sent["renew"]["amount"] == 19_000
    assert sent["change"]["subscription_type"] == "change" and "amount" not in sent["change"]
    assert "subscription_type" not in sent["startimes"] and sent["startimes"]["variation_code"] == "basic"


async def test_basic_auth_mode(sim_server, sim) -> None:
    async with VTPassProvider(vt_settings(sim_server, mode="basic")) as adapter:
        sale = airtime()
        result = await adapter.purchase(sale)
        assert result.outcome is Outcome.DELIVERED
        assert await adapter.balance() == 25_000_050
        assert_no_secrets(result, sim)
    assert sim.pay_requests(sale.request_id)[0].headers["authorization"] == sim.basic
    async with VTPassProvider(vt_settings(sim_server, mode="basic", vtpass_password="wrong")) as bad:
        denied = await bad.purchase(airtime())
    assert (denied.outcome, denied.code) == (Outcome.FAILED, "087") and denied.staff_alert


async def test_bad_keys_087(sim_server, sim) -> None:
    async with VTPassProvider(vt_settings(sim_server, vtpass_secret_key="SK_wrong")) as bad:
        result = await bad.purchase(airtime())
        assert (result.outcome, result.code) == (Outcome.FAILED, "087")
        with pytest.raises(ProviderError) as info:
            await bad.verify_customer("ikeja-electric", "1111111111111", "prepaid")
    assert info.value.code == "087" and info.value.staff_alert


@pytest.mark.parametrize("spelling", ["variations", "varations"])
async def test_variations_both_spellings_with_get_headers(provider, sim, spelling) -> None:
    sim.variations_key = spelling
    plans = await provider.list_variations("mtn-data")
    assert (
        plans[1].variation_code == "mtn-1gb-1day" and plans[1].amount_kobo == 35_000 and plans[1].fixed_price
    )
    request = sim.requests[-1]
    assert request.query == {"serviceID": "mtn-data"} and request.headers["public-key"] == sim.public_key
    assert "secret-key" not in request.headers
    with pytest.raises(ProviderError):
        await provider.list_variations("no-such-service")


async def test_verify_customer_and_balance(provider, sim) -> None:
    meter = await provider.verify_customer("ikeja-electric", "1111111111111", "prepaid")
    assert meter.name == "TESTMETER1" and meter.minimum_amount_kobo == 100_000 and meter.can_vend
    assert sim.requests[-1].body == {
        "billersCode": "1111111111111",
        "serviceID": "ikeja-electric",
        "type": "prepaid",
    }
    card = await provider.verify_customer("dstv", "1212121212", None)
    assert card.renewal_amount_kobo == 1_900_000
    with pytest.raises(CustomerVerificationFailed):
        await provider.verify_customer("ikeja-electric", "1234567890123", "prepaid")
    assert await provider.balance() == 25_000_050


async def test_non_money_calls_raise_on_5xx(provider, sim) -> None:
    sim.configure(http_status=503, on=("balance",))
    with pytest.raises(ProviderError, match="503"):
        await provider.balance()


@pytest.mark.parametrize("mode", ["keys", "basic"])
async def test_secrets_never_logged_even_when_echoed(sim_server, sim, mode) -> None:
    sim.echo_headers = True  # a misbehaving upstream that reflects our credentials back
    outcomes = set()
    async with VTPassProvider(vt_settings(sim_server, mode=mode), pay_read_timeout=0.5) as adapter:
        for knobs in ({}, {"malformed": True}, {"http_status": 502}, {"hang": 5.0}, {"pay_code": "087"}):
            sim.configure(**knobs)
            sale = airtime()
            for result in (
                await adapter.purchase(sale),
                await adapter.requery(sale.request_id, paid_at=LONG_AGO),
            ):
                outcomes.add(result.outcome)
                assert_no_secrets(result, sim)
    assert outcomes == {Outcome.DELIVERED, Outcome.PENDING, Outcome.FAILED}
    assert "[redacted]" in json.dumps(result.response_log)
