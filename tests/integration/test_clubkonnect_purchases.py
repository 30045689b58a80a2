"""Purchases routed to ClubKonnect (VTU_PROVIDER_BY_SERVICE), end to end: PurchaseService -> the real
ClubKonnect adapter -> HTTP -> its simulator, on real PostgreSQL, ledger effects asserted and reconcile clean.
ClubKonnect's "order received" must never be booked as delivered, and a prepaid token that comes late keeps
the purchase pending until it is there."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from app.config.settings import Settings
from app.vtu.config import VtuConfig
from app.vtu.models import FAILED, PENDING, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import ClubKonnectProvider
from tests.fakes.clubkonnect import API_KEY, PREPAID_METER, USER_ID, ClubKonnectSimulator, token_for
from tests.fakes.server import ThreadedServer, serve
from tests.integration.purchase_fixtures import (
    Harness,
    assert_reconciled,
    make_service,
    money,
    new_buyer,
    provider_http_client,
)

START = 1_000_000
PHONE = "08031234567"
ROUTES = {"mtn": "clubkonnect", "ikeja-electric": "clubkonnect"}


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
