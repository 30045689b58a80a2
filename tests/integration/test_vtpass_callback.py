"""POST /vtu/webhooks/vtpass/{token}: secret-token gate, always "success" for VTpass, and the purchase
changes only through a fresh requery, never because of what the callback body says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from app.vtu.models import PENDING, REVERSED, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from tests.helpers import running
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    Harness,
    assert_reconciled,
    load,
    money,
    new_buyer,
    postings_for,
    sim_settings,
)

# pytest fixtures shared by the purchase-engine tests
sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt


TOKEN = "cb-token-7f3a9e21c4d84b6f"
URL = f"/vtu/webhooks/vtpass/{TOKEN}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def callback_app(settings, sim_server) -> AsyncIterator[Any]:
    """The real app, configured like production: VTpass (the simulator) and a callback token."""
    from app.asgi import create_app

    sim, server = sim_server
    from app.vtu.runtime import close_vtu

    application = create_app(sim_settings(settings, server.url, sim, vtpass_callback_token=TOKEN))
    async with running(application):
        yield application
        await close_vtu(application)


@pytest_asyncio.fixture(loop_scope="session")
async def vtpass(callback_app, db) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=callback_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as c:
        yield c


async def test_wrong_or_missing_token_is_404(vtpass: httpx.AsyncClient) -> None:
    for path in (
        "/vtu/webhooks/vtpass/wrong-token",
        f"/vtu/webhooks/vtpass/{TOKEN}x",
        "/vtu/webhooks/vtpass/x",
    ):
        response = await vtpass.post(path, json={"type": "transaction-update", "data": {}})
        assert response.status_code == 404, path


async def test_unset_token_closes_the_endpoint(client: httpx.AsyncClient, settings) -> None:
    assert settings.vtpass_callback_token == ""  # the default test app has none configured
    for token in ("", "anything", "None"):
        response = await client.post(f"/vtu/webhooks/vtpass/{token}", json={"type": "transaction-update"})
        assert response.status_code in (404, 405), token
        assert response.status_code != 200


async def test_valid_token_always_answers_success(vtpass: httpx.AsyncClient) -> None:
    bodies: list[Any] = [
        {"type": "transaction-update", "data": {"requestId": "202611280000unknownid001"}},
        {"type": "variations-update", "data": {"serviceID": "mtn-data"}},
        {"type": "transaction-update"},
        {"something": "else"},
    ]
    for body in bodies:
        response = await vtpass.post(URL, json=body)
        assert (response.status_code, response.json()) == (200, {"response": "success"}), body
    response = await vtpass.post(URL, content=b"not json{", headers={"content-type": "application/json"})
    assert (response.status_code, response.json()) == (200, {"response": "success"})


async def test_transaction_update_requeries_and_applies(vtpass, vt: Harness, sessionmaker, sim) -> None:
    sim.configure("08012349001", pending_answers=1, outcome="delivered")
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await vt.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone="08012349001", amount_kobo=50_000)
    )
    assert purchase.status == PENDING
    response = await sim.send_callback(f"http://testserver.local{URL}", purchase.request_id, client=vtpass)
    assert (response.status_code, response.json()) == (200, {"response": "success"})
    done = await load(sessionmaker, purchase.id)
    assert done.status == SUCCESSFUL
    assert [e["kind"] for e in done.exchanges] == ["pay", "callback", "requery"]
    assert sim.requests[-1].path == "/api/requery"  # confirmed with VTpass before acting
    await assert_reconciled(sessionmaker)


async def test_forged_callback_body_changes_nothing(vtpass, vt: Harness, sessionmaker, sim) -> None:
    sim.configure("08012349002", outcome="pending")  # VTpass itself still says pending
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await vt.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone="08012349002", amount_kobo=50_000)
    )
    forged = {
        "type": "transaction-update",
        "data": {
            "code": "016",
            "requestId": purchase.request_id,
            "response_description": "TRANSACTION FAILED",
            "content": {"transactions": {"status": "failed"}},
        },
    }
    response = await vtpass.post(URL, json=forged)
    assert response.json() == {"response": "success"}
    current = await load(sessionmaker, purchase.id)
    assert current.status == PENDING  # no refund on the callback's word
    assert (await money(sessionmaker, buyer.id)).in_flight == 50_000
    await assert_reconciled(sessionmaker)


async def test_reversal_callback_refunds_once(vtpass, vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await vt.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=50_000)
    )
    assert purchase.status == SUCCESSFUL
    sim.reverse(purchase.request_id)
    url = f"http://testserver.local{URL}"
    answers = await asyncio.gather(
        *(sim.send_callback(url, purchase.request_id, client=vtpass) for _ in range(3))
    )
    assert all(a.json() == {"response": "success"} for a in answers)
    assert (await load(sessionmaker, purchase.id)).status == REVERSED
    assert (await money(sessionmaker, buyer.id)).wallet == 1_000_000
    keys = await postings_for(sessionmaker, purchase.id)
    assert keys.count(f"refund:{purchase.id}") == 1
    await assert_reconciled(sessionmaker)


def test_token_compare_is_constant_time_and_closed_when_unset() -> None:
    from app.vtu.controllers import token_matches

    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN[:-1], TOKEN)
    assert not token_matches("", "")
    assert not token_matches("x", "")
