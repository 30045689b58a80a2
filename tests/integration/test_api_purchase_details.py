"""Issue 13 additions to the reseller API, over real HTTP against the served app (stub provider, real
PostgreSQL, Redis, ledger and SAQ worker): the purchase object's new fields (delivered airtime, a data plan,
an electricity token, a failed purchase), the 402's balance and charge, GET /api/v1/services, GET
/api/v1/callbacks (only the caller's deliveries), the guide page and the schema that documents them all."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time

import pytest

from app.api import callbacks
from app.api.schemas import FAILURE_REASONS, failure_reason
from app.ledger.queries import wallet_balance
from app.vtu.config import get_vtu_config
from app.vtu.plans import sync_plans
from app.vtu.providers.catalog import SERVICES
from app.vtu.providers.stub import StubProvider
from app.vtu.views import SELECT_PURCHASE, PurchaseView, purchases_table
from tests.integration import api_fixtures
from tests.integration import test_api_callbacks as callback_tests
from tests.integration.api_fixtures import DELIVERED, FAILING, airtime, new_reseller, purchase_count
from tests.integration.test_api_callbacks import wait_for

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http
receiver = callback_tests.receiver  # a receiver server and a SAQ worker as `vtu workers run` builds it
worker = callback_tests.worker

NEW_KEYS = {"face_value_kobo", "charged_kobo", "recipient", "product", "failure_reason", "completed_at",
            "units", "pins"}  # fmt: skip
METER = "1111111111111"


def _when(value: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


async def _balance(sessionmaker, user_id) -> int:
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


async def _buy_and_read(http, reseller, body: dict) -> dict:
    """Buy, then check that the replay, GET /purchases/{id} and the list all show the same object."""
    headers = reseller.buy_headers()
    made = await http.post("/api/v1/purchases", json=body, headers=headers)
    assert made.status_code == 201, made.text
    purchase = made.json()
    assert set(purchase) >= NEW_KEYS
    replay = await http.post("/api/v1/purchases", json=body, headers=headers)
    assert replay.status_code == 201 and replay.json() == purchase
    one = await http.get(f"/api/v1/purchases/{purchase['id']}", headers=reseller.headers)
    assert one.json() == purchase
    listed = (await http.get("/api/v1/purchases", headers=reseller.headers)).json()
    assert purchase in listed
    assert purchase["charged_kobo"] == purchase["amount_kobo"]
    assert purchase["pins"] is None  # exam PINs come later: the key is there, null
    return purchase


async def test_delivered_airtime(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    before = time.time()
    p = await _buy_and_read(http, reseller, airtime(DELIVERED, amount_kobo=10_000))
    assert p["status"] == "successful"
    assert p["face_value_kobo"] == 10_000 and p["charged_kobo"] == 9_800  # the reseller pays 2% below face
    assert p["recipient"] == DELIVERED
    assert p["product"]["service_id"] == "mtn" and p["product"]["variation_code"] is None
    assert p["product"]["name"].startswith("MTN Airtime")
    assert p["failure_reason"] is None and p["units"] is None and p["token"] is None
    assert _when(p["completed_at"]) >= _when(p["created_at"])
    assert _when(p["completed_at"]).timestamp() >= before - 5
    assert await _balance(sessionmaker, reseller.user_id) == 1_000_000 - 9_800


async def test_data_plan(http, sessionmaker):
    async with sessionmaker() as session:
        await sync_plans(session, StubProvider(), "mtn-data")
    reseller = await new_reseller(sessionmaker)
    plans = (await http.get("/api/v1/plans?service_id=mtn-data", headers=reseller.headers)).json()
    plan = next(x for x in plans if x["variation_code"] == "mtn-1gb-1day")
    body = {"service_id": "mtn-data", "phone": DELIVERED, "variation_code": "mtn-1gb-1day"}
    p = await _buy_and_read(http, reseller, body)
    assert p["status"] == "successful"
    assert p["face_value_kobo"] == 35_000  # the plan's face value (N350)
    assert p["charged_kobo"] == plan["price_kobo"] < p["face_value_kobo"]
    assert p["product"] == {"service_id": "mtn-data", "variation_code": "mtn-1gb-1day", "name": plan["name"]}
    assert p["product"]["name"] == "MTN 1GB - 1 Day"
    assert p["recipient"] == DELIVERED and p["failure_reason"] is None and p["units"] is None
    assert p["completed_at"] is not None


async def test_electricity_token(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    body = {"service_id": "ikeja-electric", "meter_number": METER, "meter_type": "prepaid",
            "amount_kobo": 200_000, "phone": DELIVERED}  # fmt: skip
    p = await _buy_and_read(http, reseller, body)
    assert p["status"] == "successful" and p["token"]
    assert p["face_value_kobo"] == 200_000 and p["charged_kobo"] == 200_000  # no discount on electricity
    assert p["recipient"] == METER
    assert p["product"]["service_id"] == "ikeja-electric" and p["product"]["variation_code"] is None
    assert p["product"]["name"].startswith("Ikeja Electric")
    assert p["units"] and p["units"].endswith("kWh")
    assert p["failure_reason"] is None and p["completed_at"] is not None


async def test_failed_purchase_has_a_reason_and_a_completion_time(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    p = await _buy_and_read(http, reseller, airtime(FAILING, amount_kobo=10_000))
    assert p["status"] == "failed"
    assert p["failure_reason"] == "TRANSACTION FAILED"  # the provider's message, without its status tag
    assert p["completed_at"] is not None and _when(p["completed_at"]) >= _when(p["created_at"])
    assert p["recipient"] == FAILING and p["face_value_kobo"] == 10_000 and p["charged_kobo"] == 9_800
    assert p["units"] is None and p["token"] is None
    assert await _balance(sessionmaker, reseller.user_id) == 1_000_000  # refunded


async def test_failure_reason_never_shows_internal_messages(http, sessionmaker):
    """Staff notes, our own float or credentials, exceptions: the customer sees a plain sentence."""
    reseller = await new_reseller(sessionmaker)
    made = await http.post("/api/v1/purchases", json=airtime(FAILING), headers=reseller.buy_headers())
    purchase_id = made.json()["id"]
    async with sessionmaker() as session:
        row = (await session.execute(SELECT_PURCHASE.where(purchases_table.c.id == purchase_id))).one()
    failed = PurchaseView.from_row(row)
    generic = FAILURE_REASONS["failed"]
    for code, message in [
        (None, "Resolved by staff (ops@example.com): float issue, refunded"),
        ("018", "LOW WALLET BALANCE (failed)"),
        ("087", "INVALID CREDENTIALS"),
        (None, "Not sent to the provider: the purchase took too long to record"),
        ("016", "VTpass code 016"),
        ("016", None),
    ]:
        assert failure_reason(dataclasses.replace(failed, provider_code=code, provider_message=message)) == (
            generic
        ), (code, message)
    reversed_ = dataclasses.replace(
        failed, status="reversed", provider_code="040", provider_message="REVERSED"
    )
    assert failure_reason(reversed_) == "REVERSED"
    assert failure_reason(dataclasses.replace(reversed_, provider_code=None)) == FAILURE_REASONS["reversed"]
    for status in ("pending", "successful"):
        assert failure_reason(dataclasses.replace(failed, status=status)) is None


async def test_insufficient_funds_says_balance_and_charge_and_debits_nothing(http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=20_000)
    body = {"service_id": "ikeja-electric", "meter_number": METER, "meter_type": "prepaid",
            "amount_kobo": 200_000, "phone": DELIVERED}  # fmt: skip
    response = await http.post("/api/v1/purchases", json=body, headers=reseller.buy_headers())
    assert response.status_code == 402, response.text
    got = response.json()
    assert got["error"] == "insufficient_funds" and got["detail"]
    assert got["balance_kobo"] == 20_000 and got["required_kobo"] == 200_000
    assert await _balance(sessionmaker, reseller.user_id) == 20_000
    assert await purchase_count(sessionmaker, reseller.user_id) == 0


async def test_services_list_every_service_with_the_enforced_limits(http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    response = await http.get("/api/v1/services", headers=reseller.headers)
    assert response.status_code == 200
    services = {s["service_id"]: s for s in response.json()}
    assert list(services) == [s.service_id for s in SERVICES]
    config = get_vtu_config()  # what the served app's purchase engine reads
    for service in SERVICES:
        got = services[service.service_id]
        assert got["kind"] == service.kind.value and got["name"] == service.name
        if service.kind.value == "airtime":
            assert (got["min_amount_kobo"], got["max_amount_kobo"]) == (
                config.airtime_min_kobo, config.airtime_max_kobo,
            )  # fmt: skip
        elif service.kind.value == "electricity":
            assert (got["min_amount_kobo"], got["max_amount_kobo"]) == (
                config.electricity_min_kobo, config.electricity_max_kobo,
            )  # fmt: skip
            assert got["meter_types"] == ["prepaid", "postpaid"]
        else:
            assert got["min_amount_kobo"] is None and got["max_amount_kobo"] is None
            assert got["plans"] == f"/api/v1/plans?service_id={service.service_id}"
        if service.kind.value in ("airtime", "electricity"):
            assert got["plans"] is None
        assert got["verify"] is (
            service.kind.value in ("electricity", "cable") or service.service_id == "jamb"
        )
    assert services["etisalat"]["name"] == "9mobile Airtime"
    assert services["dstv"]["subscription_types"] == ["change", "renew"]
    assert services["startimes"]["subscription_types"] is None
    plans = await http.get(services["mtn-data"]["plans"], headers=reseller.headers)
    assert plans.status_code == 200
    assert (await http.get("/api/v1/services")).status_code == 401


async def test_callbacks_show_only_the_callers_deliveries(
    http,
    sessionmaker,
    receiver,
    worker,
    monkeypatch,
):
    recv, url = receiver
    recv.calls.clear()
    recv.statuses[:] = [503]  # the first delivery fails, the retry succeeds
    one = await new_reseller(sessionmaker, callback_url=f"{url}/hook?token=s3cret")
    other = await new_reseller(sessionmaker, callback_url=f"{url}/other")
    ok = (await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=one.buy_headers())).json()
    await wait_for(lambda: len(recv.calls) >= 2)
    failed = (await http.post("/api/v1/purchases", json=airtime(FAILING), headers=one.buy_headers())).json()
    theirs = (
        await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=other.buy_headers())
    ).json()
    await wait_for(lambda: len(recv.calls) >= 4)

    async def listed(reseller, **params) -> list[dict]:
        response = await http.get("/api/v1/callbacks", params=params, headers=reseller.headers)
        assert response.status_code == 200, response.text
        return response.json()

    deadline = time.monotonic() + 10
    while len(mine := await listed(one)) < 2 or any(d["delivered_at"] is None for d in mine):
        assert time.monotonic() < deadline, mine
        await asyncio.sleep(0.1)
    assert [(d["purchase_id"], d["status"]) for d in mine] == [
        (failed["id"], "failed"),
        (ok["id"], "successful"),
    ]  # fmt: skip  newest first
    first = mine[1]
    assert first["attempts"] == 2 and first["last_status_code"] is None and first["last_error"] is None
    assert first["url_host"] == "127.0.0.1"  # the host only: no path, no query (the token stays secret)
    assert "s3cret" not in str(mine)
    assert first["gave_up_at"] is None and first["next_attempt_at"] is None
    assert _when(first["delivered_at"]) <= _when(first["updated_at"])
    assert mine[0]["attempts"] == 1
    assert [d["purchase_id"] for d in await listed(other)] == [theirs["id"]]
    assert len(await listed(one, limit=1)) == 1

    # A receiver that keeps failing: the last answer's status, the error, and when SAQ tries again.
    monkeypatch.setattr(callbacks, "CALLBACK_RETRY_DELAY_SECONDS", 600.0)
    recv.statuses[:] = [502] * 50
    third = (await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=one.buy_headers())).json()
    deadline = time.monotonic() + 15
    while True:
        entry = next((d for d in await listed(one) if d["purchase_id"] == third["id"]), None)
        if entry is not None and entry["next_attempt_at"] is not None:
            break
        assert time.monotonic() < deadline, entry
        await asyncio.sleep(0.1)
    assert entry["last_status_code"] == 502 and entry["last_error"] == "callback URL answered 502"
    assert entry["delivered_at"] is None and entry["gave_up_at"] is None and entry["attempts"] >= 1
    assert _when(entry["next_attempt_at"]) > datetime.datetime.now(datetime.UTC)
    recv.statuses.clear()


@pytest.mark.parametrize("limit", ["0", "101", "ten", "1.5", "-1", ""])  # as GET /purchases: 400
async def test_callbacks_limit_is_strict(http, sessionmaker, limit):
    reseller = await new_reseller(sessionmaker)
    response = await http.get("/api/v1/callbacks", params={"limit": limit}, headers=reseller.headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request" and "limit" in body["fields"]


async def test_guide_page(http):
    response = await http.get("/api/guide")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<h1>Reseller API v1" in page and "<table>" in page
    assert 'href="/api/docs"' in page and 'href="/account/api-keys"' in page
    assert "08011111111" in page and "1111111111111" in page and "1212121212" in page
    assert "08031234567" not in page  # every example uses a number the sandbox delivers
    assert "etisalat" in page and "<script" not in page
    assert "&quot;service_id&quot;:&quot;mtn&quot;" in page  # the curl examples, escaped as text
    assert "GET /api/v1/services" in page and "GET /api/v1/callbacks" in page
    assert "style=" not in page  # the CSP allows no inline style either
    assert "script-src 'self'" in response.headers["content-security-policy"]
    stylesheet = page.split('rel="stylesheet" href="', 1)[1].split('"', 1)[0]
    assert (await http.get(stylesheet)).status_code == 200
    docs = await http.get("/api/docs")
    assert docs.status_code == 200 and "href='/api/guide'" in docs.text and "style=" not in docs.text


async def test_schema_documents_the_additions(http):
    schema = (await http.get("/api/docs/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert "/api/v1/services" in schema["paths"] and "/api/v1/callbacks" in schema["paths"]
    purchase = next(v for k, v in components.items() if k.endswith("PurchaseOut"))
    assert set(purchase["properties"]) >= NEW_KEYS
    assert set(purchase["required"]) >= NEW_KEYS - {"pins"}
    error = next(v for k, v in components.items() if k.endswith("ErrorOut"))
    assert {"balance_kobo", "required_kobo"} <= set(error["properties"])
    paid = schema["paths"]["/api/v1/purchases"]["post"]["responses"]["402"]["content"]["application/json"]
    examples = [e["value"] for e in paid["examples"].values()]
    assert any("balance_kobo" in e and "required_kobo" in e for e in examples)
    services = schema["paths"]["/api/v1/services"]["get"]
    assert services["security"] == [{"BearerAuth": []}]
    callbacks_op = schema["paths"]["/api/v1/callbacks"]["get"]
    assert any(p["name"] == "limit" for p in callbacks_op["parameters"])


async def test_new_endpoints_share_the_rate_limit(api, http, sessionmaker):
    reseller = await new_reseller(sessionmaker)
    with api.limits(api_rate_limit_per_minute=2):
        assert (await http.get("/api/v1/services", headers=reseller.headers)).status_code == 200
        assert (await http.get("/api/v1/callbacks", headers=reseller.headers)).status_code == 200
        limited = await http.get("/api/v1/services", headers=reseller.headers)
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
