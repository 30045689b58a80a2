"""ClubKonnectProvider over real HTTP against the ClubKonnect simulator (no database): every answer class of
the facts file, never a second order for one request id, secrets never logged."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from app.config.settings import Settings
from app.vtu.providers import (
    ClubKonnectProvider,
    CustomerVerificationFailed,
    DuplicatePayAttempt,
    Outcome,
    ProviderError,
    ProviderResult,
    PurchaseOrder,
    get_provider,
    new_request_id,
)
from app.vtu.providers.clubkonnect_mapping import map_body, nothing_placed
from tests.fakes.clubkonnect import (
    API_KEY,
    PREPAID_METER,
    SMARTCARD,
    USER_ID,
    ClubKonnectSimulator,
    token_for,
)
from tests.fakes.server import ThreadedServer, serve

LONG_AGO = datetime.now(UTC) - timedelta(minutes=5)
PHONE = "08031234567"


@pytest.fixture(scope="module")
def sim_server() -> Iterator[tuple[ClubKonnectSimulator, ThreadedServer]]:
    sim = ClubKonnectSimulator()
    with serve(sim) as server:
        yield sim, server


@pytest.fixture
def sim(sim_server: tuple[ClubKonnectSimulator, ThreadedServer]) -> ClubKonnectSimulator:
    sim_server[0].reset()
    return sim_server[0]


def ck_settings(sim_server: tuple[ClubKonnectSimulator, ThreadedServer], **over: str) -> Settings:
    values = {"clubkonnect_base_url": sim_server[1].url, "clubkonnect_user_id": USER_ID,
              "clubkonnect_api_key": API_KEY} | over  # fmt: skip
    return dataclasses.replace(Settings(), **values)


@pytest_asyncio.fixture(loop_scope="session")
async def provider(sim_server, sim) -> AsyncIterator[ClubKonnectProvider]:
    async with ClubKonnectProvider(ck_settings(sim_server), pay_read_timeout=1.0) as adapter:
        yield adapter


def airtime(phone: str = PHONE, kobo: int = 20_000) -> PurchaseOrder:
    return PurchaseOrder(new_request_id(), "mtn", kobo, phone)


def assert_no_secrets(result: ProviderResult) -> None:
    assert API_KEY not in json.dumps([result.request_log, result.response_log])


async def test_order_received_is_pending_then_completed_on_query(provider, sim) -> None:
    sale = airtime()
    result = await provider.purchase(sale)
    # 100 ORDER_RECEIVED is NOT delivered (the common client bug books it as delivered)
    assert (result.outcome, result.code) == (Outcome.PENDING, "100")
    assert result.provider_reference == sim.orders[sale.request_id].orderid
    [sent] = sim.order_requests(sale.request_id)
    assert sent.script == "APIAirtimeV1.asp"
    assert {k: sent.query[k] for k in ("MobileNetwork", "Amount", "MobileNumber", "UserID")} == {
        "MobileNetwork": "01", "Amount": "200", "MobileNumber": PHONE, "UserID": USER_ID,
    }  # fmt: skip
    assert_no_secrets(result)
    done = await provider.requery(sale.request_id, paid_at=LONG_AGO)
    assert (done.outcome, done.code) == (Outcome.DELIVERED, "200")
    assert_no_secrets(done)
    assert sim.duplicates == 0


@pytest.mark.parametrize("code", ["300", "201", "600"])
async def test_processed_on_hold_and_unresponsive_stay_pending(provider, sim, code) -> None:
    sim.configure(pending_code=code, pending_answers=3)
    sale = airtime()
    assert (await provider.purchase(sale)).outcome is Outcome.PENDING
    assert (await provider.requery(sale.request_id, paid_at=LONG_AGO)).outcome is Outcome.PENDING
    assert (await provider.requery(sale.request_id, paid_at=LONG_AGO)).outcome is Outcome.PENDING
    assert (await provider.requery(sale.request_id, paid_at=LONG_AGO)).outcome is Outcome.DELIVERED


@pytest.mark.parametrize(
    ("code", "alert"), [("409", None), ("417", "wallet (provider float) is too low"), ("400", "credentials")]
)
async def test_order_errors_4xx_fail_with_nothing_placed(provider, sim, code, alert) -> None:
    sim.configure(PHONE, order_code=code)
    sale = airtime()
    result = await provider.purchase(sale)
    assert (result.outcome, result.code) == (Outcome.FAILED, code)
    assert nothing_placed(result.code)
    assert sale.request_id not in sim.orders
    assert (alert is None and result.staff_alert is None) or (alert and alert in (result.staff_alert or ""))
    # a requery later agrees: ClubKonnect holds nothing for it (failed once the grace has passed)
    late = await provider.requery(sale.request_id, paid_at=LONG_AGO)
    assert late.outcome is Outcome.FAILED and late.code is None
    early = await provider.requery(sale.request_id, paid_at=datetime.now(UTC))
    assert early.outcome is Outcome.PENDING


async def test_cancelled_5xx_is_failed_but_was_placed(provider, sim) -> None:
    sim.configure(outcome="cancelled", pending_answers=1)
    sale = airtime()
    assert (await provider.purchase(sale)).outcome is Outcome.PENDING
    result = await provider.requery(sale.request_id, paid_at=LONG_AGO)
    assert (result.outcome, result.code) == (Outcome.FAILED, "506")
    assert not nothing_placed(result.code)  # it existed: never fail over on it


@pytest.mark.parametrize("placed", [True, False])
async def test_iis_html_5xx_is_pending_and_the_query_decides(provider, sim, placed) -> None:
    sim.configure(http_status=500, process=placed)
    sale = airtime()
    result = await provider.purchase(sale)
    assert (result.outcome, result.code) == (Outcome.PENDING, None)
    assert result.response_log is not None and "IIS" in result.response_log["body"]
    sim.configure()  # the outage is over
    after = await provider.requery(sale.request_id, paid_at=LONG_AGO)
    assert after.outcome is (Outcome.DELIVERED if placed else Outcome.FAILED)
    assert len(sim.order_requests(sale.request_id)) == 1


async def test_timeout_is_pending_and_never_sent_twice(provider, sim) -> None:
    sim.configure(hang=10.0)
    sale = airtime()
    result = await provider.purchase(sale)
    assert result.outcome is Outcome.PENDING and "timed out" in result.message
    with pytest.raises(DuplicatePayAttempt):
        await provider.purchase(sale)
    assert len(sim.order_requests(sale.request_id)) == 1 and sim.duplicates == 0


async def test_connection_refused_is_pending(sim_server) -> None:
    settings = ck_settings(sim_server, clubkonnect_base_url="http://127.0.0.1:9")
    async with ClubKonnectProvider(settings) as adapter:
        result = await adapter.purchase(airtime())
    assert (result.outcome, result.code) == (Outcome.PENDING, None)


async def test_prepaid_token_only_on_a_later_query(provider, sim) -> None:
    sim.configure(PREPAID_METER, pending_answers=0, token_after=2)
    sale = PurchaseOrder(new_request_id(), "ikeja-electric", 300_000, PHONE, PREPAID_METER, "prepaid")
    first = await provider.purchase(sale)
    # completed, but no token yet: the customer cannot use it, so it is not delivered yet
    assert (first.outcome, first.code, first.token) == (Outcome.PENDING, "200", None)
    assert "token is not issued yet" in first.message
    [sent] = sim.order_requests(sale.request_id)
    assert (sent.query["ElectricCompany"], sent.query["MeterType"], sent.query["Amount"]) == (
        "02",
        "01",
        "3000",
    )
    outcomes = [await provider.requery(sale.request_id, paid_at=LONG_AGO, needs_token=True) for _ in range(3)]
    assert [o.outcome for o in outcomes] == [Outcome.PENDING, Outcome.PENDING, Outcome.DELIVERED]
    assert outcomes[-1].token == token_for(sale.request_id) and outcomes[-1].units == "49.6 kWh"


async def test_data_cable_and_plans(provider, sim) -> None:
    mtn = await provider.list_variations("mtn-data")
    assert [(p.variation_code, p.amount_kobo) for p in mtn][:2] == [("500.0", 15_000), ("1000.0", 28_000)]
    nine = await provider.list_variations("etisalat-data")  # listed under "m_9mobile": found by its ID
    assert nine[0].variation_code == "500"
    dstv = await provider.list_variations("dstv")
    assert ("dstv-padi", 360_000) in [(p.variation_code, p.amount_kobo) for p in dstv]
    sale = PurchaseOrder(new_request_id(), "mtn-data", 28_000, PHONE, variation_code="1000.0")
    assert (await provider.purchase(sale)).code == "100"
    assert sim.order_requests(sale.request_id)[0].query["DataPlan"] == "1000.0"
    wrong = PurchaseOrder(new_request_id(), "mtn-data", 28_000, PHONE, variation_code="mtn-1gb-1day")
    result = await provider.purchase(wrong)  # a VTpass plan code: refused, nothing placed
    assert result.outcome is Outcome.FAILED and nothing_placed(result.code)
    tv = PurchaseOrder(new_request_id(), "dstv", 360_000, PHONE, SMARTCARD, "dstv-padi", "renew")
    assert (await provider.purchase(tv)).code == "100"
    sent = sim.order_requests(tv.request_id)[0].query
    assert (sent["CableTV"], sent["Package"], sent["SmartCardNo"]) == ("dstv", "dstv-padi", SMARTCARD)
    renew = PurchaseOrder(new_request_id(), "gotv", 157_500, PHONE, SMARTCARD, None, "renew")
    result = await provider.purchase(renew)  # no package id: not sent at all
    assert result.outcome is Outcome.FAILED and not sim.order_requests(renew.request_id)


async def test_verify_balance_and_credentials(provider, sim, sim_server) -> None:
    meter = await provider.verify_customer("ikeja-electric", PREPAID_METER, "prepaid")
    assert meter.name == "TESTMETER CK"
    with pytest.raises(CustomerVerificationFailed):
        await provider.verify_customer("ikeja-electric", "9999999999999", "prepaid")
    assert (await provider.verify_customer("dstv", SMARTCARD, None)).name == "CK TEST VIEWER"
    with pytest.raises(CustomerVerificationFailed):
        await provider.verify_customer("gotv", "0000000000", None)
    assert await provider.balance() == 15_000_000
    async with ClubKonnectProvider(ck_settings(sim_server, clubkonnect_api_key="wrong")) as bad:
        with pytest.raises(ProviderError) as raised:
            await bad.balance()
        assert "credentials" in (raised.value.staff_alert or "")
        result = await bad.purchase(airtime())
        assert (result.outcome, result.code) == (Outcome.FAILED, "400") and result.staff_alert


async def test_callback_url_carries_a_secret_and_the_request_id(sim_server, sim) -> None:
    settings = ck_settings(sim_server, clubkonnect_callback_token="cb-secret-77", site_url="https://topup.ng")
    async with ClubKonnectProvider(settings) as adapter:
        sale = airtime()
        await adapter.purchase(sale)
        url = sim.order_requests(sale.request_id)[0].query["CallBackURL"]
        assert url == f"https://topup.ng/vtu/webhooks/clubkonnect/cb-secret-77?request_id={sale.request_id}"
        result = await adapter.requery(sale.request_id, paid_at=LONG_AGO)
        assert "cb-secret-77" not in json.dumps([result.request_log, result.response_log])


def test_mapping_never_books_an_unknown_answer_as_final() -> None:
    for body in ({}, {"status": "ORDER_RECEIVED"}, {"statuscode": "777"}, {"statuscode": "2000"}, [1], "x"):
        assert map_body(body).outcome is Outcome.PENDING, body
    assert map_body({"statuscode": 200, "status": "ORDER_COMPLETED"}).outcome is Outcome.DELIVERED
    assert map_body({"statuscode": "200"}, needs_token=True).outcome is Outcome.PENDING
    assert map_body({"status": "INVALID_REQUESTID"}, requery=True, paid_at=LONG_AGO).outcome is Outcome.FAILED
    assert (
        map_body({"status": "INVALID_REQUESTID"}, requery=False, paid_at=LONG_AGO).outcome is Outcome.PENDING
    )


def test_get_provider_knows_clubkonnect_and_refuses_missing_credentials() -> None:
    with pytest.raises(ProviderError, match="credentials are missing"):
        get_provider(Settings(), slug="clubkonnect")
