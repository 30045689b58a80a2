"""Recent and saved beneficiaries (app/vtu/beneficiaries.py): offered on the buy forms as prefill links, saved
only when a purchase with "Save this number" ticked was accepted, renamed / deleted on /beneficiaries by their
owner only, at most 50 each."""

from __future__ import annotations

import html
import re
import uuid

from sqlalchemy import func, select, text

from app.vtu.beneficiaries import MAX_SAVED, Beneficiary, recents
from app.vtu.providers.catalog import ServiceKind
from app.vtu.providers.stub import DELIVERED_PHONE, PENDING_PHONE, POSTPAID_METER, PREPAID_METER
from tests.helpers import csrf_token
from tests.integration.test_purchase_pages import (
    AIRTIME,
    FAILING_PHONE,
    customer,
    field_error,
    purchase_count,
    receipt_id,
    submit,
    wallet,
)

SAVE = {"save_beneficiary": "1", "beneficiary_label": "Mum"}
ELECTRICITY = {"service_id": "ikeja-electric", "meter_type": "prepaid", "meter_number": PREPAID_METER,
               "amount": "1000", "phone": DELIVERED_PHONE}  # fmt: skip


async def _saved(sessionmaker, user_id) -> list[Beneficiary]:
    async with sessionmaker() as session:
        query = select(Beneficiary).where(Beneficiary.user_id == user_id).order_by(Beneficiary.created_at)
        return list((await session.execute(query)).scalars())


def _offers(page: str) -> list[tuple[str, str]]:
    """(href, visible text) of each beneficiary button on a buy form."""
    found = re.findall(
        r'<a class="beneficiary[^"]*" href="([^"]+)" data-beneficiary=\'[^\']*\'>(.*?)</a>', page, re.S
    )
    return [(html.unescape(href), " ".join(re.sub(r"<[^>]+>", " ", body).split())) for href, body in found]


async def _add(sessionmaker, user_id, count: int) -> None:
    async with sessionmaker() as session, session.begin():
        for n in range(count):
            session.add(
                Beneficiary(user_id=user_id, kind="phone", service_id="mtn", recipient=f"0803{n:07d}")
            )


# -- save on purchase --------------------------------------------------------------------------------------
async def test_an_accepted_purchase_saves_its_number_and_every_form_offers_it(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=200_000)
    receipt_id(await submit(client, "/buy/airtime", {**AIRTIME, **SAVE}))
    [row] = await _saved(sessionmaker, user.id)
    assert (row.kind, row.service_id, row.recipient, row.label) == ("phone", "mtn", DELIVERED_PHONE, "Mum")

    airtime = await client.get("/buy/airtime")
    assert _offers(airtime.text) == [
        (f"/buy/airtime?phone={DELIVERED_PHONE}&service_id=mtn", f"Mum {DELIVERED_PHONE} · MTN")
    ]
    data = await client.get("/buy/data")  # the same phone, on its MTN data plans
    [(href, _)] = _offers(data.text)
    assert href == f"/buy/data?phone={DELIVERED_PHONE}&service_id=mtn-data"
    assert "Manage saved numbers" in data.text and 'href="/beneficiaries"' in data.text
    assert (await client.get("/buy/electricity")).text.count('class="beneficiary') == 0

    # Without JavaScript the button is a link that opens the form prefilled.
    prefilled = await client.get(href)
    assert prefilled.status_code == 200
    assert f'name="phone" type="tel" value="{DELIVERED_PHONE}"' in prefilled.text
    assert 'value="mtn-data" checked' in prefilled.text

    # Buying again with a new name renames it; without a name the old one is kept.
    receipt_id(
        await submit(
            client, "/buy/airtime", {**AIRTIME, "save_beneficiary": "1", "beneficiary_label": "Mama"}
        )
    )
    receipt_id(
        await submit(client, "/buy/airtime", {**AIRTIME, "save_beneficiary": "1", "beneficiary_label": ""})
    )
    [row] = await _saved(sessionmaker, user.id)
    assert row.label == "Mama"


async def test_refused_or_failed_purchases_save_nothing(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=10_000)
    poor = await submit(client, "/buy/airtime", {**AIRTIME, **SAVE})  # ₦500 from ₦100
    assert poor.status_code == 402
    assert 'name="save_beneficiary" value="1" checked' in poor.text and 'value="Mum"' in poor.text  # kept
    wrong_pin = await submit(client, "/buy/airtime", {**AIRTIME, **SAVE, "amount": "50", "pin": "9999"})
    assert wrong_pin.status_code == 400
    invalid = await submit(client, "/buy/airtime", {**AIRTIME, **SAVE, "phone": "123"})
    assert invalid.status_code == 400
    failed = await submit(client, "/buy/airtime", {**AIRTIME, **SAVE, "phone": FAILING_PHONE, "amount": "50"})
    receipt_id(failed)  # opened, then refused by the provider and refunded
    assert await _saved(sessionmaker, user.id) == []
    assert await wallet(sessionmaker, user.id) == 10_000


async def test_a_long_name_or_the_limit_refuses_the_form_before_buying(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=200_000)
    long = await submit(
        client, "/buy/airtime", {**AIRTIME, "save_beneficiary": "1", "beneficiary_label": "x" * 41}
    )
    assert long.status_code == 400 and "40 characters" in field_error(long.text, "beneficiary_label")

    await _add(sessionmaker, user.id, MAX_SAVED)
    full = await submit(client, "/buy/airtime", {**AIRTIME, **SAVE})
    assert full.status_code == 400
    assert f"already have {MAX_SAVED} saved numbers" in field_error(full.text, "beneficiary_label")
    assert await purchase_count(sessionmaker) == 0 and await wallet(sessionmaker, user.id) == 200_000
    # Unticked, the same purchase goes through; a number already saved may be saved again at the limit.
    receipt_id(await submit(client, "/buy/airtime", AIRTIME))
    receipt_id(await submit(client, "/buy/airtime", {**AIRTIME, "phone": "08030000007", **SAVE}))
    assert len(await _saved(sessionmaker, user.id)) == MAX_SAVED


async def test_a_name_is_plain_text(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker, fund_kobo=200_000)
    label = '<script>alert("x")</script>\x07 Bro'
    receipt_id(
        await submit(client, "/buy/airtime", {**AIRTIME, "save_beneficiary": "1", "beneficiary_label": label})
    )
    [row] = await _saved(sessionmaker, user.id)
    assert row.label == '<script>alert("x")</script> Bro'
    for path in ("/buy/airtime", "/beneficiaries"):
        page = await client.get(path)
        assert "<script>alert" not in page.text and "&lt;script&gt;alert(" in page.text


# -- recents ---------------------------------------------------------------------------------------------
async def test_recents_are_distinct_newest_first_and_only_the_customers_own(
    client, db, sessionmaker, make_client
):
    user = await customer(client, db, sessionmaker, fund_kobo=2_000_000)
    receipt_id(await submit(client, "/buy/airtime", {**AIRTIME, "service_id": "glo", "amount": "50"}))
    receipt_id(await submit(client, "/buy/airtime", {**AIRTIME, "phone": PENDING_PHONE, "amount": "50"}))
    receipt_id(await submit(client, "/buy/airtime", {**AIRTIME, "phone": FAILING_PHONE, "amount": "50"}))
    receipt_id(await submit(client, "/buy/airtime", {**AIRTIME, "amount": "50"}))  # DELIVERED again, on MTN
    receipt_id(await submit(client, "/buy/electricity", ELECTRICITY))
    receipt_id(await submit(client, "/buy/electricity", {**ELECTRICITY, "meter_type": "postpaid",
                                                         "meter_number": POSTPAID_METER}))  # fmt: skip
    stranger = make_client()
    await customer(stranger, db, sessionmaker, fund_kobo=100_000)
    receipt_id(await submit(stranger, "/buy/airtime", {**AIRTIME, "phone": "08039999999", "amount": "50"}))

    async with sessionmaker() as session:
        rows = await recents(session, user.id, ServiceKind.AIRTIME)
    # the failed number is not offered; the delivered one once, with its latest network
    assert [(r.recipient, r.service_id) for r in rows] == [(DELIVERED_PHONE, "mtn"), (PENDING_PHONE, "mtn")]
    page = await client.get("/buy/airtime")
    assert [h for h, _ in _offers(page.text)] == [
        f"/buy/airtime?phone={DELIVERED_PHONE}&service_id=mtn",
        f"/buy/airtime?phone={PENDING_PHONE}&service_id=mtn",
    ]
    section = page.text.split('id="beneficiaries"')[1].split("</section>")[0]
    assert "08039999999" not in section and FAILING_PHONE not in section

    meters = _offers((await client.get("/buy/electricity")).text)
    assert [h for h, _ in meters] == [
        f"/buy/electricity?meter_number={POSTPAID_METER}&service_id=ikeja-electric&meter_type=postpaid",
        f"/buy/electricity?meter_number={PREPAID_METER}&service_id=ikeja-electric&meter_type=prepaid",
    ]
    assert "Ikeja Electric" in meters[0][1] and "postpaid" in meters[0][1]
    # the verified customer name from the purchase is shown
    async with sessionmaker() as session:
        query = text("SELECT customer_name FROM purchases WHERE recipient = :m")
        name = (await session.execute(query, {"m": PREPAID_METER})).scalar_one()
    assert name and html.escape(name) in (await client.get("/buy/electricity")).text


async def _sold(sessionmaker, user_id, recipient: str, status: str, minutes_ago: int) -> None:
    """A purchase row as the engine leaves it (the stub delivers to one number only, and this is a read)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO purchases (id, user_id, channel, service_id, kind, recipient, phone,"
                " amount_kobo, face_amount_kobo, cost_kobo, status, provider_slug, request_id, completed_at,"
                " created_at, product_name,"
                " updated_at) VALUES (:id, :user_id, 'web', 'airtel', 'airtime', :r, :r, 5000, 5000, 4900,"
                " CAST(:status AS varchar), 'stub', :rid,"
                " CASE WHEN CAST(:status AS varchar) = 'pending' THEN NULL ELSE now() END,"
                " now() - make_interval(mins => :ago), 'Airtel Airtime', now())"
            ),
            {"id": uuid.uuid4(), "user_id": user_id, "r": recipient, "status": status,
             "rid": uuid.uuid4().hex[:24], "ago": minutes_ago},
        )  # fmt: skip


async def test_at_most_five_recents_newest_first(client, db, sessionmaker):
    user = await customer(client, db, sessionmaker)
    for n in range(8):
        status = "failed" if n % 4 == 3 else ("pending" if n % 2 else "successful")
        await _sold(sessionmaker, user.id, f"0802000000{n}", status, minutes_ago=100 - n)
    offers = _offers((await client.get("/buy/airtime")).text)
    shown = [h.split("phone=")[1].split("&")[0] for h, _ in offers]
    assert shown == [f"0802000000{n}" for n in (6, 5, 4, 2, 1)]  # 7 and 3 failed
    assert all(h.endswith("&service_id=airtel") for h, _ in offers)


# -- the saved-numbers page ------------------------------------------------------------------------------
async def test_rename_and_delete_only_ones_own(client, db, sessionmaker, make_client):
    user = await customer(client, db, sessionmaker, fund_kobo=200_000)
    receipt_id(await submit(client, "/buy/airtime", {**AIRTIME, **SAVE}))
    [row] = await _saved(sessionmaker, user.id)
    page = await client.get("/beneficiaries")
    assert page.status_code == 200 and "Mum" in page.text and DELIVERED_PHONE in page.text
    assert f'href="/buy/data?phone={DELIVERED_PHONE}&amp;service_id=mtn-data"' in page.text
    dashboard = await client.get("/dashboard")
    assert 'href="/beneficiaries"' in dashboard.text

    token = await csrf_token(client, "/beneficiaries")
    renamed = await client.post(
        f"/beneficiaries/{row.id}/rename", data={"_csrf_token": token, "label": " Mummy  "}
    )
    assert renamed.status_code == 303 and renamed.headers["location"] == "/beneficiaries"
    assert (await _saved(sessionmaker, user.id))[0].label == "Mummy"
    too_long = await client.post(
        f"/beneficiaries/{row.id}/rename", data={"_csrf_token": token, "label": "y" * 41}
    )
    assert too_long.status_code == 400 and "40 characters" in too_long.text
    assert (await _saved(sessionmaker, user.id))[0].label == "Mummy"
    no_csrf = await client.post(f"/beneficiaries/{row.id}/delete", data={})
    assert no_csrf.status_code == 403 and len(await _saved(sessionmaker, user.id)) == 1

    # Another customer: 404 for this id, for a made-up one and for a non-id; nothing changes.
    thief = make_client()
    await customer(thief, db, sessionmaker)
    thief_token = await csrf_token(thief, "/beneficiaries")
    assert "Mummy" not in (await thief.get("/beneficiaries")).text
    for target in (str(row.id), str(uuid.uuid4()), "not-an-id"):
        for action, data in (("rename", {"label": "Mine"}), ("delete", {})):
            response = await thief.post(
                f"/beneficiaries/{target}/{action}", data={"_csrf_token": thief_token, **data}
            )
            assert response.status_code == 404, (target, action)
    [kept] = await _saved(sessionmaker, user.id)
    assert kept.label == "Mummy"

    deleted = await client.post(f"/beneficiaries/{row.id}/delete", data={"_csrf_token": token})
    assert deleted.status_code == 303
    assert await _saved(sessionmaker, user.id) == []
    again = await client.post(f"/beneficiaries/{row.id}/delete", data={"_csrf_token": token})
    assert again.status_code == 404
    # Deleted, it is still a recent purchase, now unnamed.
    assert _offers((await client.get("/buy/airtime")).text)[0][1] == f"{DELIVERED_PHONE} MTN"


async def test_the_page_needs_a_login(client):
    response = await client.get("/beneficiaries", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_the_saves_of_one_customer_hold_the_limit_under_a_race(db, sessionmaker):
    import asyncio

    from app.vtu.beneficiaries import TooManySaved, remember
    from tests.factories import create_user

    user = await create_user(db)
    await db.commit()
    await _add(sessionmaker, user.id, MAX_SAVED - 2)

    class Bought:
        def __init__(self, n: int) -> None:
            self.kind, self.service_id, self.recipient = "airtime", "mtn", f"0805{n:07d}"
            self.variation_code, self.customer_name = None, None

    async def save(n: int) -> str:
        async with sessionmaker() as session:
            try:
                await remember(session, user.id, Bought(n), "")
                await session.commit()
            except TooManySaved:
                return "refused"
            return "saved"

    results = await asyncio.gather(*(save(n) for n in range(6)))
    assert sorted(results) == ["refused"] * 4 + ["saved"] * 2
    async with sessionmaker() as session:
        total = (await session.execute(select(func.count()).select_from(Beneficiary))).scalar_one()
    assert total == MAX_SAVED
