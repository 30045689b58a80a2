"""The buy forms' help for a first purchase (issue 13): the network detected from the number (and filled in
by the server when no network was sent), the price before Pay, cable renew vs change, hints written from
the rules, and "Buy again" only on final receipts. Real PostgreSQL + Redis, the stub provider, real forms."""

from __future__ import annotations

import re

from app.accounts.passwords import hash_password
from app.vtu.config import VtuConfig
from app.vtu.models import SUCCESSFUL
from app.vtu.opening import NO_RENEWAL_AMOUNT
from app.vtu.providers.stub import (
    DELIVERED_PHONE,
    DEMO_PHONES,
    NEW_SMARTCARD,
    PENDING_PHONE,
    PREPAID_METER,
    SMARTCARD,
)
from app.vtu.runtime import VtuRuntime, get_vtu
from tests.factories import PASSWORD, create_user
from tests.helpers import log_in
from tests.integration.purchase_fixtures import assert_reconciled, fund_wallet
from tests.integration.test_purchase_pages import (
    PIN,
    customer,
    field_error,
    open_form,
    purchase_count,
    purchases,
    receipt_id,
    seed_plans,
    submit,
    wallet,
)

MTN = DEMO_PHONES["mtn"]
HX = {"HX-Request": "true"}


def checked(html: str, name: str) -> list[str]:
    return re.findall(rf'name="{name}" value="([^"]+)" checked', html)


def pay_line(html: str) -> tuple[str | None, str]:
    """('You pay ...' text or None, the submit button's label)."""
    total = re.search(r'id="pay-total">(.*?)</p>', html, re.S)
    button = re.search(r'id="pay-button">([^<]*)</button>', html)
    assert button, "no submit button"
    text = re.sub(r"<[^>]+>", "", total.group(1)) if total else None
    return text, button.group(1)


# -- network detection -----------------------------------------------------------------------------------
async def test_the_network_endpoint_names_the_numbers_network_in_every_spelling(client, db, sessionmaker):
    await customer(client, db, sessionmaker)
    cases = [
        ("/buy/data/network", "08031234567", "mtn-data", "MTN"),
        ("/buy/data/network", "+2348091234567", "etisalat-data", "9mobile"),
        ("/buy/airtime/network", "2348021234567", "airtel", "Airtel"),
        ("/buy/airtime/network", "0705 123 4567", "glo", "Glo"),
        ("/buy/airtime/network", "07025123456", "mtn", "MTN"),
    ]
    for path, phone, service_id, brand in cases:
        answer = await client.get(path, params={"phone": phone}, headers=HX)
        assert answer.status_code == 200 and "<html" not in answer.text
        assert f'data-detected="{service_id}"' in answer.text, phone
        assert f"Detected: {brand} — ported number? choose the network yourself" in answer.text
    for phone in ("08011111111", "0803", "abc", "", "9" * 500):
        answer = await client.get("/buy/data/network", params={"phone": phone}, headers=HX)
        assert answer.status_code == 200 and "Detected" not in answer.text, phone


async def test_a_fresh_form_picks_the_numbers_network_and_a_different_choice_is_marked_manual(
    client, db, sessionmaker
):
    await seed_plans(sessionmaker, "mtn-data", "glo-data")
    await customer(client, db, sessionmaker)
    page = await client.get("/buy/data", params={"phone": MTN})
    assert checked(page.text, "service_id") == ["mtn-data"]
    assert "MTN 1GB - 1 Day" in page.text and "Detected: MTN" in page.text
    assert "data-network-manual" not in page.text  # detected, not chosen: a new number may change it
    assert 'hx-get="/buy/data/network"' in page.text and "data-detect" in page.text
    # "Buy again" for a ported number: the network the customer chose stays, and the page must not move it.
    ported = await client.get("/buy/data", params={"phone": MTN, "service_id": "glo-data"})
    assert checked(ported.text, "service_id") == ["glo-data"] and "Glo 1.5GB - 1 Day" in ported.text
    assert "data-network-manual" in ported.text
    # No number: nothing is guessed.
    blank = await client.get("/buy/airtime", params={"phone": "08011111111"})
    assert checked(blank.text, "service_id") == [] and "Detected" not in blank.text


async def test_without_javascript_an_empty_network_is_taken_from_the_number(client, db, sessionmaker):
    await seed_plans(sessionmaker, "mtn-data")
    user = await customer(client, db, sessionmaker, fund_kobo=500_000)
    bought = await submit(client, "/buy/airtime", {"phone": MTN, "amount": "200"})  # no service_id at all
    purchase_id = receipt_id(bought)
    [row] = await purchases(sessionmaker)
    assert (row.id, row.service_id, row.status, row.recipient) == (purchase_id, "mtn", SUCCESSFUL, MTN)
    assert await wallet(sessionmaker, user.id) == 480_000

    # Data: the network is found, but a plan of it must still be chosen: the form comes back with its plans.
    again = await submit(client, "/buy/data", {"service_id": "", "phone": MTN, "variation_code": ""})
    assert again.status_code == 400
    assert "Choose a data plan" in field_error(again.text, "variation_code")
    assert checked(again.text, "service_id") == ["mtn-data"] and "MTN 1GB - 1 Day" in again.text
    assert "Detected: MTN" in again.text

    unknown = await submit(client, "/buy/airtime", {"phone": DELIVERED_PHONE, "amount": "200"})
    assert unknown.status_code == 400 and "Choose a network" in field_error(unknown.text, "service_id")
    assert await purchase_count(sessionmaker) == 1 and await wallet(sessionmaker, user.id) == 480_000
    await assert_reconciled(sessionmaker)


# -- the price before Pay --------------------------------------------------------------------------------
async def test_the_price_block_shows_the_buyers_tier_price_and_the_purchase_charges_it(
    client, db, sessionmaker
):
    await seed_plans(sessionmaker, "mtn-data", "dstv")
    user = await create_user(db, tier="reseller")  # resellers get VTU_RESELLER_DISCOUNT_BPS (airtime 2%)
    user.pin_hash = hash_password(PIN)
    await db.commit()
    await fund_wallet(sessionmaker, user.id, 500_000)
    await log_in(client, user.email, PASSWORD)

    page = await client.get("/buy/airtime", params={"phone": MTN})
    assert pay_line(page.text) == (None, "Buy airtime")  # no amount yet
    assert 'hx-get="/buy/airtime/price"' in page.text and 'hx-params="service_id,amount"' in page.text

    price = await client.get(
        "/buy/airtime/price", params={"service_id": "mtn", "amount": "1,000"}, headers=HX
    )
    assert price.status_code == 200 and "<html" not in price.text
    assert pay_line(price.text) == ("You pay ₦980.00 (value ₦1,000.00)", "Pay ₦980")
    for bad in ({"service_id": "mtn", "amount": "20"}, {"service_id": "mtn", "amount": "abc"},
                {"service_id": "dstv", "amount": "1000"}, {}):  # fmt: skip
        refused = await client.get("/buy/airtime/price", params=bad, headers=HX)
        assert refused.status_code == 200 and pay_line(refused.text) == (None, "Buy airtime"), bad

    data = await client.get(
        "/buy/data/price", params={"service_id": "mtn-data", "variation_code": "mtn-1gb-1day"}
    )
    assert pay_line(data.text) == ("You pay ₦346.50 (value ₦350.00)", "Pay ₦346.50")  # data: 1% off
    power = await client.get(
        "/buy/electricity/price",
        params={"service_id": "ikeja-electric", "meter_type": "prepaid", "amount": "1500"},
    )
    assert pay_line(power.text) == ("You pay ₦1,500.00", "Pay ₦1,500")
    cable = await client.get(
        "/buy/cable/price",
        params={"service_id": "dstv", "subscription_type": "change", "variation_code": "dstv-padi"},
    )
    assert pay_line(cable.text) == ("You pay ₦4,400.00", "Pay ₦4,400")

    # The re-rendered form (a wrong PIN here) shows the same price; the purchase charges exactly it.
    hidden = await open_form(client, "/buy/airtime")
    wrong = await client.post(
        "/buy/airtime", data={**hidden, "service_id": "mtn", "phone": MTN, "amount": "1000", "pin": "0000"}
    )
    assert wrong.status_code == 400 and pay_line(wrong.text) == (
        "You pay ₦980.00 (value ₦1,000.00)",
        "Pay ₦980",
    )
    bought = await client.post(
        "/buy/airtime",
        data={**hidden, "service_id": "mtn", "phone": MTN, "amount": "1000"},
        follow_redirects=False,
    )
    receipt_id(bought)
    assert await wallet(sessionmaker, user.id) == 500_000 - 98_000
    await assert_reconciled(sessionmaker)


# -- cable: renew or change -------------------------------------------------------------------------------
async def test_cable_renew_pays_the_renewal_amount_and_change_needs_a_bouquet(client, db, sessionmaker):
    await seed_plans(sessionmaker, "dstv")
    user = await customer(client, db, sessionmaker, fund_kobo=3_000_000)
    page = await client.get("/buy/cable")
    assert checked(page.text, "subscription_type") == []  # an explicit choice, no default
    assert "Renew my current bouquet" in page.text and "Change bouquet" in page.text
    assert "leave the bouquet empty" not in page.text

    hidden = await open_form(client, "/buy/cable")
    verified = await client.post(
        "/buy/cable/verify", data={**hidden, "service_id": "dstv", "smartcard_number": SMARTCARD}
    )
    assert "Current bouquet: DStv Compact" in verified.text and "renewal ₦19,000.00" in verified.text
    assert verified.headers["HX-Trigger-After-Settle"] == "verified"  # the price block asks again
    assert 'name="renewal_kobo" value="1900000"' in verified.text
    assert 'name="renewal_for" value="dstv:1212121212"' in verified.text

    renew = {"service_id": "dstv", "subscription_type": "renew", "smartcard_number": SMARTCARD}
    shown = await client.get("/buy/cable/price", params={**renew, "renewal_kobo": "1900000",
                                                          "renewal_for": f"dstv:{SMARTCARD}"})  # fmt: skip
    assert pay_line(shown.text) == ("You pay ₦19,000.00", "Pay ₦19,000")
    wide_digits = "\uff11\uff19\uff10\uff10"  # full-width "1900": not digits here
    for stale in ({}, {"renewal_kobo": "1900000", "renewal_for": "gotv:1212121212"},
                  {"renewal_kobo": wide_digits, "renewal_for": f"dstv:{SMARTCARD}"}):  # fmt: skip
        unknown = await client.get("/buy/cable/price", params={**renew, **stale})
        assert pay_line(unknown.text) == ("Verify your smartcard to see its renewal amount.", "Pay"), stale

    # No bouquet for change: the field error; no choice at all: the choice's error. Nothing written.
    no_bouquet = await submit(client, "/buy/cable", {**renew, "subscription_type": "change", "phone": MTN})
    assert no_bouquet.status_code == 400 and "Choose a bouquet" in field_error(
        no_bouquet.text, "variation_code"
    )
    no_choice = await submit(client, "/buy/cable", {**renew, "subscription_type": "", "phone": MTN})
    assert no_choice.status_code == 400 and field_error(no_choice.text, "subscription_type")
    # A new decoder has nothing to renew: a clear error, not a charge.
    nothing = await submit(client, "/buy/cable", {**renew, "smartcard_number": NEW_SMARTCARD, "phone": MTN})
    assert nothing.status_code == 400
    assert field_error(nothing.text, "subscription_type") == NO_RENEWAL_AMOUNT.replace("'", "&#39;")
    assert await purchase_count(sessionmaker) == 0

    # Renew with a bouquet still ticked below: the renewal (the card's bouquet at its amount) is bought.
    bought = await submit(client, "/buy/cable", {**renew, "variation_code": "dstv-padi", "phone": MTN})
    receipt_id(bought)
    [row] = await purchases(sessionmaker)
    assert (row.status, row.amount_kobo, row.subscription_type, row.variation_code) == (
        SUCCESSFUL, 1_900_000, "renew", None)  # fmt: skip
    assert "renewal" in row.product_name and "DStv Compact" in row.product_name
    changed = await submit(client, "/buy/cable", {**renew, "subscription_type": "change",
                                                   "variation_code": "dstv-padi", "phone": MTN})  # fmt: skip
    receipt_id(changed)
    assert await wallet(sessionmaker, user.id) == 3_000_000 - 1_900_000 - 440_000
    await assert_reconciled(sessionmaker)


# -- hints written from the rules ------------------------------------------------------------------------
async def test_every_limit_in_a_hint_is_the_configured_rule(app, client, db, sessionmaker, settings):
    """With limits nobody would type by hand, each form's hints say them, and validation enforces them."""
    config = VtuConfig(airtime_min_kobo=7_000, airtime_max_kobo=4_000_000, electricity_min_kobo=120_000,
                       electricity_max_kobo=3_000_000)  # fmt: skip
    original = await get_vtu(app)
    app.state["vtu"] = custom = VtuRuntime(settings, sessionmaker, config=config)
    try:
        await seed_plans(sessionmaker, "dstv")
        await customer(client, db, sessionmaker, fund_kobo=500_000)
        airtime = await client.get("/buy/airtime")
        assert '<p class="hint">₦70 to ₦40,000, whole naira</p>' in airtime.text
        too_small = await submit(client, "/buy/airtime", {"service_id": "mtn", "phone": MTN, "amount": "69"})
        assert field_error(too_small.text, "amount") == "The amount must be between ₦70 and ₦40,000."

        power = await client.get("/buy/electricity")
        assert "₦1,200 to ₦30,000, whole naira. Some meters ask more" in power.text
        assert "₦500" not in power.text
        assert '<p class="hint">11 to 13 digits, on your meter or last token receipt</p>' in power.text
        hidden = await open_form(client, "/buy/electricity")
        meter = {"service_id": "ikeja-electric", "meter_type": "prepaid", "meter_number": PREPAID_METER}
        verified = await client.post("/buy/electricity/verify", data={**hidden, **meter})
        assert "Minimum purchase: ₦1,200.00" in verified.text  # the floor, above this meter's own ₦1,000
        over = await submit(client, "/buy/electricity", {**meter, "amount": "30001", "phone": MTN})
        assert field_error(over.text, "amount") == "The amount must be between ₦1,200 and ₦30,000."

        cable = await client.get("/buy/cable")
        assert '<p class="hint">10 or 11 digits, under your decoder</p>' in cable.text
        assert await purchase_count(sessionmaker) == 0
    finally:
        app.state["vtu"] = original
        await custom.aclose()


# -- "Buy again" only once the purchase is final ------------------------------------------------------------
async def test_buy_again_appears_only_when_the_purchase_is_final(app, client, db, sessionmaker):
    await customer(client, db, sessionmaker, fund_kobo=500_000)
    done = receipt_id(
        await submit(client, "/buy/airtime", {"service_id": "mtn", "phone": MTN, "amount": "100"})
    )
    receipt = await client.get(f"/purchases/{done}")
    assert re.search(r'id="buy-again">Buy again<', receipt.text)

    pending = receipt_id(
        await submit(client, "/buy/airtime", {"service_id": "mtn", "phone": PENDING_PHONE, "amount": "100"})
    )
    receipt = await client.get(f"/purchases/{pending}")
    assert 'id="purchase-status">Pending<' in receipt.text
    assert 'id="buy-again"' not in receipt.text and 'href="/purchases"' in receipt.text
    polled = await client.get(f"/purchases/{pending}/status", headers=HX)
    assert 'id="buy-again"' not in polled.text

    runtime = await get_vtu(app)
    settled = await runtime.purchases.requery(pending, source="test", attempt=1)
    assert settled is not None and settled.status == SUCCESSFUL
    final = await client.get(f"/purchases/{pending}/status", headers=HX)
    assert 'id="receipt-actions" hx-swap-oob="true"' in final.text  # replaces the foot of the receipt
    assert re.search(r'id="buy-again">Buy again<', final.text)
    await assert_reconciled(sessionmaker)
