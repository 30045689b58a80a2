"""API keys: the profile page (plain forms and htmx, CSRF), staff revocation, and `vtu apikeys ...` as a
real process. A key made on each of these works on the API at once, and a revoked one stops at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from sqlalchemy import select

from app.accounts.apikeys import ApiKey, hash_key
from app.accounts.passwords import hash_password
from tests.factories import PASSWORD, create_user
from tests.helpers import csrf_token, log_in, post_form

SECRET = re.compile(r'id="new-key-secret">(vtu_[A-Za-z0-9_\-]+)<')


async def _logged_in(client, db, **fields):
    user = await create_user(db, **{"tier": "reseller", **fields})
    await db.commit()
    await log_in(client, user.email, PASSWORD)
    return user


async def _keys(db, user_id) -> list[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.user_id == user_id).execution_options(populate_existing=True)
    return list((await db.execute(stmt)).scalars())


async def test_page_needs_login(client, db):
    response = await client.get("/account/api-keys", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_create_shows_the_key_once_and_stores_only_its_hash(client, db):
    user = await _logged_in(client, db)
    page = await client.get("/account/api-keys")
    assert page.status_code == 200 and "No keys yet" in page.text
    assert 'href="/api/guide"' in page.text and 'href="/api/docs"' in page.text  # the guide and the reference
    response = await post_form(
        client,
        "/account/api-keys",
        {
            "name": "Shop server",
            "allowed_ips": "127.0.0.1, 10.0.0.0/8",
            "callback_url": "https://shop.example.ng/cb",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    secret = SECRET.search(response.text).group(1)
    [key] = await _keys(db, user.id)
    assert key.key_hash == hash_key(secret) and secret not in (key.key_hash, key.prefix)
    assert secret.startswith(key.prefix + "_") and key.name == "Shop server"
    assert (
        key.allowed_ips == ["127.0.0.1/32", "10.0.0.0/8"] and key.callback_url == "https://shop.example.ng/cb"
    )
    assert key.callback_secret in response.text
    again = await client.get("/account/api-keys")
    assert secret not in again.text and key.callback_secret not in again.text  # shown once
    assert key.prefix in again.text and "Shop server" in again.text
    # The key works on the API right away.
    wallet = await client.get("/api/v1/wallet", headers={"Authorization": f"Bearer {secret}"})
    assert wallet.status_code == 200


async def test_create_with_htmx_swaps_the_partial(client, db):
    await _logged_in(client, db)
    token = await csrf_token(client, "/account/api-keys")
    response = await client.post(
        "/account/api-keys",
        data={"name": "htmx", "password": PASSWORD},
        headers={"HX-Request": "true", "x-csrftoken": token},
    )
    assert response.status_code == 200
    assert "<html" not in response.text and SECRET.search(response.text)


async def test_bad_input_shows_field_errors_and_creates_nothing(client, db):
    user = await _logged_in(client, db)
    response = await post_form(
        client,
        "/account/api-keys",
        {"name": "x" * 61, "allowed_ips": "not-an-ip", "callback_url": "ftp://x", "password": PASSWORD},
    )
    assert response.status_code == 422
    assert (
        "is not an IP address or network" in response.text and "Use at most 60 characters." in response.text
    )
    assert "http(s)://" in response.text
    assert await _keys(db, user.id) == []


async def test_forms_need_csrf(client, db):
    user = await _logged_in(client, db)
    response = await client.post("/account/api-keys", data={"name": "no token"})
    assert response.status_code == 403
    assert await _keys(db, user.id) == []


async def test_revoke_own_key_but_not_someone_elses(client, make_client, db):
    user = await _logged_in(client, db)
    created = await post_form(client, "/account/api-keys", {"name": "mine", "password": PASSWORD})
    secret = SECRET.search(created.text).group(1)
    [key] = await _keys(db, user.id)
    async with make_client() as intruder:
        await _logged_in(intruder, db)
        response = await post_form(
            intruder, f"/account/api-keys/{key.id}/revoke", {}, page="/account/api-keys"
        )
        assert response.status_code == 303
    [key] = await _keys(db, user.id)
    assert key.revoked_at is None
    response = await post_form(client, f"/account/api-keys/{key.id}/revoke", {}, page="/account/api-keys")
    assert response.status_code == 303 and response.headers["location"] == "/account/api-keys"
    [key] = await _keys(db, user.id)
    assert key.revoked_at is not None and key.revoked_by == f"user:{user.id}"
    page = await client.get("/account/api-keys")
    assert "Key revoked" in page.text and "Revoked" in page.text
    denied = await client.get("/api/v1/wallet", headers={"Authorization": f"Bearer {secret}"})
    assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"


async def test_staff_can_revoke_any_key(client, make_client, db):
    owner = await _logged_in(client, db)
    created = await post_form(client, "/account/api-keys", {"name": "leaked", "password": PASSWORD})
    secret = SECRET.search(created.text).group(1)
    [key] = await _keys(db, owner.id)
    async with make_client() as staff:
        await _logged_in(staff, db, is_staff=True)
        listing = await staff.get("/staff/api-keys")
        assert listing.status_code == 200 and key.prefix in listing.text and owner.email in listing.text
        response = await post_form(staff, f"/staff/api-keys/{key.id}/revoke", {}, page="/staff/api-keys")
        assert response.status_code == 303
    [key] = await _keys(db, owner.id)
    assert key.revoked_at is not None and key.revoked_by.startswith("staff:")
    assert (
        await client.get("/api/v1/wallet", headers={"Authorization": f"Bearer {secret}"})
    ).status_code == 401
    # Customers cannot reach the staff action.
    response = await post_form(client, f"/staff/api-keys/{key.id}/revoke", {}, page="/account/api-keys")
    assert response.status_code == 403


def _vtu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


async def test_cli_create_prints_the_key_alone_on_its_last_line_then_revoke(client, db):
    user = await create_user(db, tier="reseller")
    await db.commit()
    result = _vtu("apikeys", "create", "--email", user.email.upper(), "--name", "cli key")
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"vtu_[a-z0-9]{8}_[A-Za-z0-9_\-]{43}", secret)
    [key] = await _keys(db, user.id)
    assert key.name == "cli key" and key.key_hash == hash_key(secret)
    assert (
        await client.get("/api/v1/wallet", headers={"Authorization": f"Bearer {secret}"})
    ).status_code == 200
    revoked = _vtu("apikeys", "revoke", key.prefix)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert (
        await client.get("/api/v1/wallet", headers={"Authorization": f"Bearer {secret}"})
    ).status_code == 401


# -- step-up and tiers (a stolen session must not mint credentials) ------------------------------------------
async def test_creating_a_key_needs_the_password_and_the_pin(client, db):
    user = await _logged_in(client, db)
    no_password = await post_form(client, "/account/api-keys", {"name": "thief"})
    assert no_password.status_code == 422 and "password is not correct" in no_password.text
    wrong = await post_form(client, "/account/api-keys", {"name": "thief", "password": "guess-1234"})
    assert wrong.status_code == 422 and not SECRET.search(wrong.text)
    assert await _keys(db, user.id) == []
    user.pin_hash = hash_password("2580")
    await db.commit()
    page = await client.get("/account/api-keys")
    assert 'name="pin"' in page.text  # the form asks for the PIN once there is one
    no_pin = await post_form(client, "/account/api-keys", {"name": "thief", "password": PASSWORD})
    assert no_pin.status_code == 422 and "Enter your transaction PIN" in no_pin.text
    bad_pin = await post_form(
        client, "/account/api-keys", {"name": "thief", "password": PASSWORD, "pin": "1111"}
    )
    assert bad_pin.status_code == 422 and "PIN is not correct" in bad_pin.text
    assert await _keys(db, user.id) == []
    ok = await post_form(client, "/account/api-keys", {"name": "mine", "password": PASSWORD, "pin": "2580"})
    assert ok.status_code == 200 and SECRET.search(ok.text)
    assert len(await _keys(db, user.id)) == 1


async def test_password_guesses_on_the_key_page_are_throttled(client, db, settings):
    user = await _logged_in(client, db)
    statuses = []
    for n in range(settings.login_max_failures + 2):
        wrong = await post_form(client, "/account/api-keys", {"name": "k", "password": f"guess-{n}-xyz"})
        statuses.append("Too many wrong passwords" in wrong.text)
    assert statuses == [False] * settings.login_max_failures + [True, True]
    # locked now: even the right password is refused
    locked = await post_form(client, "/account/api-keys", {"name": "k", "password": PASSWORD})
    assert "Too many wrong passwords" in locked.text and await _keys(db, user.id) == []


async def test_customers_cannot_hold_keys_by_default(client, db):
    user = await _logged_in(client, db, tier="customer")
    page = await client.get("/account/api-keys")
    assert 'id="tier-refused"' in page.text and 'id="api-key-form"' not in page.text
    refused = await post_form(client, "/account/api-keys", {"name": "k", "password": PASSWORD})
    assert refused.status_code == 422 and "reseller accounts" in refused.text
    assert await _keys(db, user.id) == []
    cli = _vtu("apikeys", "create", "--email", user.email)
    assert cli.returncode == 1 and "API_KEY_TIERS" in cli.stderr
    assert await _keys(db, user.id) == []


async def test_a_key_stops_working_when_its_owner_leaves_the_api_tiers(client, db):
    user = await _logged_in(client, db)
    created = await post_form(client, "/account/api-keys", {"name": "k", "password": PASSWORD})
    secret = SECRET.search(created.text).group(1)
    auth = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/api/v1/wallet", headers=auth)).status_code == 200
    user.tier = "customer"
    await db.commit()
    assert (await client.get("/api/v1/wallet", headers=auth)).status_code == 401


async def test_changing_the_callback_url_needs_step_up(client, db):
    user = await _logged_in(client, db)
    await post_form(
        client,
        "/account/api-keys",
        {"name": "k", "password": PASSWORD, "callback_url": "https://shop.example.ng/cb"},
    )
    [key] = await _keys(db, user.id)
    path = f"/account/api-keys/{key.id}/callback"
    refused = await post_form(
        client, path, {"callback_url": "https://attacker.example/steal"}, page="/account/api-keys"
    )
    assert refused.status_code == 422 and "password is not correct" in refused.text
    [key] = await _keys(db, user.id)
    assert key.callback_url == "https://shop.example.ng/cb"
    bad_url = await post_form(
        client, path, {"callback_url": "ftp://x", "password": PASSWORD}, page="/account/api-keys"
    )
    assert bad_url.status_code == 422 and "http(s)://" in bad_url.text
    ok = await post_form(
        client,
        path,
        {"callback_url": "https://shop.example.ng/v2", "password": PASSWORD},
        page="/account/api-keys",
    )
    assert ok.status_code == 303
    [key] = await _keys(db, user.id)
    assert key.callback_url == "https://shop.example.ng/v2"
    removed = await post_form(
        client, path, {"callback_url": "", "password": PASSWORD}, page="/account/api-keys"
    )
    assert removed.status_code == 303
    [key] = await _keys(db, user.id)
    assert key.callback_url is None


async def test_nobody_changes_another_users_callback_url(client, make_client, db):
    owner = await _logged_in(client, db)
    await post_form(
        client,
        "/account/api-keys",
        {"name": "k", "password": PASSWORD, "callback_url": "https://a.example/cb"},
    )
    [key] = await _keys(db, owner.id)
    async with make_client() as intruder:
        await _logged_in(intruder, db)
        response = await post_form(
            intruder,
            f"/account/api-keys/{key.id}/callback",
            {"callback_url": "https://evil.example/cb", "password": PASSWORD},
            page="/account/api-keys",
        )
        assert response.status_code == 422 and "does not exist" in response.text
    [key] = await _keys(db, owner.id)
    assert key.callback_url == "https://a.example/cb"
