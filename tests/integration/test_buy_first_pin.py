"""A customer without a transaction PIN chooses one on the buy form itself (app/vtu/approval.py): the same
rules as /account/pin (weak PINs refused, the account password required), the typed order kept on every
refusal, nothing bought when the PIN step fails, the PIN set and the purchase made in one request when it
passes. A customer who has a PIN cannot replace it from a buy form."""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import select

from app.accounts.models import User
from app.accounts.passwords import verify_password
from app.vtu.models import SUCCESSFUL
from app.vtu.providers.stub import DELIVERED_PHONE
from tests.factories import PASSWORD
from tests.integration.purchase_fixtures import assert_reconciled
from tests.integration.test_purchase_pages import (
    AIRTIME,
    customer,
    field_error,
    open_form,
    purchase_count,
    purchases,
    receipt_id,
    wallet,
)

NEW_PIN = "4826"
FIRST_PIN = {"new_pin": NEW_PIN, "confirm_pin": NEW_PIN, "password": PASSWORD}


async def _pin_hash(sessionmaker, user_id) -> str | None:
    async with sessionmaker() as session:
        return (await session.execute(select(User.pin_hash).where(User.id == user_id))).scalar_one()


async def _post(client, data: dict[str, str], path: str = "/buy/airtime"):
    hidden = await open_form(client, path)
    hidden.pop("pin")  # this customer has no PIN to type
    return await client.post(path, data={**hidden, **data}, follow_redirects=False)


def _value(html: str, name: str) -> str | None:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    return match.group(1) if match else None


async def test_without_a_pin_the_form_asks_for_a_first_one_and_with_one_the_pin(
    client, db, sessionmaker, make_client
):
    await customer(client, db, sessionmaker, fund_kobo=100_000, with_pin=False)
    page = await client.get("/buy/airtime")
    assert page.status_code == 200
    assert "Choose a 4-digit transaction PIN" in page.text and "Repeat it" in page.text
    for name in ("new_pin", "confirm_pin", "password"):
        assert f'name="{name}"' in page.text
    assert 'name="pin"' not in page.text

    other = make_client()
    await customer(other, db, sessionmaker, fund_kobo=100_000)
    page = await other.get("/buy/airtime")
    assert 'name="pin"' in page.text and 'name="new_pin"' not in page.text and "Repeat it" not in page.text


async def test_pin_mistakes_keep_the_order_and_buy_nothing(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=100_000, with_pin=False)
    cases = [
        ({"new_pin": NEW_PIN, "confirm_pin": "4827", "password": PASSWORD}, "confirm_pin", "do not match"),
        ({"new_pin": "1234", "confirm_pin": "1234", "password": PASSWORD}, "new_pin", "too easy to guess"),
        ({"new_pin": "12a4", "confirm_pin": "12a4", "password": PASSWORD}, "new_pin", "exactly 4 digits"),
        ({"new_pin": "٤٨٢٦", "confirm_pin": "٤٨٢٦", "password": PASSWORD}, "new_pin", "exactly 4 digits"),
        (
            {"new_pin": NEW_PIN, "confirm_pin": NEW_PIN, "password": "wrong-password"},
            "password",
            "not correct",
        ),
        ({"new_pin": "", "confirm_pin": "", "password": PASSWORD}, "new_pin", "exactly 4 digits"),
    ]
    for fields, where, message in cases:
        response = await _post(client, {**AIRTIME, "amount": "700", **fields})
        assert response.status_code == 400, (fields, response.text[:500])
        assert message in field_error(response.text, where), fields
        # the order as typed is still there; no PIN or password is echoed back
        assert _value(response.text, "phone") == DELIVERED_PHONE and _value(response.text, "amount") == "700"
        assert 'value="mtn" checked' in response.text
        assert f'value="{NEW_PIN}"' not in response.text and PASSWORD not in response.text
        assert 'name="new_pin"' in response.text  # still asked for a first PIN
    assert await _pin_hash(sessionmaker, user.id) is None
    assert await purchase_count(sessionmaker) == 0
    assert await wallet(sessionmaker, user.id) == 100_000


async def test_a_refused_order_does_not_set_the_pin(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=100_000, with_pin=False)
    response = await _post(client, {**AIRTIME, "amount": "5", **FIRST_PIN})
    assert response.status_code == 400 and field_error(response.text, "amount")
    bad_phone = await _post(client, {**AIRTIME, "phone": "12345", **FIRST_PIN})
    assert bad_phone.status_code == 400 and field_error(bad_phone.text, "phone")
    assert await _pin_hash(sessionmaker, user.id) is None
    assert await purchase_count(sessionmaker) == 0


async def test_the_first_pin_is_set_and_the_purchase_made_in_one_request(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=100_000, with_pin=False)
    response = await _post(client, {**AIRTIME, **FIRST_PIN})
    purchase_id = receipt_id(response)

    stored = await _pin_hash(sessionmaker, user.id)
    assert stored and stored.startswith("$argon2id$") and verify_password(stored, NEW_PIN)
    [row] = await purchases(sessionmaker)
    assert (row.id, row.status, row.amount_kobo, row.recipient) == (
        purchase_id,
        SUCCESSFUL,
        50_000,
        DELIVERED_PHONE,
    )
    assert await wallet(sessionmaker, user.id) == 50_000
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert "Transaction PIN set" in receipt.text

    # From now on the form asks for that PIN, and it approves the next purchase.
    page = await client.get("/buy/airtime")
    assert 'name="pin"' in page.text and 'name="new_pin"' not in page.text
    hidden = await open_form(client, "/buy/airtime")
    again = await client.post(
        "/buy/airtime", data={**hidden, **AIRTIME, "pin": NEW_PIN}, follow_redirects=False
    )
    receipt_id(again)
    assert await wallet(sessionmaker, user.id) == 0
    await assert_reconciled(sessionmaker)


async def test_pin_set_but_wallet_too_low_shows_the_pin_field_and_charges_nothing(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=10_000, with_pin=False)
    response = await _post(client, {**AIRTIME, **FIRST_PIN})
    assert response.status_code == 402 and "Insufficient balance" in response.text
    assert verify_password(await _pin_hash(sessionmaker, user.id) or "", NEW_PIN)
    assert 'name="pin"' in response.text and 'name="new_pin"' not in response.text
    assert _value(response.text, "phone") == DELIVERED_PHONE and _value(response.text, "amount") == "500"
    assert await purchase_count(sessionmaker) == 0 and await wallet(sessionmaker, user.id) == 10_000


async def test_a_customer_with_a_pin_cannot_replace_it_from_a_buy_form(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=100_000)  # PIN 2580
    before = await _pin_hash(sessionmaker, user.id)
    response = await _post(client, {**AIRTIME, **FIRST_PIN})  # the password, but no current PIN
    assert response.status_code == 400 and "Enter your transaction PIN" in field_error(response.text, "pin")
    assert await _pin_hash(sessionmaker, user.id) == before
    assert await purchase_count(sessionmaker) == 0 and await wallet(sessionmaker, user.id) == 100_000


async def test_a_double_tapped_first_pin_form_sets_one_pin_and_buys_once(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=100_000, with_pin=False)
    hidden = await open_form(client, "/buy/airtime")
    hidden.pop("pin")
    data = {**hidden, **AIRTIME, **FIRST_PIN}
    responses = await asyncio.gather(
        *(client.post("/buy/airtime", data=data, follow_redirects=False) for _ in range(3))
    )
    ids = {receipt_id(r) for r in responses}
    assert len(ids) == 1
    assert await purchase_count(sessionmaker) == 1 and await wallet(sessionmaker, user.id) == 50_000
    assert verify_password(await _pin_hash(sessionmaker, user.id) or "", NEW_PIN)
    await assert_reconciled(sessionmaker)


async def test_a_stale_first_pin_form_needs_the_pin_set_meanwhile(client, db, sessionmaker):
    """The form was opened before the PIN was set in another tab: its first-PIN fields cannot change it."""
    user = await customer(client, db, sessionmaker, fund_kobo=100_000, with_pin=False)
    hidden = await open_form(client, "/buy/airtime")
    hidden.pop("pin")
    first = await client.post("/buy/airtime", data={**hidden, **AIRTIME, **FIRST_PIN}, follow_redirects=False)
    receipt_id(first)
    other = {"new_pin": "7391", "confirm_pin": "7391", "password": PASSWORD}
    stale = await _post(client, {**AIRTIME, **other})
    assert stale.status_code == 400 and field_error(stale.text, "pin")
    assert verify_password(await _pin_hash(sessionmaker, user.id) or "", NEW_PIN)
    assert await purchase_count(sessionmaker) == 1
