"""Suspension blocks at once, everywhere (app/accounts/suspension.py): a signed-in customer's next request is
signed out, log-in is refused with a clear message and no session, the reseller API refuses the user's keys
(403 account_suspended), and no new purchase opens by any channel -- also one racing the suspension, which
`purchase_open` refuses in its own statement. Purchases already in flight still settle; unsuspending restores
everything; `vtu users suspend|unsuspend` do the same through the real CLI. Every test ends with a clean
ledger reconcile (clean_db)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import func, select, text

from app.accounts import suspension
from app.accounts.models import User
from app.accounts.passwords import hash_password
from app.accounts.sessions import list_sessions
from app.audit.models import AuditEntry
from app.audit.service import Actor
from app.ledger.queries import wallet_balance
from app.vtu.errors import AccountSuspended
from app.vtu.models import PENDING, SUCCESSFUL, Purchase
from app.vtu.orders import PurchaseRequest
from app.vtu.providers.stub import PENDING_PHONE
from app.vtu.runtime import get_vtu
from tests.factories import PASSWORD, create_user
from tests.helpers import browser_pool, csrf_token, log_in, staff_browser
from tests.integration import api_fixtures
from tests.integration.api_fixtures import airtime, new_reseller, purchase_count
from tests.integration.purchase_fixtures import fund_wallet

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http

PIN = "2580"
DELIVERED = "08011111111"


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(app: Any, db: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    async with browser_pool(app) as new:
        yield new


async def customer_with_pin(db: Any, sessionmaker: Any, *, fund: int = 0, tier: str = "customer") -> User:
    user = await create_user(db, tier=tier)
    user.pin_hash = hash_password(PIN)
    await db.commit()
    if fund:
        await fund_wallet(sessionmaker, user.id, fund)
    return user


async def suspend(sessionmaker: Any, user_id: uuid.UUID, reason: str = "fraud ring") -> None:
    async with sessionmaker() as session:
        outcome = await suspension.suspend(session, Actor.cli(), user_id, reason)
        await session.commit()
    assert outcome.changed


async def unsuspend(sessionmaker: Any, user_id: uuid.UUID) -> None:
    async with sessionmaker() as session:
        outcome = await suspension.unsuspend(session, Actor.cli(), user_id, "cleared")
        await session.commit()
    assert outcome.changed


async def balance(sessionmaker: Any, user_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


async def purchases_of(sessionmaker: Any, user_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        stmt = select(func.count()).select_from(Purchase).where(Purchase.user_id == user_id)
        return int((await session.execute(stmt)).scalar_one())


async def buy_on_the_web(
    client: httpx.AsyncClient, phone: str = DELIVERED, amount: str = "100"
) -> httpx.Response:
    page = await client.get("/buy/airtime")
    import re

    csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    data = {"service_id": "mtn", "phone": phone, "amount": amount, "pin": PIN}
    if csrf and key:
        data |= {"_csrf_token": csrf.group(1), "idempotency_key": key.group(1)}
    else:  # signed out already: post what a stale form would have sent
        data |= {"_csrf_token": await csrf_token(client, "/login"), "idempotency_key": str(uuid.uuid4())}
    return await client.post("/buy/airtime", data=data, follow_redirects=False)


class HeldSuspension:
    """A suspension written but not committed yet (another staff member's transaction, mid-way): whatever
    reads the user row without locking still sees them active, so a purchase gets as far as purchase_open."""

    def __init__(self, sessionmaker: Any, user_id: uuid.UUID) -> None:
        self.sessionmaker, self.user_id = sessionmaker, user_id

    async def __aenter__(self) -> HeldSuspension:
        self.session = self.sessionmaker()
        await self.session.begin()
        await self.session.execute(
            text("UPDATE users SET suspended_at = now(), suspended_reason = 'racing' WHERE id = :id"),
            {"id": self.user_id},
        )
        return self

    async def wait_for_blocked_purchase(self) -> None:
        """Until purchase_open waits for this row (pg_stat_activity), or fail after 20 s."""
        async with self.sessionmaker() as probe:
            for _ in range(400):
                waiting = (
                    await probe.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND query ILIKE '%purchase_open%'"
                        )
                    )
                ).scalar_one()
                await probe.rollback()
                if waiting:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError("the purchase never waited for the suspension's row lock")

    async def commit(self) -> None:
        await self.session.commit()

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()


# -- the web ---------------------------------------------------------------------------------------------
async def test_suspension_signs_the_customer_out_at_once_and_refuses_log_in(
    app, db, browsers, sessionmaker
) -> None:
    user = await customer_with_pin(db, sessionmaker, fund=100_000)
    phone, laptop = browsers(), browsers()
    for device in (phone, laptop):
        assert (await log_in(device, user.email, PASSWORD)).status_code == 303
        assert (await device.get("/dashboard")).status_code == 200
    assert len(await list_sessions(app, user.id)) == 2
    logged_in_at = (await db.get(User, user.id, populate_existing=True)).last_login_at
    ops = await staff_browser(db, browsers, "operations")
    token = await csrf_token(ops, "/staff/users")
    response = await ops.post(
        f"/staff/users/{user.id}/suspend", data={"reason": "stolen card", "_csrf_token": token}
    )
    assert response.status_code == 303
    assert await list_sessions(app, user.id) == []  # their sessions were ended at suspension time
    for device in (phone, laptop):
        page = await device.get("/dashboard", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login"), page.status_code
        assert (await device.get("/account/api-keys", follow_redirects=False)).status_code == 303
    # Log-in: the right password is told why, and gets no session; a wrong one learns nothing.
    again = browsers()
    refused = await log_in(again, user.email, PASSWORD)
    assert refused.status_code == 422 and "This account is suspended: contact support." in refused.text
    assert (await again.get("/dashboard", follow_redirects=False)).status_code == 303
    wrong = await log_in(again, user.email, "not-the-password")
    assert wrong.status_code == 422 and "suspended" not in wrong.text
    assert (await db.get(User, user.id, populate_existing=True)).last_login_at == logged_in_at
    # A purchase from a form opened before: signed out, nothing bought.
    response = await buy_on_the_web(phone)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert await purchases_of(sessionmaker, user.id) == 0
    # Unsuspended: everything works again.
    token = await csrf_token(ops, "/staff/users")
    await ops.post(f"/staff/users/{user.id}/unsuspend", data={"_csrf_token": token})
    assert (await log_in(again, user.email, PASSWORD)).status_code == 303
    assert (await again.get("/dashboard")).status_code == 200
    response = await buy_on_the_web(again)
    assert response.status_code == 303 and response.headers["location"].startswith("/purchases/")
    assert await balance(sessionmaker, user.id) == 100_000 - 10_000


async def test_a_session_is_refused_even_when_the_suspension_did_not_end_it(app, db, browsers, sessionmaker):
    """The middleware reads the user row on every request: a suspension written by any path (here raw SQL,
    no session clean-up) signs the user out on their next request."""
    user = await customer_with_pin(db, sessionmaker)
    device = browsers()
    await log_in(device, user.email, PASSWORD)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE users SET suspended_at = now(), suspended_reason = 'x' WHERE id = :id"),
            {"id": user.id},
        )
    assert len(await list_sessions(app, user.id)) == 1
    page = await device.get("/dashboard", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert await list_sessions(app, user.id) == []  # and the refused session is deleted


async def test_a_web_purchase_racing_the_suspension_is_refused_by_purchase_open(
    app, db, browsers, sessionmaker
) -> None:
    user = await customer_with_pin(db, sessionmaker, fund=100_000)
    device = browsers()
    await log_in(device, user.email, PASSWORD)
    async with HeldSuspension(sessionmaker, user.id) as held:
        purchase = asyncio.create_task(buy_on_the_web(device))
        await held.wait_for_blocked_purchase()
        assert not purchase.done()
        await held.commit()
        response = await asyncio.wait_for(purchase, 30)
    assert response.status_code == 403, response.status_code
    assert "This account is suspended: contact support. Nothing was charged." in response.text
    assert await purchases_of(sessionmaker, user.id) == 0
    assert await balance(sessionmaker, user.id) == 100_000


async def test_purchase_open_refuses_a_suspended_buyer_by_any_channel(app, db, sessionmaker) -> None:
    """The rule lives in the purchase's opening statement, whoever calls it."""
    user = await customer_with_pin(db, sessionmaker, fund=100_000)
    await suspend(sessionmaker, user.id)
    runtime = await get_vtu(app)
    for channel in ("web", "api"):
        try:
            await runtime.purchases.buy(
                user, PurchaseRequest(service_id="mtn", phone=DELIVERED, amount_kobo=10_000), channel=channel
            )
        except AccountSuspended as exc:
            assert exc.code == "account_suspended"
        else:
            raise AssertionError(f"a suspended buyer bought through {channel}")
    assert await purchases_of(sessionmaker, user.id) == 0
    assert await balance(sessionmaker, user.id) == 100_000


async def test_a_purchase_in_flight_still_settles_after_the_suspension(app, db, sessionmaker) -> None:
    user = await customer_with_pin(db, sessionmaker, fund=100_000)
    runtime = await get_vtu(app)
    pending = await runtime.purchases.buy(
        user, PurchaseRequest(service_id="mtn", phone=PENDING_PHONE, amount_kobo=10_000)
    )
    assert pending.status == PENDING
    await suspend(sessionmaker, user.id)
    settled = await runtime.purchases.requery(pending.id, source="worker", attempt=1)  # the worker's job
    assert settled is not None and settled.status == SUCCESSFUL
    assert await balance(sessionmaker, user.id) == 100_000 - 10_000


# -- the reseller API -------------------------------------------------------------------------------------
async def test_a_suspended_users_api_key_is_refused_on_every_call(api, http, sessionmaker) -> None:
    reseller = await new_reseller(sessionmaker, fund=100_000)
    assert (await http.get("/api/v1/wallet", headers=reseller.headers)).status_code == 200
    await suspend(sessionmaker, reseller.user_id)
    for method, path, body in (
        ("GET", "/api/v1/wallet", None),
        ("GET", "/api/v1/purchases", None),
        ("POST", "/api/v1/purchases", airtime()),
    ):
        headers = reseller.buy_headers() if method == "POST" else reseller.headers
        response = await http.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (path, response.status_code)
        assert response.json()["error"] == "account_suspended", response.json()
    assert await purchase_count(sessionmaker, reseller.user_id) == 0
    await unsuspend(sessionmaker, reseller.user_id)
    response = await http.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())
    assert response.status_code == 201 and response.json()["status"] == "successful"


async def test_an_api_purchase_racing_the_suspension_is_refused_by_purchase_open(api, http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=100_000)
    async with HeldSuspension(sessionmaker, reseller.user_id) as held:
        purchase = asyncio.create_task(
            http.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())
        )
        await held.wait_for_blocked_purchase()  # the key was accepted: the suspension is not committed yet
        await held.commit()
        response = await asyncio.wait_for(purchase, 30)
    assert response.status_code == 403 and response.json()["error"] == "account_suspended", response.text
    assert await purchase_count(sessionmaker, reseller.user_id) == 0
    assert await balance(sessionmaker, reseller.user_id) == 100_000


async def test_ten_purchases_racing_a_suspension_are_each_opened_before_it_or_refused(api, sessionmaker):
    start, price = 1_000_000, 9_800  # a reseller pays ₦98 for ₦100 of airtime
    reseller = await new_reseller(sessionmaker, fund=start)
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=limits) as client:
        warm = await client.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())
        assert warm.status_code == 201  # a first purchase, so the ten below are not slowed by a cold start

        async def purchase(n: int) -> httpx.Response:
            # Staggered: some land before the suspension commits, some while it does, some after.
            await asyncio.sleep(n * 0.025)
            return await client.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())

        requests = [asyncio.create_task(purchase(n)) for n in range(10)]
        for _ in range(600):  # suspend as soon as the first of the ten is in
            if await purchase_count(sessionmaker, reseller.user_id) > 1 or all(r.done() for r in requests):
                break
            await asyncio.sleep(0.01)
        await suspend(sessionmaker, reseller.user_id)
        opened_before = await purchase_count(sessionmaker, reseller.user_id)  # everything committed by now
        responses = await asyncio.gather(*requests)
    statuses = sorted(r.status_code for r in responses)
    made = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert all(r.status_code == 403 and r.json()["error"] == "account_suspended" for r in refused), statuses
    assert made, statuses
    # Nothing opened after the suspension committed: the purchases now are the ones that existed then.
    assert await purchase_count(sessionmaker, reseller.user_id) == opened_before == len(made) + 1
    assert await balance(sessionmaker, reseller.user_id) == start - price * (len(made) + 1)
    late = await client_post(api.url, reseller)
    assert late.status_code == 403


async def client_post(base_url: str, reseller: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await client.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())


# -- the CLI ----------------------------------------------------------------------------------------------
def _vtu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


async def test_cli_suspends_and_unsuspends_through_the_same_rules(app, db, browsers, sessionmaker) -> None:
    user = await create_user(db)
    await db.commit()
    device = browsers()
    await log_in(device, user.email, PASSWORD)
    assert len(await list_sessions(app, user.id)) == 1

    result = _vtu("users", "suspend", "--email", user.email.upper(), "--reason", "chargebacks")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and f"{user.email} is suspended" in result.stdout
    assert "Web sessions ended: 1" in result.stdout
    fresh = await db.get(User, user.id, populate_existing=True)
    assert fresh.suspended_at is not None and fresh.suspended_reason == "chargebacks"
    assert await list_sessions(app, user.id) == []
    assert (await device.get("/dashboard", follow_redirects=False)).status_code == 303
    again = _vtu("users", "suspend", "--email", user.email, "--reason", "twice")
    assert again.returncode == 0 and "already suspended" in again.stdout

    for args, message in (
        (("users", "suspend", "--email", "nobody@example.ng", "--reason", "x"), "no user with e-mail"),
        (("users", "suspend", "--email", user.email), "--reason is required"),
        (("users", "suspend", "--email", user.email, "--reason", "   "), "--reason is required"),
        (("users", "unsuspend", "--email", "nobody@example.ng"), "no user with e-mail"),
    ):
        refused = _vtu(*args)
        assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
        assert message in refused.stderr and "Traceback" not in refused.stderr

    result = _vtu("users", "unsuspend", "--email", user.email)
    assert result.returncode == 0, result.stderr
    assert f"{user.email} is no longer suspended" in result.stdout
    fresh = await db.get(User, user.id, populate_existing=True)
    assert (fresh.suspended_at, fresh.suspended_reason) == (None, None)
    assert (await log_in(browsers(), user.email, PASSWORD)).status_code == 303

    entries = list(
        (
            await db.execute(
                select(AuditEntry).where(AuditEntry.target_id == str(user.id)).order_by(AuditEntry.id)
            )
        ).scalars()
    )
    assert [(e.action, e.actor_role, e.actor_id) for e in entries] == [
        ("user.suspend", "operator", None),
        ("user.unsuspend", "operator", None),
    ]
    assert entries[0].actor.startswith("cli:") and entries[0].reason == "chargebacks"
