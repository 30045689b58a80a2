"""Accounts under attack: planted session ids, parallel password guesses, tricky `next` values (as a form and
through htmx, over real HTTP), no-store on every signed-in page, prod cookies and HSTS."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from typing import Any

import httpx
import pytest

from app.accounts.sessions import list_sessions
from app.core.redirects import safe_next
from tests.factories import PASSWORD, create_user
from tests.helpers import csrf_token, log_in, post_form
from tests.integration import api_fixtures

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http

SESSION = "vtu_session"


# -- session fixation ------------------------------------------------------------------------------------
async def test_a_planted_unknown_session_id_is_never_used(client, db):
    user = await create_user(db)
    await db.commit()
    planted = "a" * 64
    client.cookies.set(SESSION, planted, domain="testserver.local")
    response = await log_in(client, user.email, PASSWORD)
    assert response.status_code == 303
    issued = response.cookies.get(SESSION)
    assert issued and issued != planted
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver.local") as attacker:
        attacker.cookies.set(SESSION, planted, domain="testserver.local")
        assert (await attacker.get("/dashboard", follow_redirects=False)).status_code == 303  # not logged in


async def test_a_planted_live_session_id_does_not_survive_login(client, make_client, db):
    """The attacker's own real (stored) session id, planted in the victim's browser: after the victim logs
    in, that id is deleted and the attacker is not signed in as the victim."""
    victim = await create_user(db)
    await db.commit()
    async with make_client() as attacker:
        await post_form(attacker, "/logout", {}, page="/login")  # leaves a stored session (a flash message)
        attacker_id = attacker.cookies.get(SESSION)
        assert attacker_id
        client.cookies.set(SESSION, attacker_id, domain="testserver.local")
        response = await log_in(client, victim.email, PASSWORD)
        assert response.status_code == 303
        assert response.cookies.get(SESSION) not in (None, attacker_id)
        assert (await client.get("/dashboard")).status_code == 200
        assert (await attacker.get("/dashboard", follow_redirects=False)).status_code == 303


async def test_login_signup_and_password_change_each_issue_a_new_id(client, app, db):
    user = await create_user(db)
    await db.commit()
    first = (await log_in(client, user.email, PASSWORD)).cookies.get(SESSION)
    relogin = await post_form(
        client, "/login", {"email": user.email, "password": PASSWORD}, page="/account/password"
    )
    again = relogin.cookies.get(SESSION)
    assert first and again and first != again
    changed = await post_form(
        client,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "another-pass-99",
            "confirm_password": "another-pass-99",
        },
    )
    assert changed.status_code == 303
    third = changed.cookies.get(SESSION)
    assert third and third not in (first, again)
    old = httpx.AsyncClient(transport=client._transport, base_url="http://testserver.local")
    async with old:
        old.cookies.set(SESSION, again, domain="testserver.local")
        assert (await old.get("/dashboard", follow_redirects=False)).status_code == 303
    sessions = await list_sessions(app, user.id)
    assert [s["id_prefix"] for s in sessions] == [third[:8]]  # the others were ended, not just outdated


async def test_logout_deletes_the_stored_session(client, app, db):
    user = await create_user(db)
    await db.commit()
    sid = (await log_in(client, user.email, PASSWORD)).cookies.get(SESSION)
    assert await app.stores.get("sessions").exists(sid)
    await post_form(client, "/logout", {}, page="/dashboard")
    assert not await app.stores.get("sessions").exists(sid)
    assert await list_sessions(app, user.id) == []


# -- throttles count before they verify ------------------------------------------------------------------
async def test_forty_parallel_wrong_passwords_get_five_verifications(client, make_client, db, settings):
    user = await create_user(db)
    await db.commit()
    token = await csrf_token(client)

    async def guess(n: int) -> int:
        response = await client.post(
            "/login",
            data={"email": user.email, "password": f"wrong-guess-{n}", "_csrf_token": token},
            follow_redirects=False,
        )
        return response.status_code

    statuses = await asyncio.gather(*(guess(n) for n in range(40)))
    # 422 = the password was verified (and was wrong); 429 = refused before any verification
    assert statuses.count(422) == settings.login_max_failures
    assert statuses.count(429) == 40 - settings.login_max_failures
    refused = await log_in(client, user.email, PASSWORD)  # locked: even the right password
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


async def test_guesses_spread_over_many_accounts_from_one_address_are_bounded(client, db, settings):
    users = [await create_user(db) for _ in range(30)]
    await db.commit()
    token = await csrf_token(client)

    async def guess(email: str, n: int) -> int:
        response = await client.post(
            "/login",
            data={"email": email, "password": f"spray-{n}", "_csrf_token": token},
            follow_redirects=False,
        )
        return response.status_code

    statuses = await asyncio.gather(*(guess(u.email, n) for n, u in enumerate(users)))
    verified = statuses.count(422)
    assert verified == settings.login_max_failures * 4 and statuses.count(429) == 30 - verified


async def test_a_right_password_gives_its_attempt_back(client, make_client, db, settings):
    """Customers behind one mobile-network address logging in successfully never lock each other out."""
    users = [await create_user(db) for _ in range(settings.login_max_failures * 4 + 3)]
    await db.commit()
    for user in users:
        async with make_client() as browser:
            assert (await log_in(browser, user.email, PASSWORD)).status_code == 303


async def test_parallel_wrong_current_passwords_are_throttled_too(client, db, settings):
    user = await create_user(db)
    await db.commit()
    await log_in(client, user.email, PASSWORD)
    token = await csrf_token(client, "/account/password")

    async def attempt(n: int) -> str:
        response = await client.post(
            "/account/password",
            data={
                "current_password": f"guess-{n}-abc",
                "new_password": "new-pass-123456",
                "confirm_password": "new-pass-123456",
                "_csrf_token": token,
            },
            follow_redirects=False,
        )
        return "Too many wrong passwords" if "Too many wrong passwords" in response.text else "wrong"

    results = await asyncio.gather(*(attempt(n) for n in range(20)))
    assert results.count("wrong") == settings.login_max_failures


# -- next: only same-site paths ----------------------------------------------------------------------------
TRICKY = [
    "/\t/evil.example/",
    "/\n/evil.example/",
    "/\r/evil.example/",
    "/\r\nSet-Cookie: x=1",
    "//evil.example/",
    "\\\\evil.example/",
    "/\\evil.example/",
    "https://evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    "/%09/evil.example/",
    "/%0a/evil.example/",
    "/%2F/evil.example/",
    "/%5Cevil.example/",
    "%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    " //evil.example",
    "/é",
    "evil.example",
    "",
]


@pytest.mark.parametrize("value", TRICKY)
def test_safe_next_refuses_anything_but_a_plain_path(value):
    assert safe_next(value) == "/dashboard"


def test_safe_next_keeps_real_paths():
    assert safe_next("/buy/data?service_id=mtn-data&x=1") == "/buy/data?service_id=mtn-data&x=1"
    assert safe_next("/purchases/0193a2c4-0000-7000-8000-000000000001") != "/dashboard"


async def _served_login(http: httpx.AsyncClient, email: str, target: str, *, htmx: bool) -> httpx.Response:
    page = await http.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    headers = {"HX-Request": "true", "x-csrftoken": token} if htmx else {}
    return await http.post(
        "/login",
        data={"email": email, "password": PASSWORD, "next": target, "_csrf_token": token},
        headers=headers,
        follow_redirects=False,
    )


async def test_every_tricky_next_stays_on_site_over_real_http(api, db):
    """Through a real uvicorn server: no value leads off-site and none makes the server drop the
    connection (h11 refuses CR/LF in a header by closing it)."""
    user = await create_user(db)
    await db.commit()
    for htmx in (False, True):
        for value in TRICKY:
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as browser:
                response = await _served_login(browser, user.email, value, htmx=htmx)
            where = response.headers.get("hx-redirect" if htmx else "location")
            assert response.status_code == (200 if htmx else 303), (value, response.status_code)
            assert where == "/dashboard", (value, where)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as browser:
        good = await _served_login(browser, user.email, "/buy/data", htmx=True)
        assert good.headers["hx-redirect"] == "/buy/data"


async def test_login_page_with_a_tricky_next_renders_the_safe_one(client):
    page = await client.get("/login", params={"next": "/\t/evil.example/"})
    assert page.status_code == 200 and "evil.example" not in page.text
    assert 'name="next"' not in page.text  # no explicit destination: log-in picks the home of the account
    kept = await client.get("/login", params={"next": "/buy/data"})
    assert 'name="next" value="/buy/data"' in kept.text


# -- nothing private is cached -------------------------------------------------------------------------------
def _sample(path: str) -> str:
    def fill(match: re.Match[str]) -> str:
        kind = match.group(2) or "str"
        return {"uuid": str(uuid.uuid4()), "int": "1"}.get(kind, "x")

    return re.sub(r"\{(\w+)(?::(\w+))?\}", fill, path)


# The installable app's files (/manifest.webmanifest, /sw.js, /offline) are the same for everyone, outside
# the session middleware, and cacheable on purpose (app/core/pwa.py; test_pwa.py checks they hold no user).
PUBLIC_PREFIXES = (
    "/static", "/health", "/ready", "/payments/webhooks", "/vtu/webhooks", "/api/",
    "/manifest.webmanifest", "/sw.js", "/offline",
)  # fmt: skip


async def test_every_signed_in_get_route_answers_no_store(client, app, db):
    """Walk the route table: every GET page and partial a signed-in user (a superuser, so staff pages
    answer too) can open carries Cache-Control: no-store, whatever its status."""
    user = await create_user(db, is_staff=True, is_superuser=True)
    await db.commit()
    await log_in(client, user.email, PASSWORD)
    checked = []
    for route in app.routes:
        if any(route.path.startswith(p) for p in PUBLIC_PREFIXES) or "GET" not in getattr(
            route, "methods", set()
        ):
            continue
        path = _sample(route.path)
        response = await client.get(path, follow_redirects=False)
        assert response.headers.get("cache-control") == "no-store", (route.path, response.status_code)
        checked.append(route.path)
    assert len(checked) > 20 and "/dashboard" in checked and "/staff/purchases" in checked


async def test_signed_out_pages_are_not_marked_private(client):
    assert "no-store" not in (await client.get("/login")).headers.get("cache-control", "")


async def test_api_answers_are_no_store(http, sessionmaker):
    reseller = await api_fixtures.new_reseller(sessionmaker)
    response = await http.get("/api/v1/wallet", headers=reseller.headers)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"


# -- prod: __Host- cookies and HSTS --------------------------------------------------------------------------
async def test_prod_cookies_are_host_prefixed_and_hsts_is_sent(settings):
    from litestar import Litestar

    from app.core.plugin import AppCore
    from tests.helpers import running

    prod: Any = dataclasses.replace(settings, app_env="prod", allowed_hosts=("testserver.local",))
    async with running(Litestar(plugins=[AppCore(prod)])) as application:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver.local") as browser:
            page = await browser.get("/login")
            assert page.status_code == 200
            assert page.headers["strict-transport-security"].startswith("max-age=31536000")
            set_cookie = page.headers.get("set-cookie", "")
            assert "__Host-vtu_csrf=" in set_cookie and "Secure" in set_cookie and "Path=/" in set_cookie


async def test_a_page_that_only_reads_the_session_writes_nothing_back(client, app, db):
    """Otherwise an htmx partial running beside a form post could put back an older copy of the session
    over the one the post just stored (its flash message lost)."""
    user = await create_user(db)
    await db.commit()
    sid = (await log_in(client, user.email, PASSWORD)).cookies.get(SESSION)
    await client.get("/dashboard")  # shows (and so removes) the welcome-back state, if any
    store = app.stores.get("sessions")
    before = await store.get(sid)
    await store.set(sid, before, expires_in=60)  # as if a parallel request had just written it
    page = await client.get("/purchases")
    assert page.status_code == 200 and SESSION not in page.headers.get("set-cookie", "")
    assert 0 < (await store.expires_in(sid)) <= 60  # not rewritten (a write would reset the expiry)
