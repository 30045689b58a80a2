"""The receipt e-mail of exam PINs: the PINs are in the mail, but never in plain text in the outbox."""

from __future__ import annotations

from sqlalchemy import text

from app.vtu.providers.stub import DELIVERED_PHONE, stub_pins
from tests.integration import mail_fixtures
from tests.integration.mail_fixtures import mail_rows, wait_for_mail
from tests.integration.test_purchase_pages import customer, purchases, receipt_id, seed_plans, submit

smtp_server = mail_fixtures.smtp_server
mail_worker = mail_fixtures.mail_worker


async def test_the_receipt_mail_carries_the_pins_and_the_outbox_never_holds_them(
    client, db, sessionmaker, smtp_server, mail_worker
):
    mailbox = smtp_server[0]
    await seed_plans(sessionmaker, "waec")
    user = await customer(client, db, sessionmaker, fund_kobo=2_000_000)
    form = {"service_id": "waec", "variation_code": "waecdirect", "quantity": "2", "phone": DELIVERED_PHONE}
    receipt_id(await submit(client, "/buy/exam", form))
    [row] = await purchases(sessionmaker)
    expected = stub_pins(row.request_id, 2)
    [message] = await wait_for_mail(mailbox, user.email)
    for serial, pin in expected:
        assert pin in message.text and pin in message.html
        assert serial in message.text and serial in message.html
    [mail] = await mail_rows(sessionmaker)
    async with sessionmaker() as session:
        stored = await session.scalar(
            text("SELECT context::text FROM outgoing_mail WHERE id = :i"), {"i": mail.id}
        )
    assert stored is not None
    assert not any(pin in stored or serial in stored for serial, pin in expected)
