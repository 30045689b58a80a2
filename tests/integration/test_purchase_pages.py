"""Customer purchase pages end to end: real forms (CSRF, hidden idempotency key) posted to the in-process app
on real PostgreSQL + Redis, sold by the app's own provider (the deterministic stub: 08011111111 delivers,
201000000000 stays pending, other numbers fail). Every money test asserts the wallet and reconciles."""

from __future__ import annotations

import asyncio
import gzip
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.accounts.passwords import hash_password
from app.core.templating import lagos_time
from app.vtu import pages
from app.vtu.models import FAILED, PENDING, SUCCESSFUL, Purchase
from app.vtu.orders import PurchaseRequest
from app.vtu.plans import sync_plans
from app.vtu.providers import ProviderError, StubProvider
from app.vtu.providers.stub import DELIVERED_PHONE, PENDING_PHONE, POSTPAID_METER, PREPAID_METER, SMARTCARD
from app.vtu.runtime import get_vtu
from tests.factories import PASSWORD, create_user
from tests.helpers import log_in
from tests.integration.purchase_fixtures import Buyer, assert_reconciled, fund_wallet, money

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
RECEIPT = re.compile(r"^/purchases/([0-9a-f-]{36})$")
PIN = "2580"  # every test customer's transaction PIN
FAILING_PHONE = "08031234567"  # a valid Nigerian number the stub refuses (code 016)


# -- helpers ---------------------------------------------------------------------------------------------
async def customer(
    client: httpx.AsyncClient, db: Any, sessionmaker: Any, *, fund_kobo: int = 0, with_pin: bool = True
) -> Any:
    """A real customer (sign-up service) with transaction PIN `PIN`, funded, logged in on `client`."""
    user = await create_user(db)
    user.pin_hash = hash_password(PIN) if with_pin else None
    await db.commit()
    if fund_kobo:
        await fund_wallet(sessionmaker, user.id, fund_kobo)
    response = await log_in(client, user.email, PASSWORD)
    assert response.status_code in (200, 303), response.text
    return user


async def seed_plans(sessionmaker: Any, *service_ids: str) -> None:
    """The plans table as a plan sync from the stub provider leaves it."""
    for service_id in service_ids:
        async with sessionmaker() as session:
            await sync_plans(session, StubProvider(), service_id)


async def open_form(client: httpx.AsyncClient, path: str) -> dict[str, str]:
    """GET a buy page like a browser: its CSRF token and the idempotency key it was rendered with, plus the
    transaction PIN a customer types."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    csrf, key = CSRF.search(page.text), KEY.search(page.text)
    assert csrf and key, f"{path} has no CSRF token or idempotency key"
    return {"_csrf_token": csrf.group(1), "idempotency_key": key.group(1), "pin": PIN}


async def submit(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    hidden = await open_form(client, path)
    return await client.post(path, data={**hidden, **data}, follow_redirects=False)


def receipt_id(response: httpx.Response) -> uuid.UUID:
    assert response.status_code == 303, (response.status_code, response.text[:2000])
    match = RECEIPT.match(response.headers["location"])
    assert match, response.headers["location"]
    return uuid.UUID(match.group(1))


async def purchases(sessionmaker: Any) -> list[Purchase]:
    async with sessionmaker() as session:
        return list((await session.execute(select(Purchase).order_by(Purchase.created_at))).scalars())


async def purchase_count(sessionmaker: Any) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(Purchase))).scalar_one())


async def wallet(sessionmaker: Any, user_id: uuid.UUID) -> int:
    return (await money(sessionmaker, user_id, "stub")).wallet


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', html)
    assert match, f"no error shown on {field}"
    return match.group(1)


AIRTIME = {"service_id": "mtn", "phone": DELIVERED_PHONE, "amount": "500"}


# -- the four products, end to end --------------------------------------------------------------------------
async def test_airtime_bought_through_the_form(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    page = await client.get("/buy/airtime")
    assert page.status_code == 200
    assert re.search(r'id="wallet-balance"[^>]*>₦5,000.00<', page.text)
    for network in ("mtn", "glo", "airtel", "etisalat"):
        assert f'name="service_id" value="{network}"' in page.text
    assert 'href="/wallet/fund"' in page.text

    response = await submit(client, "/buy/airtime", AIRTIME)
    purchase_id = receipt_id(response)

    assert await wallet(sessionmaker, user.id) == 450_000
    [row] = await purchases(sessionmaker)
    assert (row.id, row.status, row.amount_kobo, row.recipient, row.channel) == (
        purchase_id,
        SUCCESSFUL,
        50_000,
        DELIVERED_PHONE,
        "web",
    )
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert receipt.status_code == 200
    assert 'id="purchase-status">Successful<' in receipt.text
    assert "MTN Airtime ₦500.00" in receipt.text and DELIVERED_PHONE in receipt.text
    assert re.search(r'id="amount-charged">₦500.00<', receipt.text)
    assert f'id="reference">{row.request_id}<' in receipt.text
    assert f"{lagos_time(row.created_at)} WAT" in receipt.text  # Africa/Lagos time
    assert "every 5s" not in receipt.text  # final: no polling
    await assert_reconciled(sessionmaker)


async def test_data_plans_load_per_network_and_a_bundle_is_bought(client, db, sessionmaker):
    await seed_plans(sessionmaker, "mtn-data", "glo-data")
    user = await customer(client, db, sessionmaker, fund_kobo=200_000)
    page = await client.get("/buy/data", params={"phone": "08031234567"})
    assert page.status_code == 200
    assert 'hx-get="/buy/data/plans"' in page.text and 'hx-target="#plans"' in page.text
    assert "MTN 1GB - 1 Day" in page.text  # the number's network's plans are there without a round trip

    partial = await client.get(
        "/buy/data/plans", params={"service_id": "glo-data"}, headers={"HX-Request": "true"}
    )
    assert partial.status_code == 200
    assert "<html" not in partial.text  # a fragment for #plans
    assert "Glo 1.5GB - 1 Day" in partial.text and "₦300.00" in partial.text and "MTN" not in partial.text
    empty = await client.get("/buy/data/plans", params={"service_id": "airtel-data"})
    assert "No data plans for this network right now" in empty.text

    response = await submit(
        client,
        "/buy/data",
        {"service_id": "mtn-data", "variation_code": "mtn-1gb-1day", "phone": DELIVERED_PHONE},
    )
    purchase_id = receipt_id(response)
    assert await wallet(sessionmaker, user.id) == 200_000 - 35_000
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert 'id="purchase-status">Successful<' in receipt.text and "MTN 1GB - 1 Day" in receipt.text
    await assert_reconciled(sessionmaker)


async def test_electricity_meter_verified_then_paid_with_token_on_the_receipt(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=300_000)
    hidden = await open_form(client, "/buy/electricity")
    verified = await client.post(
        "/buy/electricity/verify",
        data={
            **hidden,
            "service_id": "ikeja-electric",
            "meter_type": "prepaid",
            "meter_number": PREPAID_METER,
        },
        headers={"HX-Request": "true"},
    )
    assert verified.status_code == 200
    assert "TESTMETER1" in verified.text and "ABULE - EGBA BU ABULE" in verified.text
    assert "Minimum purchase: ₦1,000.00" in verified.text
    assert await purchase_count(sessionmaker) == 0 and await wallet(sessionmaker, user.id) == 300_000

    response = await client.post(
        "/buy/electricity",
        data={
            **hidden,
            "service_id": "ikeja-electric",
            "meter_type": "prepaid",
            "meter_number": PREPAID_METER,
            "amount": "1,500",
            "phone": DELIVERED_PHONE,
        },
        follow_redirects=False,
    )
    purchase_id = receipt_id(response)
    assert await wallet(sessionmaker, user.id) == 150_000
    [row] = await purchases(sessionmaker)
    assert row.status == SUCCESSFUL and row.customer_name == "TESTMETER1" and row.token
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert 'id="purchase-status">Successful<' in receipt.text
    assert f'<p class="token code" id="token">{row.token}</p>' in receipt.text
    assert f'data-copy="{row.token}"' in receipt.text  # the copy button
    assert "TESTMETER1" in receipt.text and PREPAID_METER in receipt.text
    again = re.search(r'href="([^"]+)" id="buy-again">Buy again<', receipt.text)
    assert again
    form = await client.get(again.group(1).replace("&amp;", "&"))
    assert 'name="meter_type" value="prepaid" checked' in form.text and 'value="1500"' in form.text
    assert f'value="{PREPAID_METER}"' in form.text and '<option value="ikeja-electric" selected>' in form.text
    await assert_reconciled(sessionmaker)


async def test_postpaid_bill_is_paid_without_a_token(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=300_000)
    response = await submit(
        client,
        "/buy/electricity",
        {
            "service_id": "eko-electric",
            "meter_type": "postpaid",
            "meter_number": POSTPAID_METER,
            "amount": "2000",
            "phone": DELIVERED_PHONE,
        },
    )
    purchase_id = receipt_id(response)
    assert await wallet(sessionmaker, user.id) == 100_000
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert 'id="purchase-status">Successful<' in receipt.text and 'id="token"' not in receipt.text
    await assert_reconciled(sessionmaker)


async def test_cable_smartcard_verified_then_bouquet_paid(client, db, sessionmaker):
    await seed_plans(sessionmaker, "dstv", "startimes")
    user = await customer(client, db, sessionmaker, fund_kobo=1_000_000)
    page = await client.get("/buy/cable")
    assert "DStv Padi" in page.text and 'name="subscription_type" value="renew"' in page.text
    startimes = await client.get("/buy/cable/plans", params={"service_id": "startimes"})
    assert "StarTimes Nova" in startimes.text and "subscription_type" not in startimes.text  # takes none
    assert '<div id="customer" aria-live="polite" hx-swap-oob="true"></div>' in startimes.text  # stale check

    hidden = await open_form(client, "/buy/cable")
    verified = await client.post(
        "/buy/cable/verify", data={**hidden, "service_id": "dstv", "smartcard_number": SMARTCARD}
    )
    assert verified.status_code == 200
    assert "TEST CUSTOMER" in verified.text and "Current bouquet: DStv Compact" in verified.text
    assert "renewal ₦19,000.00" in verified.text

    response = await client.post(
        "/buy/cable",
        data={
            **hidden,
            "service_id": "dstv",
            "smartcard_number": SMARTCARD,
            "subscription_type": "change",
            "variation_code": "dstv-padi",
            "phone": DELIVERED_PHONE,
        },
        follow_redirects=False,
    )
    purchase_id = receipt_id(response)
    assert await wallet(sessionmaker, user.id) == 1_000_000 - 440_000
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert 'id="purchase-status">Successful<' in receipt.text and "DStv Padi" in receipt.text
    assert "TEST CUSTOMER" in receipt.text and SMARTCARD in receipt.text
    await assert_reconciled(sessionmaker)


# -- outcomes: failed and pending ---------------------------------------------------------------------------
async def test_failed_purchase_shows_failed_and_the_wallet_is_refunded(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=100_000)
    response = await submit(client, "/buy/airtime", {**AIRTIME, "phone": FAILING_PHONE})
    purchase_id = receipt_id(response)
    [row] = await purchases(sessionmaker)
    assert row.status == FAILED
    balances = await money(sessionmaker, user.id, "stub")
    assert balances.wallet == 100_000 and balances.in_flight == 0
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert 'id="purchase-status">Failed<' in receipt.text
    assert "refunded to your wallet" in receipt.text and "every 5s" not in receipt.text
    assert "You were not charged" in receipt.text  # failed and refunded: true
    # "Try again" opens a fresh form (new key) with the same details.
    again = re.search(r'href="([^"]+)" id="buy-again">Try again<', receipt.text)
    assert again
    retry = await client.get(again.group(1).replace("&amp;", "&"))
    assert retry.status_code == 200
    assert f'value="{FAILING_PHONE}"' in retry.text and 'value="500"' in retry.text
    assert 'name="service_id" value="mtn" checked' in retry.text
    assert KEY.search(retry.text).group(1) != row.idempotency_key
    await assert_reconciled(sessionmaker)


async def test_pending_receipt_polls_until_the_purchase_settles(app, client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=100_000)
    purchase_id = receipt_id(await submit(client, "/buy/airtime", {**AIRTIME, "phone": PENDING_PHONE}))
    [row] = await purchases(sessionmaker)
    assert row.status == PENDING
    balances = await money(sessionmaker, user.id, "stub")
    assert balances.wallet == 50_000 and balances.in_flight == 50_000  # held, not lost

    receipt = await client.get(f"/purchases/{purchase_id}")
    assert 'id="purchase-status">Pending<' in receipt.text
    assert "you'll not be charged twice" in receipt.text.replace("&#39;", "'").lower()
    assert "refunded automatically" in receipt.text
    assert "not charged" not in receipt.text  # money moved: never claim otherwise while pending
    polling = f'hx-get="/purchases/{purchase_id}/status" hx-trigger="every 5s" hx-swap="outerHTML"'
    assert polling in receipt.text
    partial = await client.get(f"/purchases/{purchase_id}/status", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.text and polling in partial.text

    # The worker's requery settles it (the stub delivers the pending number on requery): polling stops.
    runtime = await get_vtu(app)
    settled = await runtime.purchases.requery(purchase_id, source="test", attempt=1)
    assert settled is not None and settled.status == SUCCESSFUL
    final = await client.get(f"/purchases/{purchase_id}/status", headers={"HX-Request": "true"})
    assert 'id="purchase-status">Successful<' in final.text and "hx-trigger" not in final.text
    balances = await money(sessionmaker, user.id, "stub")
    assert balances.wallet == 50_000 and balances.in_flight == 0
    await assert_reconciled(sessionmaker)


# -- refused requests: 4xx, the customer's values kept, nothing written -------------------------------------
@pytest.mark.parametrize(
    ("path", "data", "field", "message"),
    [
        ("/buy/airtime", {**AIRTIME, "phone": "12345"}, "phone", "Enter a Nigerian mobile number"),
        ("/buy/airtime", {**AIRTIME, "amount": "50.5"}, "amount", "whole naira only"),
        ("/buy/airtime", {**AIRTIME, "amount": "abc"}, "amount", "digits only"),
        ("/buy/airtime", {**AIRTIME, "amount": "20"}, "amount", "between ₦50 and ₦50,000"),
        ("/buy/airtime", {**AIRTIME, "amount": "50001"}, "amount", "between ₦50 and ₦50,000"),
        ("/buy/airtime", {**AIRTIME, "amount": ""}, "amount", "Enter an amount"),
        ("/buy/airtime", {**AIRTIME, "service_id": "dstv"}, "service_id", "Choose a network"),
        ("/buy/data", {"service_id": "mtn-data", "variation_code": "mtn-999gb", "phone": DELIVERED_PHONE},
         "variation_code", "Unknown or unavailable plan"),
        ("/buy/data", {"service_id": "mtn-data", "variation_code": "", "phone": DELIVERED_PHONE},
         "variation_code", "Choose a data plan"),
        ("/buy/electricity", {"service_id": "ikeja-electric", "meter_type": "prepaid",
                              "meter_number": PREPAID_METER, "amount": "600", "phone": DELIVERED_PHONE},
         "amount", "The minimum for this meter is ₦1,000.00"),
        ("/buy/electricity", {"service_id": "", "meter_type": "prepaid", "meter_number": "12",
                              "amount": "1000", "phone": DELIVERED_PHONE},
         "service_id", "Choose your electricity company"),
        ("/buy/cable", {"service_id": "dstv", "smartcard_number": SMARTCARD, "subscription_type": "change",
                        "variation_code": "", "phone": DELIVERED_PHONE},
         "variation_code", "Choose a bouquet"),
    ],
    ids=["bad-phone", "kobo", "letters", "too-small", "too-large", "empty-amount", "foreign-service",
         "unknown-plan", "no-plan", "below-meter-minimum", "no-disco", "no-bouquet"],
)  # fmt: skip
async def test_invalid_input_is_400_with_the_field_error_and_nothing_written(
    client, db, sessionmaker, path, data, field, message
):
    await seed_plans(sessionmaker, "mtn-data", "dstv")
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    response = await submit(client, path, data)
    assert response.status_code == 400, response.text[:2000]
    assert message in field_error(response.text, field)
    assert 'id="form-alert"' in response.text and "Nothing was charged" in response.text
    for name, value in data.items():  # what the customer typed is still there
        if value and name not in ("service_id", "variation_code", "meter_type", "subscription_type"):
            assert f'value="{value}"' in response.text, name
    assert KEY.search(response.text)  # and the form can be sent again
    assert await purchase_count(sessionmaker) == 0
    assert await wallet(sessionmaker, user.id) == 500_000


async def test_several_problems_are_reported_together(client, db, sessionmaker):
    await customer(client, db, sessionmaker, fund_kobo=500_000)
    response = await submit(client, "/buy/airtime", {"service_id": "mtn", "phone": "0801", "amount": "5.25"})
    assert response.status_code == 400
    assert "Nigerian mobile number" in field_error(response.text, "phone")
    assert "whole naira" in field_error(response.text, "amount")
    no_disco = await submit(
        client,
        "/buy/electricity",
        {"service_id": "", "meter_type": "prepaid", "meter_number": "12", "amount": "x", "phone": "1"},
    )
    assert no_disco.status_code == 400
    for name in ("service_id", "meter_number", "amount", "phone"):
        field_error(no_disco.text, name)
    assert await purchase_count(sessionmaker) == 0


async def test_insufficient_funds_names_price_and_balance_and_debits_nothing(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=10_000)
    response = await submit(client, "/buy/airtime", AIRTIME)
    assert response.status_code == 402
    assert "Insufficient balance: this costs ₦500.00, your wallet has ₦100.00" in response.text
    assert re.search(r'id="form-alert">[^<]*<a href="/wallet/fund">Fund wallet</a>', response.text)
    assert f'value="{DELIVERED_PHONE}"' in response.text and 'value="500"' in response.text
    assert await purchase_count(sessionmaker) == 0
    assert await wallet(sessionmaker, user.id) == 10_000
    await assert_reconciled(sessionmaker)


async def test_meter_checks_are_limited_per_customer_per_minute(app, client, db, sessionmaker):
    import time

    await customer(client, db, sessionmaker)
    limit = (await get_vtu(app)).config.verify_per_minute
    assert limit > 0
    if time.time() % 60 > 50:  # the counter is per clock minute: start the burst in a fresh one
        await asyncio.sleep(61 - time.time() % 60)
    hidden = await open_form(client, "/buy/electricity")
    data = {**hidden, "service_id": "ikeja-electric", "meter_type": "prepaid", "meter_number": PREPAID_METER}
    answers = [await client.post("/buy/electricity/verify", data=data) for _ in range(limit + 2)]
    assert all(a.status_code == 200 for a in answers)
    assert all("TESTMETER1" in a.text for a in answers[:limit])
    assert all("Too many checks" in a.text and "TESTMETER1" not in a.text for a in answers[limit:])
    assert await purchase_count(sessionmaker) == 0


async def test_unknown_meter_is_shown_on_the_meter_field(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    data = {
        "service_id": "ikeja-electric",
        "meter_type": "prepaid",
        "meter_number": "1234567890123",
        "amount": "1000",
        "phone": DELIVERED_PHONE,
    }
    hidden = await open_form(client, "/buy/electricity")
    verify = await client.post("/buy/electricity/verify", data={**hidden, **data})
    assert verify.status_code == 200 and "not correct" in verify.text
    response = await client.post("/buy/electricity", data={**hidden, **data}, follow_redirects=False)
    assert response.status_code == 400
    assert "not correct" in field_error(response.text, "meter_number")
    card = await submit(
        client,
        "/buy/cable",
        {
            "service_id": "gotv",
            "smartcard_number": "9999999999",
            "subscription_type": "renew",
            "phone": DELIVERED_PHONE,
        },
    )
    assert card.status_code == 400 and "not correct" in field_error(card.text, "smartcard_number")
    assert await purchase_count(sessionmaker) == 0
    assert await wallet(sessionmaker, user.id) == 500_000


async def test_provider_unavailable_is_a_friendly_retry_message(app, client, db, sessionmaker, monkeypatch):
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    runtime = await get_vtu(app)

    def down(service_id: str) -> Any:
        raise ProviderError("VTpass credentials missing", staff_alert="credentials")

    monkeypatch.setattr(runtime.providers, "for_service", down)
    response = await submit(client, "/buy/airtime", AIRTIME)
    assert response.status_code == 503
    assert "try again shortly" in response.text and "You were not charged" in response.text
    assert f'value="{DELIVERED_PHONE}"' in response.text
    assert await purchase_count(sessionmaker) == 0
    assert await wallet(sessionmaker, user.id) == 500_000


async def test_post_without_csrf_token_is_refused(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    hidden = await open_form(client, "/buy/airtime")
    response = await client.post(
        "/buy/airtime", data={**AIRTIME, "idempotency_key": hidden["idempotency_key"]}, follow_redirects=False
    )
    assert response.status_code == 403
    missing_key = await client.post(
        "/buy/airtime", data={**AIRTIME, "_csrf_token": hidden["_csrf_token"]}, follow_redirects=False
    )
    assert missing_key.status_code == 400 and "out of date" in missing_key.text
    assert await purchase_count(sessionmaker) == 0
    assert await wallet(sessionmaker, user.id) == 500_000


# -- idempotency ---------------------------------------------------------------------------------------------
async def test_ten_concurrent_submissions_of_one_form_buy_once(app, client, db, sessionmaker, make_client):
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    form = await open_form(client, "/buy/airtime")  # the one rendered form (one key) ...
    browsers = [make_client() for _ in range(10)]  # ... sent from ten connections at once
    try:
        tokens = []
        for browser in browsers:
            await log_in(browser, user.email, PASSWORD)
            tokens.append((await open_form(browser, "/buy/airtime"))["_csrf_token"])

        async def send(browser: httpx.AsyncClient, token: str) -> httpx.Response:
            data = {**AIRTIME, "idempotency_key": form["idempotency_key"], "_csrf_token": token, "pin": PIN}
            return await browser.post("/buy/airtime", data=data, follow_redirects=False)

        responses = await asyncio.gather(*(send(b, t) for b, t in zip(browsers, tokens, strict=True)))
    finally:
        for browser in browsers:
            await browser.aclose()
    ids = {receipt_id(r) for r in responses}  # every one is a 303 to ...
    assert len(ids) == 1  # ... the same receipt
    [row] = await purchases(sessionmaker)
    assert row.id in ids and row.status == SUCCESSFUL and row.idempotency_key == form["idempotency_key"]
    assert await wallet(sessionmaker, user.id) == 450_000  # one debit
    # A late resubmit (the browser's "confirm form resubmission") lands on the same receipt too.
    again = await client.post("/buy/airtime", data={**AIRTIME, **form}, follow_redirects=False)
    assert receipt_id(again) == row.id
    assert await purchase_count(sessionmaker) == 1 and await wallet(sessionmaker, user.id) == 450_000
    await assert_reconciled(sessionmaker)


async def test_a_used_form_edited_after_going_back_gets_a_fresh_key(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    form = await open_form(client, "/buy/airtime")
    receipt_id(await client.post("/buy/airtime", data={**AIRTIME, **form}, follow_redirects=False))
    edited = await client.post(
        "/buy/airtime", data={**AIRTIME, "amount": "1000", **form}, follow_redirects=False
    )
    assert edited.status_code == 409
    assert "already used for a different purchase" in edited.text
    fresh = KEY.search(edited.text)
    assert fresh and fresh.group(1) != form["idempotency_key"]
    assert await purchase_count(sessionmaker) == 1 and await wallet(sessionmaker, user.id) == 450_000
    # Tapping again on the re-rendered form is a new, deliberate purchase.
    again = await client.post(
        "/buy/airtime",
        data={**AIRTIME, "amount": "1000", **form, "idempotency_key": fresh.group(1)},
        follow_redirects=False,
    )
    receipt_id(again)
    assert await purchase_count(sessionmaker) == 2 and await wallet(sessionmaker, user.id) == 350_000
    await assert_reconciled(sessionmaker)


# -- transaction PIN ---------------------------------------------------------------------------------------
async def test_without_a_pin_the_form_asks_to_set_one_and_buys_nothing(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=500_000, with_pin=False)
    page = await client.get("/buy/airtime")
    # chosen on the form itself: test_buy_first_pin.py
    assert 'id="pin-needed"' in page.text and 'name="new_pin"' in page.text
    assert 'name="pin"' not in page.text
    response = await submit(client, "/buy/airtime", AIRTIME)  # a form without the first-PIN fields
    assert response.status_code == 403 and "Set your transaction PIN first" in response.text
    assert f'value="{DELIVERED_PHONE}"' in response.text  # what they typed is kept
    assert await purchase_count(sessionmaker) == 0 and await wallet(sessionmaker, user.id) == 500_000


async def test_a_wrong_pin_buys_nothing_and_too_many_lock_it(client, db, sessionmaker, settings):
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    wrong = await submit(client, "/buy/airtime", {**AIRTIME, "pin": "9753"})
    assert wrong.status_code == 400
    assert "That PIN is not correct" in field_error(wrong.text, "pin")
    assert 'name="pin" type="password"' in wrong.text and "9753" not in wrong.text  # never echoed back
    empty = await submit(client, "/buy/airtime", {**AIRTIME, "pin": ""})
    assert empty.status_code == 400 and "Enter your transaction PIN" in field_error(empty.text, "pin")
    for _ in range(settings.pin_max_failures - 1):
        last = await submit(client, "/buy/airtime", {**AIRTIME, "pin": "1111"})
    assert last.status_code == 429 and "locked" in field_error(last.text, "pin")
    right = await submit(client, "/buy/airtime", AIRTIME)  # locked: even the right PIN is refused
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
    assert await purchase_count(sessionmaker) == 0 and await wallet(sessionmaker, user.id) == 500_000


# -- receipts, history, access -----------------------------------------------------------------------------
async def test_another_customers_receipt_is_404(client, db, sessionmaker, make_client):
    await customer(client, db, sessionmaker, fund_kobo=100_000)
    purchase_id = receipt_id(await submit(client, "/buy/airtime", AIRTIME))
    async with make_client() as other:
        await customer(other, db, sessionmaker)
        assert (await other.get(f"/purchases/{purchase_id}")).status_code == 404
        assert (await other.get(f"/purchases/{purchase_id}/status")).status_code == 404
        assert (await other.get("/purchases/not-a-uuid")).status_code == 404
        assert (await other.get(f"/purchases/{uuid.uuid4()}")).status_code == 404
        history = await other.get("/purchases")
        assert str(purchase_id) not in history.text and "You haven't bought anything yet" in history.text
    assert (await client.get(f"/purchases/{purchase_id}")).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/buy/airtime",
        "/buy/data",
        "/buy/electricity",
        "/buy/cable",
        "/purchases",
        "/purchases/0190f3a4-0000-7000-8000-000000000000",
    ],
)
async def test_anonymous_visitors_are_sent_to_log_in(client, path):
    response = await client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2F")


async def test_history_newest_first_with_status_filter_and_older_pages(
    app, client, db, sessionmaker, monkeypatch
):
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    runtime = await get_vtu(app)
    buyer = Buyer(user.id)
    phones = [DELIVERED_PHONE, FAILING_PHONE, PENDING_PHONE]
    made = []
    for n, phone in enumerate(phones):
        request = PurchaseRequest("glo", phone=phone, amount_kobo=10_000 * (n + 1))
        made.append(await runtime.purchases.buy(buyer, request, idempotency_key=f"history-{n}"))
    assert [p.status for p in made] == [SUCCESSFUL, FAILED, PENDING]

    page = await client.get("/purchases")
    assert page.status_code == 200
    positions = [page.text.index(f"/purchases/{p.id}") for p in reversed(made)]
    assert positions == sorted(positions)  # newest first
    for label in ("Successful", "Failed", "Pending"):
        assert f'class="badge badge-{label.lower()}">{label}<' in page.text
    assert 'id="older"' not in page.text

    failed = await client.get("/purchases", params={"status": "failed"})
    assert f"/purchases/{made[1].id}" in failed.text
    assert f"/purchases/{made[0].id}" not in failed.text and f"/purchases/{made[2].id}" not in failed.text

    monkeypatch.setattr(pages, "HISTORY_PAGE", 2)
    first = await client.get("/purchases")
    assert f"/purchases/{made[2].id}" in first.text and f"/purchases/{made[1].id}" in first.text
    assert f"/purchases/{made[0].id}" not in first.text
    older = re.search(r'href="([^"]+)" id="older"', first.text)
    assert older
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert f"/purchases/{made[0].id}" in second.text and f"/purchases/{made[1].id}" not in second.text
    assert 'id="older"' not in second.text
    assert (await client.get("/purchases", params={"before": "garbage", "status": "nope"})).status_code == 200
    await assert_reconciled(sessionmaker)


async def test_history_pages_purchases_made_in_the_same_microsecond_exactly_once(
    app, client, db, sessionmaker, monkeypatch
):
    from sqlalchemy import text

    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    runtime = await get_vtu(app)
    made = [
        await runtime.purchases.buy(
            Buyer(user.id),
            PurchaseRequest("mtn", phone=DELIVERED_PHONE, amount_kobo=10_000),
            idempotency_key=f"t{n}",
        )
        for n in range(7)
    ]
    async with sessionmaker() as session, session.begin():  # a burst of API purchases can share a timestamp
        await session.execute(text("UPDATE purchases SET created_at = '2026-12-01 12:00:00+00'"))
    monkeypatch.setattr(pages, "HISTORY_PAGE", 3)
    seen: list[str] = []
    url: str | None = "/purchases"
    while url:
        page = await client.get(url)
        assert page.status_code == 200
        seen += re.findall(r'href="/purchases/([0-9a-f-]{36})"', page.text)
        older = re.search(r'href="([^"]+)" id="older"', page.text)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert sorted(seen) == sorted(str(p.id) for p in made)  # every one, once


async def test_dashboard_tiles_link_to_the_buy_pages_and_history(client, db, sessionmaker):
    await customer(client, db, sessionmaker)
    page = await client.get("/dashboard")
    for path in ("/buy/airtime", "/buy/data", "/buy/electricity", "/buy/cable", "/purchases"):
        assert f'href="{path}"' in page.text


async def test_buy_pages_stay_light_on_mobile_data(client, db, sessionmaker):
    """HTML + CSS + JS of each buy page, gzip-compressed as served: under the site's 40 KB budget."""
    await seed_plans(sessionmaker, "mtn-data", "dstv")
    await customer(client, db, sessionmaker)
    for path in ("/buy/airtime", "/buy/data", "/buy/electricity", "/buy/cable"):
        page = await client.get(path)
        total = len(gzip.compress(page.content))
        for url in re.findall(r'(?:href|src)="(/static/[^"]+\.(?:css|js))"', page.text):
            asset = await client.get(url, headers={"accept-encoding": "gzip"})
            total += int(asset.headers["content-length"])
        assert total < 40 * 1024, f"{path}: {total} bytes"
