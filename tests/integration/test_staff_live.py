"""The live overview (/staff, /staff/live), the self-refreshing partials, the admin queue page and where
staff land after log-in: over HTTP against the real app selling through the VTpass simulator."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text

from app.ledger.reconcile import save_result
from app.vtu.orders import PurchaseRequest
from tests.factories import PASSWORD, create_user
from tests.helpers import browser_pool, log_in, running, staff_browser
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import Harness, assert_reconciled, new_buyer, sim_settings
from workers.heartbeat import beat

sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt

DELIVERED = "08011111111"
PENDING_THEN_DELIVERED = "201000000000"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live_app(settings: Any, sim_server: Any) -> AsyncIterator[Any]:
    from app.asgi import create_app
    from app.vtu.runtime import close_vtu

    sim_, server = sim_server
    application = create_app(sim_settings(settings, server.url, sim_))
    async with running(application):
        yield application
        await close_vtu(application)


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(live_app: Any, db: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    async with browser_pool(live_app) as new:
        yield new


def words(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def block(html: str, ident: str) -> str:
    match = re.search(rf'id="{ident}".*?</(?:div|section)>', html, re.S)
    assert match, ident
    return words(match.group(0))


async def test_staff_land_on_the_overview_and_customers_on_their_dashboard(db, browsers) -> None:
    staff = await create_user(db, staff_role="support")
    customer = await create_user(db)
    await db.commit()
    assert (await log_in(browsers(), staff.email, PASSWORD)).headers["location"] == "/staff"
    assert (await log_in(browsers(), customer.email, PASSWORD)).headers["location"] == "/dashboard"
    # An explicit, safe `next` still wins; an unsafe one falls back to the role's landing page.
    client = browsers()
    page = await client.get("/login?next=/staff/purchases")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    assert 'name="next" value="/staff/purchases"' in page.text
    form = {"email": staff.email, "password": PASSWORD, "_csrf_token": token}
    answer = await client.post("/login", data={**form, "next": "/staff/purchases"}, follow_redirects=False)
    assert answer.headers["location"] == "/staff/purchases"
    other = browsers()
    token = re.search(r'name="_csrf_token" value="([^"]+)"', (await other.get("/login")).text).group(1)
    answer = await other.post(
        "/login",
        data={"email": staff.email, "password": PASSWORD, "_csrf_token": token, "next": "//evil.example"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/staff"


async def test_overview_figures_and_the_polled_block(
    db, browsers, sessionmaker, redis, vt: Harness, sim
) -> None:
    staff = await staff_browser(db, browsers, role="support")
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    await vt.service.buy(buyer, PurchaseRequest(service_id="mtn", phone=DELIVERED, amount_kobo=50_000))
    await vt.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone=PENDING_THEN_DELIVERED, amount_kobo=20_000)
    )
    await beat(redis)
    await save_result(redis, {"ok": True, "drift": 0})
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO alerts (key, opened_at, last_seen_at, message)"
                " VALUES ('unmatched_transfers', now(), now(), '2 bank transfer(s) <b>wait</b>')"
            )
        )
    sim.balance_naira = "12345.60"

    page = await staff.get("/staff/")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert 'hx-get="/staff/live"' in html and "every 10s" in html and "data-live" in html
    assert "2 bank transfer(s) &lt;b&gt;wait&lt;/b&gt;" in html  # open alert shown, escaped
    assert "Pending 1 " in block(html, "stat-pending")
    assert "Per minute (15 min) 0.1 2 bought in 15 min" in block(html, "stat-rate")
    assert "₦5.00" in block(html, "stat-margin") or "Margin today" in block(html, "stat-margin")
    assert "₦12,345.60" in block(html, "float-vtpass")
    assert "clean" in block(html, "stat-reconcile")
    assert "every minute" in block(html, "stat-heartbeat")
    assert "Job queue" in block(html, "stat-queue")
    rates = block(html, "rates-service")
    assert "MTN" in rates and "100% 1/1" in rates
    assert 'href="/staff/queue"' not in html  # support is not admin

    # The polled partial: the block alone, the float answer cached (VTpass asked once a minute).
    sim.balance_naira = "99.00"
    live = await staff.get("/staff/live")
    assert (
        live.status_code == 200
        and "<html" not in live.text
        and live.text.lstrip().startswith('<div id="live"')
    )
    assert "₦12,345.60" in block(live.text, "float-vtpass")
    balance_calls = [r for r in sim.requests if r.path.rstrip("/").endswith("balance")]
    assert len(balance_calls) == 1
    await assert_reconciled(sessionmaker)


async def test_float_unavailable_and_no_worker_are_shown_not_a_500(db, browsers, redis, sim) -> None:
    staff = await staff_browser(db, browsers, role="support")
    original, sim.api_key = sim.api_key, "wrong"
    try:
        html = (await staff.get("/staff/live")).text
    finally:
        sim.api_key = original
    assert "unavailable" in block(html, "float-vtpass")
    assert "never" in block(html, "stat-heartbeat") and "stale" in block(html, "stat-heartbeat")
    assert "not yet" in block(html, "stat-reconcile")


async def test_partials_refresh_read_only_blocks(db, browsers, sessionmaker, vt: Harness) -> None:
    staff = await staff_browser(db, browsers, role="support")
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    pending = await vt.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone=PENDING_THEN_DELIVERED, amount_kobo=20_000)
    )
    page = (await staff.get("/staff/purchases")).text
    assert 'hx-get="/staff/purchases/open"' in page
    open_list = await staff.get("/staff/purchases/open")
    assert open_list.status_code == 200 and f'id="purchase-{pending.id}"' in open_list.text
    assert "<form" not in open_list.text
    funding = (await staff.get("/staff/funding")).text
    assert 'hx-get="/staff/funding/open"' in funding
    assert (await staff.get("/staff/funding/open")).status_code == 200

    detail = (await staff.get(f"/staff/purchases/{pending.id}")).text
    assert f'hx-get="/staff/purchases/{pending.id}/live"' in detail
    live = await staff.get(f"/staff/purchases/{pending.id}/live")
    assert live.status_code == 200 and "<form" not in live.text and 'hx-swap-oob="true"' in live.text
    await vt.service.requery(pending.id, source="worker")  # delivered now
    live = (await staff.get(f"/staff/purchases/{pending.id}/live")).text
    assert 'id="settled-meanwhile"' in live and "successful" in live
    assert "hx-trigger" not in live.split('id="history"')[0]  # final: polling stops
    assert (await staff.get("/staff/purchases/00000000-0000-0000-0000-000000000000/live")).status_code == 404
    await assert_reconciled(sessionmaker)


async def test_queue_page_is_for_admins_only(db, browsers) -> None:
    for role in ("support", "operations", "finance"):
        client = await staff_browser(db, browsers, role=role)
        assert (await client.get("/staff/queue")).status_code == 403
    admin = await staff_browser(db, browsers, role="admin")
    page = await admin.get("/staff/queue")
    assert page.status_code == 200 and 'id="queue-counts"' in page.text
    assert 'href="/staff/queue"' in (await admin.get("/staff")).text
    anonymous = await browsers().get("/staff/live", follow_redirects=False)
    assert anonymous.status_code in (302, 303, 401)
    customer = await create_user(db)
    await db.commit()
    client = browsers()
    await log_in(client, customer.email, PASSWORD)
    assert (await client.get("/staff/live")).status_code == 403
