"""Sign-up, log-in, CSRF, throttling and password changes through the real app, DB and Redis."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from app.accounts.models import User
from tests.factories import PASSWORD, create_user
from tests.helpers import csrf_token, log_in, post_form, sign_up


async def _count_users(db) -> int:
    return (await db.execute(select(func.count()).select_from(User))).scalar_one()


async def test_sign_up_logs_in_and_lands_on_dashboard(client, db):
    response = await sign_up(client, email="Ada@Example.NG", phone="+2348031234567")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert "Wallet balance" in page.text
    user = (await db.execute(select(User).where(User.email == "ada@example.ng"))).scalar_one()
    assert user.phone == "08031234567"
    assert user.password_hash.startswith("$argon2id$")
    assert len(user.referral_code) == 8 and user.account_reference.startswith("VTU")


async def test_referral_link_records_the_referrer(client, db):
    referrer = await create_user(db)
    await db.commit()
    page = await client.get(f"/signup?ref={referrer.referral_code.lower()}")
    assert referrer.referral_code in page.text  # prefilled from ?ref=
    response = await sign_up(client, email="friend@example.ng", referral_code=referrer.referral_code)
    assert response.status_code == 303
    friend = (await db.execute(select(User).where(User.email == "friend@example.ng"))).scalar_one()
    assert friend.referred_by_id == referrer.id


async def test_bad_sign_up_shows_every_field_error_and_creates_nothing(client, db):
    response = await sign_up(
        client, email="not-an-email", phone="12345", password="short", referral_code="NOPE1234"
    )
    assert response.status_code == 422
    for message in (
        "Enter a valid e-mail address.",
        "Enter a Nigerian mobile number",
        "Use at least 8 characters.",
        "No customer has that referral code",
    ):
        assert message in response.text
    assert 'value="not-an-email"' in response.text  # what the user typed is kept
    assert await _count_users(db) == 0


async def test_htmx_sign_up_swaps_the_form_partial_and_redirects_on_success(client, db):
    token = await csrf_token(client, "/signup")
    headers = {"HX-Request": "true", "x-csrftoken": token}
    bad = await client.post("/signup", data={"email": "x", "password": "p"}, headers=headers)
    assert bad.status_code == 422
    assert bad.text.lstrip().startswith('<form id="signup-form"')  # partial only, no layout
    good = await client.post(
        "/signup",
        data={"full_name": "H X", "email": "hx@example.ng", "phone": "08091234567", "password": PASSWORD},
        headers=headers,
    )
    assert good.status_code == 200
    assert good.headers["HX-Redirect"] == "/dashboard"
    assert await _count_users(db) == 1


async def test_duplicate_email_is_a_field_error(client, db):
    existing = await create_user(db)
    await db.commit()
    response = await sign_up(client, email=existing.email.upper())
    assert response.status_code == 422
    assert "already exists" in response.text
    assert await _count_users(db) == 1


async def test_concurrent_sign_ups_with_one_email_create_one_user(app, db, make_client):
    async def attempt(i: int) -> int:
        async with make_client() as c:
            r = await sign_up(c, email="race@example.ng", phone=f"0907000{i:04d}")
            return r.status_code

    statuses = await asyncio.gather(*(attempt(i) for i in range(8)))
    assert statuses.count(303) == 1
    assert set(statuses) <= {303, 422}
    assert await _count_users(db) == 1


async def test_forged_csrf_token_is_refused_and_nothing_is_created(client, db):
    await client.get("/signup")  # has a real CSRF cookie, but sends a forged token
    response = await client.post(
        "/signup",
        data={
            "email": "csrf@example.ng",
            "phone": "08031112222",
            "password": PASSWORD,
            "_csrf_token": "forged",
        },
    )
    assert response.status_code == 403
    assert "expired or was sent from another site" in response.text
    missing = await client.post("/signup", data={"email": "csrf@example.ng", "password": PASSWORD})
    assert missing.status_code == 403
    assert await _count_users(db) == 0


async def test_log_in_and_out(client, db):
    user = await create_user(db)
    await db.commit()
    assert (await client.get("/dashboard", follow_redirects=False)).status_code == 303
    response = await log_in(client, user.email, PASSWORD)
    assert response.status_code == 303
    assert (await client.get("/dashboard")).status_code == 200
    logout = await post_form(client, "/logout", {}, page="/dashboard")
    assert logout.status_code == 303
    after = await client.get("/dashboard", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/login?next=")


async def test_wrong_passwords_are_rate_limited(client, db, settings):
    user = await create_user(db)
    await db.commit()
    for _ in range(settings.login_max_failures):
        r = await log_in(client, user.email, "wrong-password")
        assert r.status_code == 422
        assert "do not match" in r.text
    locked = await log_in(client, user.email, PASSWORD)  # even the right password now waits
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in locked.text
    assert (await client.get("/dashboard", follow_redirects=False)).status_code == 303


async def test_login_redirect_only_goes_to_this_site(client, db):
    user = await create_user(db)
    await db.commit()
    token = await csrf_token(client, "/login")
    response = await client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "next": "//evil.example/x", "_csrf_token": token},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/dashboard"


async def test_password_change_signs_out_other_sessions(client, db, make_client):
    user = await create_user(db)
    await db.commit()
    async with make_client() as other:
        await log_in(other, user.email, PASSWORD)
        await log_in(client, user.email, PASSWORD)
        assert (await other.get("/dashboard")).status_code == 200
        bad = await post_form(
            client,
            "/account/password",
            {"current_password": "nope", "new_password": "x", "confirm_password": "y"},
        )
        assert bad.status_code == 422 and "not correct" in bad.text
        ok = await post_form(
            client,
            "/account/password",
            {
                "current_password": PASSWORD,
                "new_password": "brand-new-pass-7",
                "confirm_password": "brand-new-pass-7",
            },
        )
        assert ok.status_code == 303
        assert (await client.get("/dashboard")).status_code == 200  # this device stays in
        assert (await other.get("/dashboard", follow_redirects=False)).status_code == 303  # the other is out
    async with make_client() as fresh:
        assert (await log_in(fresh, user.email, PASSWORD)).status_code == 422
        assert (await log_in(fresh, user.email, "brand-new-pass-7")).status_code == 303
