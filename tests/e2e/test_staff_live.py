"""The live overview on a laptop (1366x900): staff log in and land on /staff; a pending purchase is settled
in the background and the page shows it within ~15 s without a reload. Screenshots before / after (and the
phone layout at 360x740) go to tests/e2e/screenshots/staff-live-*.png."""

from __future__ import annotations

import dataclasses

import pytest
from playwright.async_api import async_playwright, expect

from app.vtu.models import PENDING, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import StubProvider
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user
from tests.integration.purchase_fixtures import assert_reconciled, make_service, new_buyer

pytestmark = pytest.mark.e2e


async def test_overview_updates_itself_when_a_purchase_completes(
    live_server, db, sessionmaker, settings
) -> None:
    staff = await create_user(db, staff_role="support")
    await db.commit()
    stub = dataclasses.replace(settings, vtu_provider="stub", requery_schedule_seconds=(1,))
    harness = make_service(sessionmaker, stub, providers={"stub": StubProvider()})
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    SCREENSHOTS.mkdir(exist_ok=True)
    try:
        await harness.service.buy(
            buyer, PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=50_000)
        )
        pending = await harness.service.buy(
            buyer, PurchaseRequest(service_id="airtel", phone="201000000000", amount_kobo=10_000)
        )
        assert pending.status == PENDING
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = await browser.new_context(viewport={"width": 1366, "height": 900})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(f"{live_server}/login")
            await page.fill("#f-email", staff.email)
            await page.fill("#f-password", PASSWORD)
            await page.click("form button[type=submit]")
            await page.wait_for_url(f"{live_server}/staff")  # staff land on the overview
            pending_tile = page.locator("#stat-pending .amount")
            success_tile = page.locator("#stat-successful-today .amount")
            assert await pending_tile.inner_text() == "1"
            assert await success_tile.inner_text() == "1"
            await page.screenshot(path=str(SCREENSHOTS / "staff-live-before-1366.png"), full_page=True)

            # In the background (as the worker's requery would): the provider now says delivered.
            settled = await harness.service.requery(pending.id, source="worker")
            assert settled is not None and settled.status == SUCCESSFUL

            # The page's own polling picks it up (CSP forbids eval, so no wait_for_function string here).
            await expect(success_tile).to_have_text("2", timeout=15_000)
            assert await pending_tile.inner_text() == "0"
            assert "100%" in await page.inner_text("#rates-service")
            await page.screenshot(path=str(SCREENSHOTS / "staff-live-after-1366.png"), full_page=True)
            assert page.url == f"{live_server}/staff"  # no reload, no navigation
            assert not errors, errors

            phone = await browser.new_context(viewport={"width": 360, "height": 740})
            small = await phone.new_page()
            await small.goto(f"{live_server}/login")
            await small.fill("#f-email", staff.email)
            await small.fill("#f-password", PASSWORD)
            await small.click("form button[type=submit]")
            await small.wait_for_url(f"{live_server}/staff")
            assert await small.evaluate("document.documentElement.scrollWidth") <= 360
            await small.screenshot(path=str(SCREENSHOTS / "staff-live-360.png"), full_page=True)
            await browser.close()
    finally:
        await harness.aclose()
    await assert_reconciled(sessionmaker)
