"""Purchases routed to ClubKonnect (VTU_PROVIDER_BY_SERVICE), end to end: PurchaseService -> the real
ClubKonnect adapter -> HTTP -> its simulator, on real PostgreSQL, ledger effects asserted and reconcile clean.
ClubKonnect's "order received" must never be booked as delivered, and a prepaid token that comes late keeps
the purchase pending until it is there."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.config.settings import Settings
from app.vtu.config import VtuConfig
from app.vtu.models import FAILED, PENDING, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import ClubKonnectProvider
from tests.fakes.clubkonnect import (
    API_KEY,
    PREPAID_METER,
    USER_ID,
    Behaviour,
    ClubKonnectSimulator,
    token_for,
)
from tests.fakes.server import ThreadedServer, serve
from tests.helpers import running
from tests.integration.purchase_fixtures import (
    Harness,
    assert_reconciled,
    load,
    make_service,
    money,
    new_buyer,
    provider_http_client,
)

START = 1_000_000
PHONE = "08031234567"
ROUTES = {"mtn": "clubkonnect", "ikeja-electric": "clubkonnect"}
CALLBACK = "/vtu/webhooks/clubkonnect/"


@pytest.fixture(scope="module")
def ck_server() -> Iterator[tuple[ClubKonnectSimulator, ThreadedServer]]:
    sim = ClubKonnectSimulator()
    with serve(sim) as server:
        yield sim, server


@pytest.fixture
def ck(ck_server: tuple[ClubKonnectSimulator, ThreadedServer]) -> ClubKonnectSimulator:
    ck_server[0].reset()
    return ck_server[0]


@pytest_asyncio.fixture(loop_scope="session")
async def shop(
    db: Any, sessionmaker: Any, settings: Settings, ck_server: Any, ck: Any
) -> AsyncIterator[Harness]:
    ck_settings = dataclasses.replace(
        settings,
        clubkonnect_base_url=ck_server[1].url,
        clubkonnect_user_id=USER_ID,
        clubkonnect_api_key=API_KEY,
    )
    http = provider_http_client()
    adapter = ClubKonnectProvider(ck_settings, http_client=http, pay_read_timeout=1.0, read_timeout=5.0)
    harness = make_service(
        sessionmaker, ck_settings, config=VtuConfig(provider_by_service=ROUTES),
        providers={"clubkonnect": adapter}, http=http,
    )  # fmt: skip
    try:
        yield harness
    finally:
        await harness.aclose()


async def test_order_received_stays_pending_until_the_query_says_completed(shop, sessionmaker, ck) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone=PHONE, amount_kobo=50_000)
    )
    assert (purchase.status, purchase.provider_slug, purchase.provider_code) == (
        PENDING,
        "clubkonnect",
        "100",
    )
    m = await money(sessionmaker, buyer.id, "clubkonnect")
    assert (m.wallet, m.in_flight, m.float_) == (START - 50_000, 50_000, 0)
    done = await shop.service.requery(purchase.id, source="worker", attempt=1)
    assert done is not None and done.status == SUCCESSFUL
    m = await money(sessionmaker, buyer.id, "clubkonnect")
    assert (m.wallet, m.in_flight, m.float_) == (START - 50_000, 0, 50_000)
    assert len(ck.order_requests(purchase.request_id)) == 1 and ck.duplicates == 0
    await assert_reconciled(sessionmaker)


async def test_an_order_error_refunds_once_with_nothing_placed(shop, sessionmaker, ck) -> None:
    ck.configure(PHONE, order_code="409")
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone=PHONE, amount_kobo=50_000)
    )
    assert (purchase.status, purchase.provider_code) == (FAILED, "409")
    assert (await money(sessionmaker, buyer.id, "clubkonnect")).wallet == START
    assert ck.orders == {}
    await assert_reconciled(sessionmaker)


async def test_a_prepaid_token_that_comes_late_keeps_the_purchase_pending(shop, sessionmaker, ck) -> None:
    ck.configure(PREPAID_METER, pending_answers=0, token_after=1)
    buyer = await new_buyer(sessionmaker, fund=START)
    request = PurchaseRequest(
        service_id="ikeja-electric", meter_number=PREPAID_METER, meter_type="prepaid", amount_kobo=200_000,
        phone=PHONE,
    )  # fmt: skip
    purchase = await shop.service.buy(buyer, request)
    assert purchase.status == PENDING and purchase.token is None
    assert purchase.customer_name == "TESTMETER CK"
    first = await shop.service.requery(purchase.id, source="worker", attempt=1)
    assert first is not None and (first.status, first.token) == (PENDING, None)
    second = await shop.service.requery(purchase.id, source="worker", attempt=2)
    assert second is not None and second.status == SUCCESSFUL
    assert second.token == token_for(purchase.request_id) and second.units == "49.6 kWh"
    await assert_reconciled(sessionmaker)


CALLBACK_TOKEN = "ck-cb-5e1d0a9b7c"


@pytest_asyncio.fixture(loop_scope="session")
async def callback_client(settings: Settings, ck_server: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with ClubKonnect credentials (the simulator) and a callback token."""
    from app.asgi import create_app
    from app.vtu.runtime import close_vtu

    configured = dataclasses.replace(
        settings, clubkonnect_base_url=ck_server[1].url, clubkonnect_user_id=USER_ID,
        clubkonnect_api_key=API_KEY, clubkonnect_callback_token=CALLBACK_TOKEN,
    )  # fmt: skip
    application = create_app(configured)
    async with running(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
            yield client
        await close_vtu(application)


async def test_the_callback_is_a_hint_confirmed_by_a_query(shop, sessionmaker, ck, callback_client) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone=PHONE, amount_kobo=50_000)
    )
    order = ck.orders[purchase.request_id]
    order.behaviour = Behaviour(pending_answers=10)  # the query keeps saying ORDER_RECEIVED
    claim = {"request_id": purchase.request_id, "orderid": order.orderid, "statuscode": "200",
             "orderstatus": "ORDER_COMPLETED"}  # fmt: skip
    for path in (f"{CALLBACK}wrong-token", f"{CALLBACK}{CALLBACK_TOKEN}x", CALLBACK + "x"):
        assert (await callback_client.get(path, params=claim)).status_code == 404
    for bad in ({}, {"request_id": "x' OR 1=1"}, {"request_id": "a" * 200}):
        response = await callback_client.get(CALLBACK + CALLBACK_TOKEN, params=bad)
        assert (response.status_code, response.text) == (200, "OK")
    # The claim alone changes nothing: the query still says received.
    response = await callback_client.get(CALLBACK + CALLBACK_TOKEN, params=claim)
    assert (response.status_code, response.text) == (200, "OK")
    after = await load(sessionmaker, purchase.id)
    assert after.status == PENDING
    assert [e["kind"] for e in after.exchanges][-2:] == ["callback", "requery"]
    # Once ClubKonnect really completed it, the same callback settles it (once).
    order.behaviour = Behaviour(pending_answers=0)
    for _ in range(2):
        assert (await callback_client.get(CALLBACK + CALLBACK_TOKEN, params=claim)).status_code == 200
    assert (await load(sessionmaker, purchase.id)).status == SUCCESSFUL
    m = await money(sessionmaker, buyer.id, "clubkonnect")
    assert (m.wallet, m.in_flight, m.float_) == (START - 50_000, 0, 50_000)
    assert ck.duplicates == 0 and len(ck.order_requests(purchase.request_id)) == 1
    await assert_reconciled(sessionmaker)
