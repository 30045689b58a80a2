"""Transactional e-mails through the real paths (webhook, purchase pages, password and API-key pages), a
real SAQ worker and a real SMTP server: each is sent once, and not at all when the customer turned it off.
Plus the preferences page, the dev mailbox page, lost jobs recovered by the sweep, and SMTP retries."""

from __future__ import annotations

import dataclasses
import datetime
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from app.accounts.passwords import hash_password
from app.mail import outbox, sink, tasks
from app.mail.tasks import MailNotSent, deliver, sweep_mail
from app.routes import route_handlers
from app.vtu.providers.stub import DELIVERED_PHONE, PREPAID_METER
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator
from tests.helpers import log_in, post_form
from tests.integration import mail_fixtures
from tests.integration.mail_fixtures import mail_rows, settle, wait_for_mail
from tests.integration.purchase_fixtures import fund_wallet

smtp_server = mail_fixtures.smtp_server
mail_worker = mail_fixtures.mail_worker

PIN = "2580"
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


async def customer(client: Any, db: Any, **kw: Any) -> Any:
    user = await create_user(db, **kw)
    user.pin_hash = hash_password(PIN)
    await db.commit()
    assert (await log_in(client, user.email, PASSWORD)).status_code == 303
    return user


async def turn_off(client: Any, *kinds: str) -> None:
    keep = {name: "on" for name in outbox.PREFERENCES if name not in kinds}
    response = await post_form(client, "/account/notifications", keep)
    assert response.status_code == 303


async def transfer(
    client: Any, settings: Any, user: Any, amount_kobo: int, reference: str | None = None
) -> bytes:
    monnify = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )
    body, signature = monnify.build_webhook(
        user.account_reference, amount_kobo, **({"transaction_reference": reference} if reference else {})
    )
    response = await client.post(
        "/payments/webhooks/monnify/",
        content=body,
        headers={"content-type": "application/json", "monnify-signature": signature},
    )
    assert response.status_code == 200
    return body


async def test_funding_received_once_even_when_the_webhook_is_replayed(
    client, db, sessionmaker, settings, smtp_server, mail_worker
):
    mailbox = smtp_server[0]
    user = await customer(client, db)
    monnify = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )
    body, signature = monnify.build_webhook(user.account_reference, 250_000)
    for _ in range(3):  # Monnify retries deliveries: one transfer, one e-mail
        response = await client.post(
            "/payments/webhooks/monnify/",
            content=body,
            headers={"content-type": "application/json", "monnify-signature": signature},
        )
        assert response.status_code == 200
    [message] = await wait_for_mail(mailbox, user.email)
    await settle()
    assert len(mailbox.to(user.email)) == 1
    assert message.subject == "Wallet funded: ₦2,500.00 received"
    assert "₦2,500.00" in message.text and "₦2,500.00" in message.html
    [row] = await mail_rows(sessionmaker)
    assert row.status == "sent" and row.dedupe_key.startswith("funding:")


async def test_funding_mail_is_suppressed_when_turned_off(
    client, db, sessionmaker, settings, smtp_server, mail_worker
):
    mailbox = smtp_server[0]
    user = await customer(client, db)
    await turn_off(client, "funding")
    await transfer(client, settings, user, 150_000)
    await settle(0.5)
    assert mailbox.to(user.email) == []
    [row] = await mail_rows(sessionmaker)
    assert row.status == "suppressed" and row.template == "funding_received"


async def buy_electricity(client: Any) -> str:
    page = await client.get("/buy/electricity")
    hidden = {
        "_csrf_token": CSRF.search(page.text).group(1),
        "idempotency_key": KEY.search(page.text).group(1),
        "pin": PIN,
    }  # type: ignore[union-attr]
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
    assert response.status_code == 303, response.text[:500]
    return response.headers["location"].rsplit("/", 1)[1]


async def test_electricity_receipt_carries_the_token_and_is_sent_once(
    client, db, sessionmaker, settings, smtp_server, mail_worker
):
    mailbox = smtp_server[0]
    user = await customer(client, db)
    await fund_wallet(sessionmaker, user.id, 300_000)
    purchase_id = await buy_electricity(client)
    async with sessionmaker() as session:
        token, units = (
            await session.execute(
                text("SELECT token, units FROM purchases WHERE id = :i"), {"i": uuid.UUID(purchase_id)}
            )
        ).one()
    assert token
    [message] = await wait_for_mail(mailbox, user.email)
    assert message.subject.startswith("Receipt: ")
    assert token in message.text and token in message.html
    if units:
        assert units in message.text
    assert f"{settings.site_url}/purchases/{purchase_id}" in message.text
    # A duplicate job (the sweep racing the listener) records and sends nothing more.
    await tasks.enqueue_receipt(mail_worker, purchase_id)
    await mail_worker.enqueue(tasks.outbox.RECEIPT_TASK, purchase_id=purchase_id, timeout=30)
    await settle(1.0)
    assert len(mailbox.to(user.email)) == 1
    assert [r.dedupe_key for r in await mail_rows(sessionmaker)] == [f"receipt:{purchase_id}"]


async def test_receipts_can_be_turned_off_and_api_purchases_get_none(
    client, db, sessionmaker, owner_engine, settings, smtp_server, mail_worker
):
    mailbox = smtp_server[0]
    user = await customer(client, db)
    await turn_off(client, "purchase")
    await fund_wallet(sessionmaker, user.id, 300_000)
    await buy_electricity(client)
    await settle(1.0)
    assert mailbox.to(user.email) == []
    [row] = await mail_rows(sessionmaker)
    assert row.status == "suppressed" and row.template == "purchase_receipt"
    # The receipt job ignores purchases made through the API (resellers get callbacks instead).
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE purchases SET channel = 'api'"))
    async with owner_engine.begin() as conn:  # the application role never deletes rows
        await conn.execute(text("DELETE FROM outgoing_mail"))
    ctx = {"settings": settings, "sessionmaker": sessionmaker}
    async with sessionmaker() as session:
        pid = (await session.execute(text("SELECT id FROM purchases"))).scalar_one()
    assert await tasks.mail_purchase_receipt(ctx, purchase_id=str(pid)) == "skipped"
    assert await mail_rows(sessionmaker) == []


async def test_password_changed_mail_and_its_switch(client, db, sessionmaker, smtp_server, mail_worker):
    mailbox = smtp_server[0]
    user = await customer(client, db)
    change = {
        "current_password": PASSWORD,
        "new_password": "second-pass-22",
        "confirm_password": "second-pass-22",
    }
    assert (await post_form(client, "/account/password", change)).status_code == 303
    [message] = await wait_for_mail(mailbox, user.email)
    assert message.subject == "Your TopUp NG password was changed" and "was changed on" in message.text
    await turn_off(client, "password")
    again = {
        "current_password": "second-pass-22",
        "new_password": "third-pass-333",
        "confirm_password": "third-pass-333",
    }
    assert (await post_form(client, "/account/password", again)).status_code == 303
    await settle(0.5)
    assert len(mailbox.to(user.email)) == 1
    assert [r.status for r in await mail_rows(sessionmaker, "template = 'password_changed'")] == [
        "sent",
        "suppressed",
    ]


async def test_new_api_key_mail_and_its_switch(client, db, sessionmaker, smtp_server, mail_worker):
    mailbox = smtp_server[0]
    user = await customer(client, db, tier="reseller")
    assert (
        await post_form(client, "/account/api-keys", {"name": "Shop till", "password": PASSWORD, "pin": PIN})
    ).status_code == 200
    [message] = await wait_for_mail(mailbox, user.email)
    assert message.subject == "A new API key was created on your TopUp NG account"
    assert "Shop till" in message.text and "vtu_" in message.text
    await turn_off(client, "api_key")
    assert (
        await post_form(client, "/account/api-keys", {"name": "Second", "password": PASSWORD, "pin": PIN})
    ).status_code == 200
    await settle(0.5)
    assert len(mailbox.to(user.email)) == 1
    assert [r.status for r in await mail_rows(sessionmaker, "template = 'api_key_created'")] == [
        "sent",
        "suppressed",
    ]


async def test_preferences_page(client, db, sessionmaker):
    anonymous = await client.get("/account/notifications", follow_redirects=False)
    assert anonymous.status_code in (302, 303, 401)
    user = await customer(client, db)
    page = await client.get("/account/notifications")
    assert page.status_code == 200 and page.text.count(" checked>") == 4
    assert 'href="/account/notifications"' in (await client.get("/dashboard")).text
    await turn_off(client, "funding", "api_key")
    page = await client.get("/account/notifications")
    assert page.text.count(" checked>") == 2 and "Your e-mail choices are saved" in page.text
    async with sessionmaker() as session:
        row = (
            await session.execute(text("SELECT * FROM mail_preferences WHERE user_id = :u"), {"u": user.id})
        ).one()
    assert (row.funding, row.purchase, row.password, row.api_key) == (False, True, True, False)
    odd = await post_form(
        client,
        "/account/notifications",
        {"funding": "on", "bogus": "on", "purchase": "yes"},
        page="/account/notifications",
    )
    assert odd.status_code == 303  # unknown fields ignored, anything but "on" is off: never a 500


async def test_a_lost_enqueue_is_recovered_by_the_sweep(db, sessionmaker, settings, smtp_server, mail_worker):
    mailbox = smtp_server[0]
    user = await create_user(db)
    await db.commit()
    async with sessionmaker() as session:  # recorded, but its job never reached Redis (no kick)
        mail_id = await outbox.add(
            session,
            key="test:lost",
            user_id=user.id,
            template="password_changed",
            context={"via": "change", "changed_at": "now"},
        )
        await session.execute(text("UPDATE outgoing_mail SET created_at = now() - interval '5 minutes'"))
        await session.commit()
    assert mail_id is not None
    ctx = {
        "settings": settings,
        "sessionmaker": sessionmaker,
        "worker": type("W", (), {"queue": mail_worker})(),
    }
    report = await sweep_mail(ctx)
    assert report["due"] == 1 and report["enqueued"] == 1
    await wait_for_mail(mailbox, user.email)
    again = await sweep_mail(ctx)
    assert again["due"] == 0


async def test_smtp_down_is_retried_and_expired_links_are_not_sent(db, sessionmaker, settings, smtp_server):
    mailbox = smtp_server[0]
    user = await create_user(db)
    await db.commit()
    async with sessionmaker() as session:
        mail_id = await outbox.add(
            session,
            key="test:retry",
            user_id=user.id,
            template="password_changed",
            context={"via": "change", "changed_at": "now"},
        )
        await session.commit()
    assert mail_id is not None
    down = {
        "settings": dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{sink.free_port()}"),
        "sessionmaker": sessionmaker,
    }
    with pytest.raises(MailNotSent):
        await deliver(down, mail_id)
    [row] = await mail_rows(sessionmaker)
    assert row.status == "queued" and row.attempts == 1 and row.last_error and row.claimed_until is None
    up = {"settings": dataclasses.replace(settings, smtp_url=smtp_server[1]), "sessionmaker": sessionmaker}
    assert await deliver(up, mail_id) == "sent"
    assert await deliver(up, mail_id) == "skipped"  # sent already: never twice
    assert len(mailbox.to(user.email)) == 1
    # A reset link that expired while the SMTP server was away is not worth sending.
    async with sessionmaker() as session:
        expired_id = await outbox.add(
            session,
            key="test:expired",
            user_id=user.id,
            template="password_reset",
            context={"link": "https://x/password/reset/t", "minutes": 30},
            sensitive=True,
            expires_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1),
        )
        await session.commit()
    assert expired_id is not None
    assert await deliver(up, expired_id) == "expired"
    [row] = await mail_rows(sessionmaker, "id = :i", i=expired_id)
    assert row.status == "expired" and row.context == {}
    assert len(mailbox.to(user.email)) == 1


async def test_dev_mailbox_page_lists_and_shows_messages_with_clickable_links(client, tmp_path, monkeypatch):
    monkeypatch.setattr(sink, "MAIL_DIR", tmp_path)
    empty = await client.get("/dev/mail")
    assert empty.status_code == 200 and "No e-mail yet" in empty.text
    controller, port = sink.start_thread(tmp_path)
    try:
        import aiosmtplib

        from app.mail.render import render
        from app.mail.smtp import build_message

        rendered = render(
            "password_reset",
            {"link": "http://127.0.0.1:8000/password/reset/abc", "minutes": 30},
            site_url="http://127.0.0.1:8000",
        )
        message = build_message(
            rendered, to="ada@example.ng", sender="TopUp NG <no-reply@localhost>", message_id_key="t"
        )
        await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False)
    finally:
        controller.stop()
    listing = await client.get("/dev/mail")
    [name] = re.findall(r'href="/dev/mail/([^"]+\.eml)"', listing.text)
    assert "Reset your TopUp NG password" in listing.text and "ada@example.ng" in listing.text
    shown = await client.get(f"/dev/mail/{name}")
    assert shown.status_code == 200
    assert '<a href="http://127.0.0.1:8000/password/reset/abc">' in shown.text
    assert (await client.get("/dev/mail/..%2F..%2Fpyproject.toml")).status_code == 404
    assert (await client.get("/dev/mail/nope.eml")).status_code == 404


def test_the_dev_mailbox_is_not_routed_in_production():
    from app.mail.pages import DevMailController

    assert DevMailController not in route_handlers(dev_pages=False)
    assert DevMailController in route_handlers(dev_pages=True)
