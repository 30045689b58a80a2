"""Reseller API v1 contract (the public contract, docs/api.md), over real HTTP against the served app: every
endpoint, its answer shape and every error code. Real PostgreSQL, Redis and ledger; the stub provider."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import select

from app.accounts.apikeys import ApiKey, ApiKeyService
from app.accounts.models import User
from app.ledger.queries import wallet_balance
from app.payments.models import ReservedAccount, ReservedBankAccount
from app.vtu.models import Purchase
from app.vtu.plans import sync_plans
from app.vtu.providers.stub import StubProvider
from tests.integration import api_fixtures
from tests.integration.api_fixtures import (
    ALL_TIERS,
    DELIVERED,
    FAILING,
    airtime,
    new_key,
    new_reseller,
    purchase_count,
)

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http

PURCHASE_KEYS = {"id", "status", "service_id", "amount_kobo", "reference", "token", "created_at",
                 # issue 13: added, the fields above keep their meaning
                 "face_value_kobo", "charged_kobo", "recipient", "product", "failure_reason", "completed_at",
                 "units", "pins"}  # fmt: skip
ENDPOINTS = [
    ("GET", "/api/v1/wallet", None),
    ("GET", "/api/v1/plans?service_id=mtn-data", None),
    ("GET", "/api/v1/services", None),
    ("GET", "/api/v1/callbacks", None),
    ("POST", "/api/v1/purchases", airtime()),
    ("GET", "/api/v1/purchases/0192f0c4-0000-7000-8000-000000000001", None),
    ("GET", "/api/v1/purchases", None),
    ("POST", "/api/v1/verify", {"service_id": "dstv", "customer_number": "1212121212"}),
]


async def balance(sessionmaker, user_id) -> int:
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code and isinstance(body["detail"], str) and body["detail"], body
    return body


# -- authentication --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer vtu_nope_x",
                                           "Bearer vtu_abcdefgh_" + "A" * 43])  # fmt: skip
async def test_missing_or_unknown_key_is_401(http, method, path, body, authorization):
    headers = {"Idempotency-Key": "k1"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await http.request(method, path, json=body, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_revoked_key_and_inactive_user_are_401_and_nothing_is_bought(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    assert (await http.get("/api/v1/wallet", headers=reseller.headers)).status_code == 200
    async with sessionmaker() as session:
        assert await ApiKeyService(session).revoke(reseller.key_id, by="test")
        await session.commit()
    response = await http.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())
    assert_error(response, 401, "unauthorized")
    assert await purchase_count(sessionmaker, reseller.user_id) == 0
    other = await new_reseller(sessionmaker)
    async with sessionmaker() as session:
        user = await session.get(User, other.user_id)
        user.is_active = False
        await session.commit()
    assert_error(await http.get("/api/v1/wallet", headers=other.headers), 401, "unauthorized")


async def test_session_cookies_do_not_authenticate_the_api(http, sessionmaker):
    response = await http.get("/api/v1/wallet", cookies={"vtu_session": "anything"})
    assert_error(response, 401, "unauthorized")


async def test_ip_allowlist(http, sessionmaker):
    elsewhere = await new_reseller(sessionmaker, allowed_ips="203.0.113.0/24")
    assert_error(await http.get("/api/v1/wallet", headers=elsewhere.headers), 403, "ip_not_allowed")
    here = await new_reseller(sessionmaker, allowed_ips="203.0.113.9, 127.0.0.1")
    assert (await http.get("/api/v1/wallet", headers=here.headers)).status_code == 200


async def test_last_used_is_recorded_at_most_once_a_minute(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)

    async def last_used():
        async with sessionmaker() as session:
            return (await session.get(ApiKey, reseller.key_id)).last_used_at

    assert await last_used() is None
    assert (await http.get("/api/v1/wallet", headers=reseller.headers)).status_code == 200
    first = await last_used()
    assert first is not None
    await asyncio.sleep(0.05)
    for _ in range(3):
        assert (await http.get("/api/v1/purchases", headers=reseller.headers)).status_code == 200
    assert await last_used() == first  # no write per request


async def test_rate_limit_per_key_answers_429_with_retry_after(api, http, sessionmaker):
    one, two = await new_reseller(sessionmaker), await new_reseller(sessionmaker)
    with api.limits(api_rate_limit_per_minute=3):
        statuses = [(await http.get("/api/v1/wallet", headers=one.headers)).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await http.get("/api/v1/purchases", headers=one.headers)
        assert_error(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # Other keys have their own budget.
        assert (await http.get("/api/v1/wallet", headers=two.headers)).status_code == 200


# -- wallet ---------------------------------------------------------------------------------------------
async def test_wallet(http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=123_400)
    response = await http.get("/api/v1/wallet", headers=reseller.headers)
    assert response.status_code == 200
    body = response.json()
    async with sessionmaker() as session:
        user = await session.get(User, reseller.user_id)
    assert body == {
        "balance_kobo": 123_400,
        "currency": "NGN",
        "account_reference": user.account_reference,
        "funding_accounts": [],
    }
    # The missing reserved accounts were asked for again (the worker calls Monnify).
    async with sessionmaker() as session:
        reservation = (
            await session.execute(select(ReservedAccount).where(ReservedAccount.user_id == user.id))
        ).scalar_one()
        session.add(
            ReservedBankAccount(
                reservation_id=reservation.id,
                bank_code="035",
                bank_name="Wema Bank",
                account_number="5000000001",
            )
        )
        await session.commit()
    body = (await http.get("/api/v1/wallet", headers=reseller.headers)).json()
    assert body["funding_accounts"] == [{"bank_name": "Wema Bank", "account_number": "5000000001"}]


# -- plans ----------------------------------------------------------------------------------------------
async def test_plans_at_the_callers_tier_price(api, http, sessionmaker):
    async with sessionmaker() as session:
        await sync_plans(session, StubProvider(), "mtn-data")
    reseller = await new_reseller(sessionmaker, tier="reseller")
    customer = await new_reseller(sessionmaker, tier="customer")
    response = await http.get("/api/v1/plans", params={"service_id": "mtn-data"}, headers=reseller.headers)
    assert response.status_code == 200
    plans = response.json()
    assert plans and all(set(p) == {"variation_code", "name", "price_kobo"} for p in plans)
    with api.limits(api_key_tiers=ALL_TIERS):  # customers' keys work only where API_KEY_TIERS allows them
        as_customer = (
            await http.get("/api/v1/plans", params={"service_id": "mtn-data"}, headers=customer.headers)
        ).json()
    by_code = {p["variation_code"]: p["price_kobo"] for p in as_customer}
    cheapest = plans[0]
    assert cheapest["variation_code"] == "mtn-110mb-1day" and by_code["mtn-110mb-1day"] == 10_000
    assert cheapest["price_kobo"] == 9_900  # reseller data discount, 1%
    assert all(isinstance(p["price_kobo"], int) for p in plans)


@pytest.mark.parametrize(("query", "field"), [({}, "service_id"), ({"service_id": "nope"}, "service_id"),
                                              ({"service_id": "mtn"}, "service_id")])  # fmt: skip
async def test_plans_bad_service_is_400(http, sessionmaker, query, field):
    reseller = await new_reseller(sessionmaker)
    response = await http.get("/api/v1/plans", params=query, headers=reseller.headers)
    assert field in assert_error(response, 400, "invalid_request")["fields"]


# -- buying ---------------------------------------------------------------------------------------------
async def test_buy_airtime_201_and_the_wallet_pays(http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=100_000)
    response = await http.post(
        "/api/v1/purchases", json=airtime(amount_kobo=10_000), headers=reseller.buy_headers()
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == PURCHASE_KEYS
    assert body["status"] == "successful" and body["service_id"] == "mtn" and body["token"] is None
    assert body["amount_kobo"] == 9_800  # reseller airtime discount, 2%
    assert await balance(sessionmaker, reseller.user_id) == 100_000 - 9_800
    async with sessionmaker() as session:
        row = await session.get(Purchase, uuid.UUID(body["id"]))
    assert row.channel == "api" and row.api_key_id == reseller.key_id and body["reference"] == row.request_id
    assert body["created_at"].startswith(row.created_at.strftime("%Y-%m-%dT%H:%M"))


async def test_buy_electricity_returns_the_token(http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=1_000_000)
    body = {"service_id": "ikeja-electric", "meter_number": "1111111111111", "meter_type": "prepaid",
            "amount_kobo": 200_000, "phone": DELIVERED}  # fmt: skip
    response = await http.post("/api/v1/purchases", json=body, headers=reseller.buy_headers())
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "successful" and response.json()["token"]


async def test_failed_purchase_is_201_failed_and_refunded(http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=100_000)
    response = await http.post("/api/v1/purchases", json=airtime(FAILING), headers=reseller.buy_headers())
    assert response.status_code == 201 and response.json()["status"] == "failed"
    assert await balance(sessionmaker, reseller.user_id) == 100_000


async def test_same_key_same_body_is_the_same_purchase_and_one_debit(http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=100_000)
    headers = reseller.buy_headers("order-42")
    first = await http.post("/api/v1/purchases", json=airtime(), headers=headers)
    # Same JSON, other formatting and key order: still the same body.
    raw = json.dumps({"amount_kobo": 10_000, "phone": DELIVERED, "service_id": "mtn"}, indent=2)
    again = await http.post(
        "/api/v1/purchases", content=raw, headers={**headers, "content-type": "application/json"}
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert await purchase_count(sessionmaker, reseller.user_id) == 1
    assert await balance(sessionmaker, reseller.user_id) == 100_000 - 9_800


async def test_same_key_different_body_is_409_and_moves_nothing(http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=100_000)
    headers = reseller.buy_headers("order-43")
    assert (await http.post("/api/v1/purchases", json=airtime(), headers=headers)).status_code == 201
    response = await http.post("/api/v1/purchases", json=airtime(amount_kobo=20_000), headers=headers)
    assert_error(response, 409, "idempotency_key_reused")
    assert await purchase_count(sessionmaker, reseller.user_id) == 1
    assert await balance(sessionmaker, reseller.user_id) == 100_000 - 9_800


async def test_idempotency_keys_belong_to_their_user(http, sessionmaker):
    one, two = await new_reseller(sessionmaker), await new_reseller(sessionmaker)
    a = await http.post("/api/v1/purchases", json=airtime(), headers=one.buy_headers("shared"))
    b = await http.post("/api/v1/purchases", json=airtime(), headers=two.buy_headers("shared"))
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


async def test_insufficient_funds_is_402_and_nothing_is_debited(http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=5_000)
    response = await http.post(
        "/api/v1/purchases", json=airtime(amount_kobo=10_000), headers=reseller.buy_headers()
    )
    assert response.json() == {
        "error": "insufficient_funds",
        "detail": "Your wallet balance is too low for this purchase.",
        "balance_kobo": 5_000,  # the wallet now
        "required_kobo": 9_800,  # the reseller's price for N100 of airtime (2% below face)
    }
    assert response.status_code == 402
    assert await purchase_count(sessionmaker, reseller.user_id) == 0
    assert await balance(sessionmaker, reseller.user_id) == 5_000


INVALID_BODIES = [
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":"10000"}', "amount_kobo"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":10000.0}', "amount_kobo"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":1e4}', "amount_kobo"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":true}', "amount_kobo"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":null}', "amount_kobo"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":10050}', "amount_kobo"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":100}', "amount_kobo"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":99999999999999999999999999}', "amount_kobo"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":-10000}', "amount_kobo"),
    (b'{"service_id":"mtn","amount_kobo":10000}', "phone"),
    (b'{"service_id":"mtn","phone":"12345","amount_kobo":10000}', "phone"),
    (b'{"service_id":"mtn","phone":8011111111,"amount_kobo":10000}', "phone"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":10000,"amount":1}', "amount"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":10000,"meter_number":"1111111111111"}',
     "meter_number"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":10000,"amount_kobo":20000}', "amount_kobo"),
    (b'{"service_id":"nope","phone":"08011111111","amount_kobo":10000}', "service_id"),
    (b'{"service_id":7,"phone":"08011111111","amount_kobo":10000}', "service_id"),
    (b'{"phone":"08011111111","amount_kobo":10000}', "service_id"),
    (b'{"service_id":"mtn-data","phone":"08011111111"}', "variation_code"),
    (b'{"service_id":"mtn-data","phone":"08011111111","variation_code":"no-such-plan"}', "variation_code"),
    (b'{"service_id":"ikeja-electric","meter_number":"1111111111111","meter_type":"weekly",'
     b'"amount_kobo":200000,"phone":"08011111111"}', "meter_type"),
    (b'{"service_id":"ikeja-electric","meter_number":"9999999999999","meter_type":"prepaid",'
     b'"amount_kobo":200000,"phone":"08011111111"}', "meter_number"),
    (b'{"service_id":"dstv","smartcard_number":"1212121212","phone":"08011111111","variation_code":"x",'
     b'"subscription_type":"monthly"}', "subscription_type"),
    (b"not json", "body"),
    (b"", "body"),
    (b"[1, 2]", "body"),
    (b'"mtn"', "body"),
    (b'{"service_id":"mtn","phone":"08011111111","amount_kobo":NaN}', "body"),
    (b"\xff\xfe{}", "body"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "field"), INVALID_BODIES)
async def test_invalid_purchase_is_400_with_field_errors_and_nothing_written(http, sessionmaker, raw, field):
    reseller = await new_reseller(sessionmaker, fund=1_000_000)
    headers = {**reseller.buy_headers(), "content-type": "application/json"}
    response = await http.post("/api/v1/purchases", content=raw, headers=headers)
    body = assert_error(response, 400, "invalid_request")
    assert field in body["fields"], body
    assert await purchase_count(sessionmaker, reseller.user_id) == 0
    assert await balance(sessionmaker, reseller.user_id) == 1_000_000


@pytest.mark.parametrize("key", [None, "", "x" * 256, "with space", "naïve"])
async def test_idempotency_key_is_required_and_checked(http, sessionmaker, key):
    reseller = await new_reseller(sessionmaker)
    headers = dict(reseller.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    try:
        response = await http.post("/api/v1/purchases", json=airtime(), headers=headers)
    except UnicodeEncodeError:  # httpx refuses non-ASCII header values; send the raw bytes
        headers["Idempotency-Key"] = key.encode()
        response = await http.post("/api/v1/purchases", json=airtime(), headers=headers)
    assert "Idempotency-Key" in assert_error(response, 400, "invalid_request")["fields"]
    assert await purchase_count(sessionmaker, reseller.user_id) == 0


async def test_oversized_body_is_refused(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    raw = b'{"service_id":"mtn","phone":"' + b"0" * 40_000 + b'"}'
    response = await http.post(
        "/api/v1/purchases",
        content=raw,
        headers={**reseller.buy_headers(), "content-type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")


# -- reading purchases ---------------------------------------------------------------------------------------
async def test_get_purchase_and_another_users_is_404(http, sessionmaker):
    owner, other = await new_reseller(sessionmaker), await new_reseller(sessionmaker)
    made = (await http.post("/api/v1/purchases", json=airtime(), headers=owner.buy_headers())).json()
    response = await http.get(f"/api/v1/purchases/{made['id']}", headers=owner.headers)
    assert response.status_code == 200 and response.json() == made
    assert_error(await http.get(f"/api/v1/purchases/{made['id']}", headers=other.headers), 404, "not_found")
    assert_error(await http.get(f"/api/v1/purchases/{uuid.uuid4()}", headers=owner.headers), 404, "not_found")
    assert_error(await http.get("/api/v1/purchases/not-a-uuid", headers=owner.headers), 404, "not_found")


async def test_list_purchases_filters_and_limits(http, sessionmaker):
    reseller, other = await new_reseller(sessionmaker), await new_reseller(sessionmaker)
    made = []
    for phone in (DELIVERED, FAILING, DELIVERED):
        made.append(
            (await http.post("/api/v1/purchases", json=airtime(phone), headers=reseller.buy_headers())).json()
        )
    await http.post("/api/v1/purchases", json=airtime(), headers=other.buy_headers())
    everything = (await http.get("/api/v1/purchases", headers=reseller.headers)).json()
    assert [p["id"] for p in everything] == [p["id"] for p in reversed(made)]
    assert all(set(p) == PURCHASE_KEYS for p in everything)
    failed = (
        await http.get("/api/v1/purchases", params={"status": "failed"}, headers=reseller.headers)
    ).json()
    assert [p["id"] for p in failed] == [made[1]["id"]]
    one = (await http.get("/api/v1/purchases", params={"limit": 1}, headers=reseller.headers)).json()
    assert [p["id"] for p in one] == [made[2]["id"]]


BAD_QUERIES = [({"status": "done"}, "status"), ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"),
               ({"limit": "ten"}, "limit")]  # fmt: skip


@pytest.mark.parametrize(("query", "field"), BAD_QUERIES)
async def test_list_purchases_bad_query_is_400(http, sessionmaker, query, field):
    reseller = await new_reseller(sessionmaker)
    response = await http.get("/api/v1/purchases", params=query, headers=reseller.headers)
    assert field in assert_error(response, 400, "invalid_request")["fields"]


# -- verify -------------------------------------------------------------------------------------------
async def test_verify_meter_and_smartcard(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    meter = await http.post(
        "/api/v1/verify",
        json={"service_id": "ikeja-electric", "customer_number": "1111111111111", "type": "prepaid"},
        headers=reseller.headers,
    )
    assert meter.status_code == 200, meter.text
    body = meter.json()
    assert body["customer_name"] == "TESTMETER1" and body["service_id"] == "ikeja-electric"
    assert body["minimum_amount_kobo"] == 100_000 and body["customer_number"] == "1111111111111"
    card = await http.post(
        "/api/v1/verify",
        json={"service_id": "dstv", "customer_number": "1212121212"},
        headers=reseller.headers,
    )
    assert card.status_code == 200 and card.json()["customer_name"] == "TEST CUSTOMER"
    assert card.json()["renewal_amount_kobo"] > 0


@pytest.mark.parametrize(("body", "field"), [
    ({"service_id": "ikeja-electric", "customer_number": "1111111111111"}, "type"),
    ({"service_id": "dstv", "customer_number": "9999999999"}, "customer_number"),
    ({"service_id": "mtn", "customer_number": "08011111111"}, "service_id"),
    ({"service_id": "dstv"}, "customer_number"),
    ({"service_id": "dstv", "customer_number": 1212121212}, "customer_number"),
    ({"service_id": "dstv", "customer_number": "1212121212", "extra": 1}, "extra"),
    ([], "body"),
])  # fmt: skip
async def test_verify_bad_input_is_400(http, sessionmaker, body, field):
    reseller = await new_reseller(sessionmaker)
    response = await http.post("/api/v1/verify", json=body, headers=reseller.headers)
    assert field in assert_error(response, 400, "invalid_request")["fields"]


# -- everything else -------------------------------------------------------------------------------------
async def test_unknown_paths_and_methods_answer_in_the_api_shape(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    assert_error(await http.get("/api/v1/nothing-here", headers=reseller.headers), 404, "not_found")
    assert_error(await http.delete("/api/v1/wallet", headers=reseller.headers), 405, "method_not_allowed")


async def test_openapi_documents_v1_with_the_bearer_scheme(http):
    schema = (await http.get("/api/docs/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key (vtu_...)",
        "description": schema["components"]["securitySchemes"]["BearerAuth"]["description"],
    }
    expected = {
        ("/api/v1/wallet", "get"), ("/api/v1/plans", "get"), ("/api/v1/purchases", "post"),
        ("/api/v1/purchases", "get"), ("/api/v1/purchases/{purchase_id}", "get"), ("/api/v1/verify", "post"),
    }  # fmt: skip
    for path, method in expected:
        operation = schema["paths"][path][method]
        assert operation["security"] == [{"BearerAuth": []}], (path, method)
        assert "401" in operation["responses"] and "429" in operation["responses"]
        assert operation["responses"]["401"]["content"]["application/json"]["examples"]
    post = schema["paths"]["/api/v1/purchases"]["post"]
    assert set(post["responses"]) >= {"201", "400", "402", "409"}
    assert post["requestBody"]["content"]["application/json"]["examples"]["airtime"]["value"]["amount_kobo"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in post["parameters"])
    assert (await http.get("/api/docs")).status_code == 200


async def test_new_key_for_the_fixture_helper_is_usable(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    second = await new_key(sessionmaker, reseller.user_id, name="second")
    response = await http.get("/api/v1/wallet", headers={"Authorization": f"bearer {second.secret}"})
    assert response.status_code == 200
