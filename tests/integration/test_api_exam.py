"""Exam PINs through the reseller API (stub provider behind the served app, real PostgreSQL + Redis):
`quantity` / `profile_id` in, `pins` out (to the owner only), strict types, nothing written when refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.ledger.queries import wallet_balance
from app.vtu.plans import sync_plans
from app.vtu.providers.stub import JAMB_PROFILE, StubProvider, stub_pins
from tests.integration import api_fixtures
from tests.integration.api_fixtures import DELIVERED, new_reseller, purchase_count
from tests.integration.purchase_fixtures import assert_reconciled

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http

WAEC_PRICE = 390_000  # the stub's waecdirect plan (resellers pay face value for exam PINs by default)


async def seed(sessionmaker: Any) -> None:
    for service_id in ("waec", "waec-registration", "jamb"):
        async with sessionmaker() as session:
            await sync_plans(session, StubProvider(), service_id)


async def balance(sessionmaker: Any, user_id: Any) -> int:
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


def waec(quantity: Any = 3, **extra: Any) -> dict[str, Any]:
    return {
        "service_id": "waec",
        "variation_code": "waecdirect",
        "phone": DELIVERED,
        "quantity": quantity,
    } | extra


async def test_services_list_the_exam_pins(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    services = {
        s["service_id"]: s for s in (await http.get("/api/v1/services", headers=reseller.headers)).json()
    }
    for service_id in ("waec", "waec-registration", "jamb"):
        assert services[service_id]["kind"] == "exam"
        assert services[service_id]["plans"] == f"/api/v1/plans?service_id={service_id}"
    assert services["waec"]["max_quantity"] == 10 and services["waec"]["verify"] is False
    assert services["jamb"]["max_quantity"] == 1 and services["jamb"]["verify"] is True
    assert services["mtn"]["max_quantity"] is None


async def test_waec_quantity_three_returns_three_pins_to_the_owner_only(http, sessionmaker):
    await seed(sessionmaker)
    reseller = await new_reseller(sessionmaker, fund=2_000_000)
    plans = (await http.get("/api/v1/plans", params={"service_id": "waec"}, headers=reseller.headers)).json()
    assert plans == [
        {"variation_code": "waecdirect", "name": "WAEC Result Checker PIN", "price_kobo": WAEC_PRICE}
    ]
    response = await http.post("/api/v1/purchases", json=waec(3), headers=reseller.buy_headers())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "successful" and body["amount_kobo"] == 3 * WAEC_PRICE
    assert body["product"]["variation_code"] == "waecdirect" and body["token"] is None
    expected = [{"serial": s, "pin": p} for s, p in stub_pins(body["reference"], 3)]
    assert body["pins"] == expected
    again = await http.get(f"/api/v1/purchases/{body['id']}", headers=reseller.headers)
    assert again.status_code == 200 and again.json()["pins"] == expected
    listed = (await http.get("/api/v1/purchases", headers=reseller.headers)).json()
    assert [p["pins"] for p in listed] == [expected]
    assert await balance(sessionmaker, reseller.user_id) == 2_000_000 - 3 * WAEC_PRICE
    other = await new_reseller(sessionmaker)
    assert (await http.get(f"/api/v1/purchases/{body['id']}", headers=other.headers)).status_code == 404
    # Other products keep pins null.
    airtime = {"service_id": "mtn", "phone": DELIVERED, "amount_kobo": 10_000}
    bought = await http.post("/api/v1/purchases", json=airtime, headers=reseller.buy_headers())
    assert bought.status_code == 201 and bought.json()["pins"] is None
    await assert_reconciled(sessionmaker)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (waec(0), "quantity"),
        (waec(11), "quantity"),
        (waec("2"), "quantity"),
        (waec(2.0), "quantity"),
        (waec(True), "quantity"),
        (waec(1, profile_id=JAMB_PROFILE), "profile_id"),
        ({"service_id": "mtn", "phone": DELIVERED, "amount_kobo": 10_000, "quantity": 1}, "quantity"),
        ({"service_id": "jamb", "variation_code": "utme", "phone": DELIVERED, "profile_id": "12345"},
         "profile_id"),
        ({"service_id": "jamb", "variation_code": "utme", "phone": DELIVERED}, "profile_id"),
        ({"service_id": "jamb", "variation_code": "utme", "phone": DELIVERED, "profile_id": JAMB_PROFILE,
          "quantity": 2}, "quantity"),
    ],
)  # fmt: skip
async def test_bad_exam_bodies_are_400_with_nothing_written(http, sessionmaker, body, field):
    await seed(sessionmaker)
    reseller = await new_reseller(sessionmaker, fund=2_000_000)
    response = await http.post("/api/v1/purchases", json=body, headers=reseller.buy_headers())
    assert response.status_code == 400, response.text
    assert field in response.json()["fields"], response.json()
    assert await purchase_count(sessionmaker, reseller.user_id) == 0
    assert await balance(sessionmaker, reseller.user_id) == 2_000_000


async def test_jamb_profile_verify_then_buy_and_a_bad_profile_debits_nothing(http, sessionmaker):
    await seed(sessionmaker)
    reseller = await new_reseller(sessionmaker, fund=2_000_000)
    verify = {"service_id": "jamb", "customer_number": JAMB_PROFILE, "type": "utme"}
    ok = await http.post("/api/v1/verify", json=verify, headers=reseller.headers)
    assert ok.status_code == 200 and ok.json()["customer_name"] == "TEST CANDIDATE"
    bad = await http.post(
        "/api/v1/verify", json=verify | {"customer_number": "0999999999"}, headers=reseller.headers
    )
    assert bad.status_code == 400 and "customer_number" in bad.json()["fields"]
    body = {"service_id": "jamb", "variation_code": "utme", "phone": DELIVERED, "profile_id": "0999999999"}
    refused = await http.post("/api/v1/purchases", json=body, headers=reseller.buy_headers())
    assert refused.status_code == 400 and "profile_id" in refused.json()["fields"]
    assert await purchase_count(sessionmaker, reseller.user_id) == 0
    assert await balance(sessionmaker, reseller.user_id) == 2_000_000
    bought = await http.post(
        "/api/v1/purchases", json=body | {"profile_id": JAMB_PROFILE}, headers=reseller.buy_headers()
    )
    assert bought.status_code == 201 and bought.json()["status"] == "successful"
    assert bought.json()["recipient"] == JAMB_PROFILE and bought.json()["amount_kobo"] == 770_000
    [pin] = bought.json()["pins"]
    assert pin == {"serial": None, "pin": stub_pins(bought.json()["reference"], 1)[0][1]}
    await assert_reconciled(sessionmaker)


async def test_concurrent_exam_purchases_debit_exactly_once_each(http, sessionmaker):
    await seed(sessionmaker)
    reseller = await new_reseller(sessionmaker, fund=4 * 2 * WAEC_PRICE + 100)
    key = "exam-order-1"
    replays = [
        http.post("/api/v1/purchases", json=waec(2), headers=reseller.buy_headers(key)) for _ in range(3)
    ]
    others = [http.post("/api/v1/purchases", json=waec(2), headers=reseller.buy_headers()) for _ in range(4)]
    answers = await asyncio.gather(*replays, *others)
    ok = [a for a in answers if a.status_code == 201]
    assert all(a.status_code in (201, 402) for a in answers), [a.status_code for a in answers]
    # One purchase per Idempotency-Key: its three sends get that purchase, or all three were refused (the
    # keyed order lost the race for the wallet; which of the five orders loses is not fixed).
    keyed = answers[:3]
    assert [a.status_code for a in keyed].count(201) in (0, 3), [a.status_code for a in keyed]
    assert len({a.json()["id"] for a in keyed if a.status_code == 201}) <= 1
    # 4 purchases fit the wallet: exactly one of the five distinct orders is refused (402).
    distinct = [keyed[0], *answers[3:]]
    assert sorted(a.status_code for a in distinct) == [201, 201, 201, 201, 402]
    assert len({a.json()["id"] for a in ok}) == 4
    assert await balance(sessionmaker, reseller.user_id) == 100
    await assert_reconciled(sessionmaker)
