"""Staff on shift open the purchase console and one purchase, on a laptop (1280x800) and a phone (360x740),
and settle a stuck purchase by hand; screenshots go to tests/e2e/screenshots/."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from app.vtu.models import FAILED, PENDING
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import StubProvider
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user
from tests.integration.purchase_fixtures import assert_reconciled, load, make_service, money, new_buyer

pytestmark = pytest.mark.e2e

START = 1_000_000


async def seed(sessionmaker: Any, settings: Any) -> dict[str, Any]:
    """A night's mix through the stub provider: delivered, failed, pending, and one stuck and flagged."""
    stub = dataclasses.replace(settings, vtu_provider="stub", requery_schedule_seconds=(1,))
    harness = make_service(sessionmaker, stub, providers={"stub": StubProvider()})
    buyer = await new_buyer(sessionmaker, fund=START)
    reseller = await new_buyer(sessionmaker, fund=START, tier="reseller")
    try:
        buy = harness.service.buy
        await buy(buyer, PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=50_000))
        await buy(reseller, PurchaseRequest(service_id="glo", phone="08031234567", amount_kobo=20_000))
        await buy(
            buyer,
            PurchaseRequest(
                service_id="ikeja-electric", meter_number="1111111111111", meter_type="prepaid",
                amount_kobo=300_000, phone="08011111111",
            ),
        )  # fmt: skip
        await buy(reseller, PurchaseRequest(service_id="airtel", phone="201000000000", amount_kobo=10_000))
        stuck = await buy(buyer, PurchaseRequest(service_id="mtn", phone="500000000000", amount_kobo=150_000))
        flagged = await harness.service.requery(stuck.id, source="worker", attempt=1)
    finally:
        await harness.aclose()
    assert flagged is not None and flagged.status == PENDING and flagged.needs_attention
    return {"buyer": buyer, "stuck": flagged}


async def no_sideways_scroll(page: Page, width: int) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= width


async def test_staff_console_on_laptop_and_phone(live_server, db, sessionmaker, settings) -> None:
    staff = await create_user(db, is_staff=True)
    await db.commit()
    seeded = await seed(sessionmaker, settings)
    stuck = seeded["stuck"]
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for width, height in ((1280, 800), (360, 740)):
            context = await browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            page.on(
                "console",
                lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None,
            )
            await page.goto(f"{live_server}/login?next=/staff/purchases")
            await page.fill("#f-email", staff.email)
            await page.fill("#f-password", PASSWORD)
            await page.click("form button[type=submit]")
            await page.wait_for_url(f"{live_server}/staff/purchases")
            assert await page.locator("#open-purchases .purchase").count() == 2  # stuck + pending
            assert "Unresolved:" in await page.inner_text("#open-purchases")
            await no_sideways_scroll(page, width)
            await page.screenshot(path=str(SCREENSHOTS / f"staff-purchases-{width}.png"), full_page=True)
            if width == 360:  # close-ups at full resolution
                for part in ("purchase-counts", "open-purchases", "purchase-filters"):
                    await page.locator(f"#{part}").screenshot(path=str(SCREENSHOTS / f"staff-{part}-360.png"))

            # The filter form (htmx): failed only.
            await page.select_option("#f-status", "failed")
            await page.wait_for_url("**/staff/purchases?*status=failed*")
            await expect(page.locator("#purchase-results .purchase")).to_have_count(1)
            await page.screenshot(
                path=str(SCREENSHOTS / f"staff-purchases-failed-{width}.png"), full_page=True
            )

            await page.goto(f"{live_server}/staff/purchases/{stuck.id}")
            assert "needs attention" in await page.inner_text(".purchase-status")
            assert await page.locator("#exchanges .exchange").count() == 2
            await no_sideways_scroll(page, width)
            await page.screenshot(path=str(SCREENSHOTS / f"staff-purchase-{width}.png"), full_page=True)
            if width == 360:
                for part in ("actions", "purchase-facts", "history", "ledger", "exchanges"):
                    await page.locator(f"#{part}").screenshot(path=str(SCREENSHOTS / f"staff-{part}-360.png"))

            await page.goto(f"{live_server}/staff")
            assert await page.locator("#purchases-overview #stat-attention").count() == 1
            await no_sideways_scroll(page, width)
            await page.screenshot(path=str(SCREENSHOTS / f"staff-overview-{width}.png"), full_page=True)
            assert not errors, errors
            await context.close()

        # On the phone: resolve the stuck purchase (note + confirmation), then read what happened.
        context = await browser.new_context(viewport={"width": 360, "height": 740})
        page = await context.new_page()
        await page.goto(f"{live_server}/login?next=/staff/purchases/{stuck.id}")
        await page.fill("#f-email", staff.email)
        await page.fill("#f-password", PASSWORD)
        await page.click("form button[type=submit]")
        await page.wait_for_url(f"{live_server}/staff/purchases/{stuck.id}")
        await page.fill("#f-note", "VTpass support confirmed: not delivered")
        await page.check("#resolve-form input[name=confirm]")
        await page.click("#mark-failed")
        await page.wait_for_selector("#final-note")
        assert "Marked failed: ₦1,500.00 was refunded" in await page.inner_text("#flash")
        await no_sideways_scroll(page, 360)
        await page.screenshot(path=str(SCREENSHOTS / "staff-purchase-resolved-360.png"), full_page=True)
        await context.close()
        await browser.close()

    assert (await load(sessionmaker, stuck.id)).status == FAILED
    buyer = seeded["buyer"]
    assert (await money(sessionmaker, buyer.id, "stub")).wallet == START - 50_000 - 300_000
    await assert_reconciled(sessionmaker)
