"""Forgot password, end to end: the web form, the outbox, a real SAQ worker and a real SMTP server in the
test process; the link from the received e-mail is followed like a customer would."""

from __future__ import annotations

import asyncio
import hashlib

from sqlalchemy import text

from app.accounts.models import User
from tests.factories import PASSWORD, create_user
from tests.helpers import csrf_token, log_in, post_form
from tests.integration import mail_fixtures
from tests.integration.mail_fixtures import link_in, mail_rows, settle, wait_for_mail

smtp_server = mail_fixtures.smtp_server
mailbox = mail_fixtures.mailbox
mail_worker = mail_fixtures.mail_worker

NEW_PASSWORD = "fresh-start-2026"


async def forgot(client, email: str):
    return await post_form(client, "/password/forgot", {"email": email})


async def user_row(sessionmaker, email: str) -> User:
    async with sessionmaker() as session:
        user = (await session.execute(text("SELECT * FROM users WHERE email = :e"), {"e": email})).one()
        return user


async def test_unknown_address_gets_the_same_answer_and_no_mail(
    client, db, sessionmaker, settings, smtp_server, mail_worker
):
    mailbox = smtp_server[0]
    user = await create_user(db)
    await db.commit()
    known = await forgot(client, user.email)
    unknown = await forgot(client, "nobody-here@example.ng")
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text  # same status, same body
    assert "If an account uses the address you entered" in known.text
    [message] = await wait_for_mail(mailbox, user.email)
    await settle()
    assert [m.recipients for m in mailbox.messages if "nobody-here" in str(m.recipients)] == []
    assert len(await mail_rows(sessionmaker)) == 1  # nothing recorded for the unknown address
    assert message.subject == "Reset your TopUp NG password"
    assert link_in(message).startswith(f"{settings.site_url}/password/reset/")


async def test_reset_link_works_once_signs_out_every_session_and_logs_nobody_in(
    client, db, sessionmaker, settings, make_client, smtp_server, mail_worker
):
    mailbox = smtp_server[0]
    user = await create_user(db)
    await db.commit()
    async with make_client() as phone:  # a second device, logged in before the reset
        assert (await log_in(phone, user.email, PASSWORD)).status_code == 303
        assert (await phone.get("/dashboard")).status_code == 200

        assert (await forgot(client, user.email)).status_code == 200
        [message] = await wait_for_mail(mailbox, user.email)
        link = link_in(message)
        path = link.removeprefix(settings.site_url)
        raw_token = path.rsplit("/", 1)[1]
        assert len(raw_token) >= 43  # 32 random bytes
        async with sessionmaker() as session:  # only the SHA-256 is stored, and the outbox forgot the link
            stored = (await session.execute(text("SELECT token_hash FROM account_tokens"))).scalars().all()
            [row] = await mail_rows(sessionmaker)
        assert stored == [hashlib.sha256(raw_token.encode()).hexdigest()]
        assert row.status == "sent" and row.context == {} and raw_token not in str(row)

        page = await client.get(path)
        assert page.status_code == 200
        assert 'name="password"' in page.text and 'name="password_confirm"' in page.text
        token = await csrf_token(client, path)
        mismatch = await client.post(
            path, data={"password": NEW_PASSWORD, "password_confirm": "other-one-123", "_csrf_token": token}
        )
        assert mismatch.status_code == 422 and "do not match" in mismatch.text
        weak = await client.post(
            path, data={"password": "short", "password_confirm": "short", "_csrf_token": token}
        )
        assert weak.status_code == 422 and "at least 8" in weak.text
        done = await client.post(
            path, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD, "_csrf_token": token}
        )
        assert done.status_code == 303 and done.headers["location"] == "/login"
        login_page = await client.get("/login")
        assert "Your password has been changed" in login_page.text
        assert (await client.get("/dashboard", follow_redirects=False)).status_code in (302, 303, 401)

        # The other device is signed out.
        assert (await phone.get("/dashboard", follow_redirects=False)).status_code in (302, 303, 401)

    assert (await user_row(sessionmaker, user.email)).password_version == 2
    assert (await log_in(client, user.email, PASSWORD)).status_code == 422
    async with make_client() as fresh:
        assert (await log_in(fresh, user.email, NEW_PASSWORD)).status_code == 303

    # Used: the link now explains itself and offers a new one; a second POST changes nothing.
    again = await client.get(path)
    assert again.status_code == 400 and 'href="/password/forgot"' in again.text
    reuse = await client.post(
        path,
        data={"password": "another-pass-99", "password_confirm": "another-pass-99", "_csrf_token": token},
    )
    assert reuse.status_code == 400 and 'href="/password/forgot"' in reuse.text
    assert (await user_row(sessionmaker, user.email)).password_version == 2

    # "Password changed" is e-mailed (once) for the reset too.
    messages = await wait_for_mail(mailbox, user.email, 2)
    await settle()
    assert [m.subject for m in mailbox.to(user.email)] == [
        "Reset your TopUp NG password",
        "Your TopUp NG password was changed",
    ]
    assert "reset with an e-mailed link" in messages[1].text


async def test_expired_and_replaced_links_do_not_work(
    client, db, sessionmaker, settings, smtp_server, mail_worker
):
    mailbox = smtp_server[0]
    user = await create_user(db)
    await db.commit()
    await forgot(client, user.email)
    [first] = await wait_for_mail(mailbox, user.email)
    await forgot(client, user.email)
    _, second = await wait_for_mail(mailbox, user.email, 2)
    old = link_in(first).removeprefix(settings.site_url)
    new = link_in(second).removeprefix(settings.site_url)
    assert old != new
    assert (await client.get(old)).status_code == 400  # asking again replaced the first link
    assert (await client.get(new)).status_code == 200
    async with sessionmaker() as session, session.begin():  # 30 minutes later
        await session.execute(text("UPDATE account_tokens SET expires_at = now() - interval '1 second'"))
    expired = await client.get(new)
    assert expired.status_code == 400 and "Send me a new link" in expired.text
    token = await csrf_token(client, "/password/forgot")
    post = await client.post(
        new, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD, "_csrf_token": token}
    )
    assert post.status_code == 400
    assert (await user_row(sessionmaker, user.email)).password_version == 1
    for junk in ("/password/reset/x", "/password/reset/" + "a" * 500, "/password/reset/%00%ff"):
        response = await client.get(junk)
        assert response.status_code == 400 and "Send me a new link" in response.text


async def test_forgot_is_throttled_per_address_the_same_way_for_everyone(client, db, sessionmaker, settings):
    user = await create_user(db)
    await db.commit()
    for email in (user.email, "ghost@example.ng"):
        answers = [await forgot(client, email) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert "Too many reset requests" in answers[3].text and int(answers[3].headers["retry-after"]) > 0
    assert len(await mail_rows(sessionmaker)) == 3  # the known address, three times; the ghost, never
    bad = await forgot(client, "not-an-address")
    assert bad.status_code == 422 and "valid e-mail" in bad.text


async def test_the_request_never_talks_smtp(app, client, db, sessionmaker, settings, smtp_server):
    """No worker runs: the request records the e-mail and enqueues its job, and the SMTP server sees
    nothing until a worker takes the job."""
    mailbox = smtp_server[0]
    before = len(mailbox.messages)
    user = await create_user(db)
    await db.commit()
    assert (await forgot(client, user.email)).status_code == 200
    await settle(0.5)
    assert len(mailbox.messages) == before
    [row] = await mail_rows(sessionmaker)
    assert row.status == "queued" and row.attempts == 0 and "/password/reset/" in row.context["link"]
    job = await app.state.saq.get_queues().get("vtu").job(f"mail:{row.id}")
    assert job is not None and job.status == "queued"
    worker, task, queue = await mail_fixtures.start_worker(settings, smtp_server[1])
    try:
        [message] = await wait_for_mail(mailbox, user.email)
    finally:
        await mail_fixtures.stop_worker(worker, task, queue)
    assert "/password/reset/" in message.text


async def test_inactive_accounts_get_no_link(client, db, sessionmaker):
    user = await create_user(db)
    user.is_active = False
    await db.commit()
    assert (await forgot(client, user.email)).status_code == 200
    assert await mail_rows(sessionmaker) == []


async def test_concurrent_posts_of_one_link_reset_once(client, db, sessionmaker, settings, make_client):
    user = await create_user(db)
    await db.commit()
    await forgot(client, user.email)
    [row] = await mail_rows(sessionmaker)
    path = row.context["link"].removeprefix(settings.site_url)

    async def use(i: int) -> int:
        async with make_client() as browser:
            token = await csrf_token(browser, path if i == 0 else "/password/forgot")
            password = f"racing-pass-{i:03d}"
            response = await browser.post(
                path, data={"password": password, "password_confirm": password, "_csrf_token": token}
            )
            return response.status_code

    statuses = await asyncio.gather(*(use(i) for i in range(6)))
    assert sorted(statuses) == [303] + [400] * 5
    assert (await user_row(sessionmaker, user.email)).password_version == 2
    changed = await mail_rows(sessionmaker, "template = 'password_changed'")
    assert len(changed) == 1


async def test_a_reset_clears_the_pin_and_deletes_every_stored_session(
    app, client, db, sessionmaker, settings, make_client, smtp_server, mail_worker
):
    """A customer who forgot the PIN gets back in through a reset; the other devices' sessions are gone
    from the store, not only outdated."""
    from app.accounts.passwords import hash_password
    from app.accounts.sessions import list_sessions

    mailbox = smtp_server[0]
    user = await create_user(db)
    user.pin_hash = hash_password("2580")
    await db.commit()
    async with make_client() as phone:
        sid = (await log_in(phone, user.email, PASSWORD)).cookies.get("vtu_session")
        assert await app.stores.get("sessions").exists(sid)
        assert (await forgot(client, user.email)).status_code == 200
        [message] = await wait_for_mail(mailbox, user.email)
        path = link_in(message).removeprefix(settings.site_url)
        token = await csrf_token(client, path)
        done = await client.post(
            path, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD, "_csrf_token": token}
        )
        assert done.status_code == 303
        assert not await app.stores.get("sessions").exists(sid)
        assert await list_sessions(app, user.id) == []
    assert (await user_row(sessionmaker, user.email)).pin_hash is None
    await settle()
