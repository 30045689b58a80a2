"""/buy/exam end to end through the real forms (stub provider, real PostgreSQL + Redis): WAEC PINs bought and
shown on the owner's receipt only, JAMB's profile check, the price block, and bad input refused with nothing
written."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import text

from app.vtu.errors import PurchaseError
from app.vtu.models import PENDING, SUCCESSFUL
from app.vtu.providers.stub import DELIVERED_PHONE, JAMB_PROFILE, UNEXPECTED_PHONE, stub_pins
from app.vtu.runtime import get_vtu
from tests.factories import PASSWORD, create_user
from tests.helpers import csrf_token, log_in
from tests.integration.purchase_fixtures import assert_reconciled
from tests.integration.test_exam_pins import plaintext_hits
from tests.integration.test_purchase_pages import (
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

HX = {"HX-Request": "true"}
WAEC = {"service_id": "waec", "variation_code": "waecdirect", "quantity": "3", "phone": DELIVERED_PHONE}
WAEC_PRICE = 390_000


async def test_waec_pins_bought_through_the_form_show_on_the_receipt(client, db, sessionmaker):
    await seed_plans(sessionmaker, "waec", "jamb")
    user = await customer(client, db, sessionmaker, fund_kobo=2_000_000)
    page = await client.get("/buy/exam")
    assert page.status_code == 200 and page.text.count("<h1") == 1
    assert "waecdirect" in page.text  # WAEC plans by default ...
    assert 'name="profile_id"' not in page.text and "Verify profile" not in page.text  # ... and no JAMB field
    purchase_id = receipt_id(await submit(client, "/buy/exam", WAEC))
    [row] = await purchases(sessionmaker)
    assert (row.id, row.status, row.kind, row.amount_kobo) == (
        purchase_id,
        SUCCESSFUL,
        "exam",
        3 * WAEC_PRICE,
    )
    assert await wallet(sessionmaker, user.id) == 2_000_000 - 3 * WAEC_PRICE
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert receipt.status_code == 200
    expected = stub_pins(row.request_id, 3)
    shown = re.findall(r'class="token code pin-value">([^<]+)<', receipt.text)
    assert shown == [pin for _, pin in expected]
    for serial, pin in expected:
        assert f'data-copy="{pin}"' in receipt.text and f'data-copy="{serial}"' in receipt.text
    status = await client.get(f"/purchases/{purchase_id}/status", headers=HX)
    assert all(pin in status.text for _, pin in expected)
    # Nobody else sees them, nor that the purchase exists.
    other = await create_user(db)
    await db.commit()
    client.cookies.clear()
    assert (await log_in(client, other.email, PASSWORD)).status_code == 303
    assert (await client.get(f"/purchases/{purchase_id}")).status_code == 404
    assert (await client.get(f"/purchases/{purchase_id}/status", headers=HX)).status_code == 404
    await assert_reconciled(sessionmaker)


async def test_the_price_block_multiplies_the_plan_price_by_the_quantity(client, db, sessionmaker):
    await seed_plans(sessionmaker, "waec", "jamb")
    await customer(client, db, sessionmaker)
    price = await client.get("/buy/exam/price", params=WAEC, headers=HX)
    assert price.status_code == 200 and "You pay <strong>₦11,700.00</strong>" in price.text
    assert "Pay ₦11,700" in price.text
    jamb = {"service_id": "jamb", "variation_code": "utme", "quantity": "1", "profile_id": ""}
    assert "₦7,700.00" in (await client.get("/buy/exam/price", params=jamb, headers=HX)).text
    bad = await client.get("/buy/exam/price", params=WAEC | {"quantity": "11"}, headers=HX)
    assert bad.status_code == 200 and "You pay" not in bad.text


async def test_only_jamb_shows_the_profile_field_and_another_exam_takes_it_away(client, db, sessionmaker):
    await seed_plans(sessionmaker, "waec", "jamb")
    await customer(client, db, sessionmaker)
    jamb_page = await client.get("/buy/exam", params={"service_id": "jamb"})  # also the no-JS link
    assert 'name="profile_id"' in jamb_page.text and "Verify profile" in jamb_page.text
    # Choosing an exam (htmx) redraws the profile block out of band: JAMB's brings the field ...
    jamb = await client.get("/buy/exam/plans", params={"service_id": "jamb"}, headers=HX)
    block = re.search(r'<div id="exam-profile" hx-swap-oob="true">(.*?)</div>\s*$', jamb.text, re.S)
    assert jamb.status_code == 200 and block and 'name="profile_id"' in block.group(1)
    # ... WAEC's takes it away, with a verified profile shown for JAMB.
    waec = await client.get("/buy/exam/plans", params={"service_id": "waec"}, headers=HX)
    assert waec.status_code == 200 and "waecdirect" in waec.text
    assert re.search(r'<div id="exam-profile" hx-swap-oob="true">\s*</div>', waec.text)
    assert 'name="profile_id"' not in waec.text and 'id="customer"' not in waec.text


async def test_jamb_profile_verify_and_a_bad_profile_buys_nothing(client, db, sessionmaker):
    await seed_plans(sessionmaker, "jamb")
    user = await customer(client, db, sessionmaker, fund_kobo=2_000_000)
    hidden = await open_form(client, "/buy/exam")
    form = {"_csrf_token": hidden["_csrf_token"], "service_id": "jamb", "variation_code": "utme"}
    ok = await client.post("/buy/exam/verify", data=form | {"profile_id": JAMB_PROFILE}, headers=HX)
    assert ok.status_code == 200 and "TEST CANDIDATE" in ok.text
    bad = await client.post("/buy/exam/verify", data=form | {"profile_id": "0999999999"}, headers=HX)
    assert bad.status_code == 200 and "Invalid Profile ID" in bad.text
    jamb = {"service_id": "jamb", "variation_code": "utme", "phone": DELIVERED_PHONE}
    refused = await submit(client, "/buy/exam", jamb | {"profile_id": "0999999999"})
    assert refused.status_code == 400 and "Invalid Profile ID" in field_error(refused.text, "profile_id")
    assert await purchase_count(sessionmaker) == 0 and await wallet(sessionmaker, user.id) == 2_000_000
    bought = await submit(client, "/buy/exam", jamb | {"profile_id": JAMB_PROFILE})
    purchase_id = receipt_id(bought)
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert "JAMB profile id" in receipt.text and len(re.findall(r"pin-value", receipt.text)) == 1
    assert await wallet(sessionmaker, user.id) == 2_000_000 - 770_000
    await assert_reconciled(sessionmaker)


@pytest.mark.parametrize("quantity", ["0", "11", "2x", "\u0662", "-1", "1.5"])
async def test_a_bad_quantity_is_refused_with_nothing_written(client, db, sessionmaker, quantity):
    await seed_plans(sessionmaker, "waec")
    user = await customer(client, db, sessionmaker, fund_kobo=2_000_000)
    refused = await submit(client, "/buy/exam", WAEC | {"quantity": quantity})
    assert refused.status_code == 400 and field_error(refused.text, "quantity")
    assert await purchase_count(sessionmaker) == 0 and await wallet(sessionmaker, user.id) == 2_000_000


async def test_the_staff_console_says_pins_exist_but_never_shows_them(client, db, sessionmaker):
    await seed_plans(sessionmaker, "waec")
    await customer(client, db, sessionmaker, fund_kobo=2_000_000)
    purchase_id = receipt_id(await submit(client, "/buy/exam", WAEC))
    [row] = await purchases(sessionmaker)
    staff = await create_user(db, staff_role="support")
    await db.commit()
    client.cookies.clear()
    assert (await log_in(client, staff.email, PASSWORD)).status_code == 303
    page = await client.get(f"/staff/purchases/{purchase_id}")
    assert page.status_code == 200, page.text[:500]
    assert "stored encrypted" in page.text
    assert not any(pin in page.text or serial in page.text for serial, pin in stub_pins(row.request_id, 3))


async def test_staff_mark_an_exam_purchase_delivered_only_with_its_pins(client, db, sessionmaker):
    """A pending exam purchase resolved by hand: the PINs staff copy from the provider's dashboard are what
    the customer gets, so "Mark delivered" needs exactly as many as were bought; stored encrypted, shown only
    on the owner's receipt."""
    await seed_plans(sessionmaker, "waec")
    user = await customer(client, db, sessionmaker, fund_kobo=2_000_000)
    buyer_cookies = dict(client.cookies)
    pending = WAEC | {"quantity": "2", "phone": UNEXPECTED_PHONE}  # the stub leaves it pending for ever
    purchase_id = receipt_id(await submit(client, "/buy/exam", pending))
    [row] = await purchases(sessionmaker)
    assert row.status == PENDING and row.pins_ciphertext is None
    charged = 2 * WAEC_PRICE
    staff = await create_user(db, staff_role="operations")
    await db.commit()
    client.cookies.clear()
    assert (await log_in(client, staff.email, PASSWORD)).status_code == 303
    page = await client.get(f"/staff/purchases/{purchase_id}")
    assert 'name="pins"' in page.text and "Exam PINs (for “Mark delivered”): 2, one per line" in page.text

    async def resolve(**data: str) -> Any:
        token = await csrf_token(client, f"/staff/purchases/{purchase_id}")
        form = {"decision": "delivered", "note": "VTpass dashboard shows both cards", "confirm": "yes"}
        return await client.post(
            f"/staff/purchases/{purchase_id}/resolve",
            data=form | data | {"_csrf_token": token},
            follow_redirects=False,
        )

    for pins, problem in [
        ("", "Enter the 2 PINs"),
        ("WRN1001,111122223333", "This purchase is for 2 PINs"),
        ("WRN1001,111122223333\nWRN1002,111122223333", "Line 2 repeats a PIN"),
    ]:
        refused = await resolve(pins=pins)
        assert refused.status_code == 400 and problem in field_error(refused.text, "pins")
        [row] = await purchases(sessionmaker)
        assert row.status == PENDING and row.pins_ciphertext is None
        assert await wallet(sessionmaker, user.id) == 2_000_000 - charged
    done = await resolve(pins="WRN1001,111122223333\n444455556666")
    assert done.status_code == 303, done.text[:500]
    [row] = await purchases(sessionmaker)
    assert row.status == SUCCESSFUL and row.pins_ciphertext is not None
    assert await wallet(sessionmaker, user.id) == 2_000_000 - charged  # settled, nothing refunded
    assert await plaintext_hits(sessionmaker, ["111122223333", "444455556666", "WRN1001"]) == []
    staff_page = await client.get(f"/staff/purchases/{purchase_id}")
    assert "stored encrypted" in staff_page.text and "111122223333" not in staff_page.text
    async with sessionmaker() as session:
        audited = " ".join(
            str(r) for r in (await session.execute(text("SELECT before, after, reason FROM audit_log"))).all()
        )
    assert "111122223333" not in audited and "444455556666" not in audited
    client.cookies.clear()
    client.cookies.update(buyer_cookies)
    receipt = await client.get(f"/purchases/{purchase_id}")
    assert re.findall(r'pin-value">([^<]+)<', receipt.text) == ["111122223333", "444455556666"]
    assert "WRN1001" in receipt.text
    await assert_reconciled(sessionmaker)


async def test_the_service_refuses_an_exam_delivered_without_its_pins(app, db, sessionmaker, client):
    """The rule lives in the purchase service too (not only the staff form): nothing changes."""
    await seed_plans(sessionmaker, "waec")
    await customer(client, db, sessionmaker, fund_kobo=2_000_000)
    purchase_id = receipt_id(await submit(client, "/buy/exam", WAEC | {"phone": UNEXPECTED_PHONE}))
    service = (await get_vtu(app)).purchases
    with pytest.raises(PurchaseError, match="delivered with its 3 PIN"):
        await service.resolve_manually(purchase_id, delivered=True, staff="ops@example.ng", note="checked")
    [row] = await purchases(sessionmaker)
    assert row.status == PENDING and row.pins_ciphertext is None
    await assert_reconciled(sessionmaker)
