"""The statement on a 360 px phone: a customer with a funding, a delivered and a failed (refunded) purchase
opens /statement from the dashboard, reads the "charged, refunded" pair, filters, and the page fits."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright

from app.accounts.passwords import hash_password
from app.vtu.providers.stub import DELIVERED_PHONE
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user
from tests.integration.purchase_fixtures import fund_wallet

PIN = "2580"

pytestmark = pytest.mark.e2e


async def test_statement_on_a_phone(live_server, db, sessionmaker):
    user = await create_user(db)
    user.pin_hash = hash_password(PIN)
    await db.commit()
    await fund_wallet(sessionmaker, user.id, 500_000)  # ₦5,000
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 360, "height": 740})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{live_server}/login?next=/dashboard")
        await page.fill("input[name=email]", user.email)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{live_server}/dashboard")
        for phone, amount in ((DELIVERED_PHONE, "500"), ("08031234567", "200")):
            await page.goto(f"{live_server}/buy/airtime")
            await page.click("label.choice:has-text('MTN')")  # 0801 is no network's: chosen by hand
            await page.fill("input[name=phone]", phone)
            await page.fill("input[name=amount]", amount)
            await page.fill("input[name=pin]", PIN)
            await page.click("#pay-button")
            await page.wait_for_url(f"{live_server}/purchases/*")

        await page.goto(f"{live_server}/dashboard")
        await page.click("#statement-link")
        await page.wait_for_url(f"{live_server}/statement")
        assert await page.locator("li.entry").count() == 4
        assert "₦200.00 charged, ₦200.00 refunded" in await page.locator("#statement-list").inner_text()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(SCREENSHOTS / "statement-360.png"), full_page=True)

        await page.select_option("#f-kind", "purchase")
        await page.click("#statement-filters button[type=submit]")
        await page.wait_for_url(f"{live_server}/statement?*kind=purchase*")
        assert await page.locator("li.entry").count() == 2
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(SCREENSHOTS / "statement-filtered-360.png"), full_page=True)
        assert errors == []
        await browser.close()
