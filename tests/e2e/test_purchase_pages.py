"""The buy pages on a 360 px phone: a funded customer buys airtime and lands on a successful receipt; the
data form loads a network's plans over htmx; electricity shows the verified meter and the token."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, async_playwright

from app.accounts.passwords import hash_password
from app.ledger.queries import wallet_balance
from app.vtu.plans import sync_plans
from app.vtu.providers import StubProvider
from app.vtu.providers.stub import DELIVERED_PHONE, PREPAID_METER
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user
from tests.integration.purchase_fixtures import fund_wallet

PIN = "2580"

pytestmark = pytest.mark.e2e


async def _fits_the_phone(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360, page.url


async def test_customer_buys_on_a_phone(live_server, db, sessionmaker):
    user = await create_user(db)
    user.pin_hash = hash_password(PIN)
    await db.commit()
    await fund_wallet(sessionmaker, user.id, 1_000_000)  # ₦10,000
    for service_id in ("mtn-data", "glo-data"):
        async with sessionmaker() as session:
            await sync_plans(session, StubProvider(), service_id)
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

        # Airtime: from the dashboard tile to a successful receipt.
        await page.click("#services a:has-text('Airtime')")
        await page.wait_for_url(f"{live_server}/buy/airtime")
        assert await page.inner_text("#wallet-balance") == "₦10,000.00"
        await page.click("label.choice:has-text('MTN')")
        await page.fill("input[name=phone]", DELIVERED_PHONE)
        await page.fill("input[name=amount]", "500")
        await _fits_the_phone(page)
        await page.screenshot(path=str(SCREENSHOTS / "buy-airtime-360.png"), full_page=True)
        await page.fill("input[name=pin]", PIN)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r".*/purchases/[0-9a-f-]{36}$"))
        assert await page.inner_text("#purchase-status") == "Successful"
        assert await page.inner_text("#amount-charged") == "₦500.00"
        assert DELIVERED_PHONE in await page.inner_text("#receipt-details")
        await _fits_the_phone(page)
        await page.screenshot(path=str(SCREENSHOTS / "receipt-airtime-360.png"), full_page=True)
        async with sessionmaker() as session:
            assert await wallet_balance(session, user.id) == 950_000

        # Data: switching network swaps in that network's plans (htmx), priced in naira.
        await page.goto(f"{live_server}/buy/data")
        assert await page.inner_text("#wallet-balance") == "₦9,500.00"
        await page.click("label.choice:has-text('Glo')")
        await page.wait_for_selector("#plans :text('Glo 1.5GB - 1 Day')")
        assert "MTN" not in await page.inner_text("#plans")
        await page.click("label.choice:has-text('Glo 2.5GB - 2 Days')")
        await page.fill("input[name=phone]", DELIVERED_PHONE)
        await _fits_the_phone(page)
        await page.screenshot(path=str(SCREENSHOTS / "buy-data-360.png"), full_page=True)

        # Electricity: verify the meter, pay, copy the token from the receipt.
        await page.goto(f"{live_server}/buy/electricity")
        await page.select_option("select[name=service_id]", "ikeja-electric")
        await page.fill("input[name=meter_number]", PREPAID_METER)
        await page.click("button:has-text('Verify meter')")
        await page.wait_for_selector("#customer :text('TESTMETER1')")
        await page.fill("input[name=amount]", "2000")
        await page.fill("input[name=phone]", DELIVERED_PHONE)
        await _fits_the_phone(page)
        await page.screenshot(path=str(SCREENSHOTS / "buy-electricity-360.png"), full_page=True)
        await page.fill("input[name=pin]", PIN)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r".*/purchases/[0-9a-f-]{36}$"))
        assert await page.inner_text("#purchase-status") == "Successful"
        assert re.fullmatch(r"\d{4}(-\d{4}){4}", await page.inner_text("#token"))
        await _fits_the_phone(page)
        await page.screenshot(path=str(SCREENSHOTS / "receipt-electricity-360.png"), full_page=True)

        await page.goto(f"{live_server}/purchases")
        assert await page.locator("#purchases .row").count() == 2
        await _fits_the_phone(page)
        await page.screenshot(path=str(SCREENSHOTS / "purchases-360.png"), full_page=True)
        assert not errors, errors
        await browser.close()
    async with sessionmaker() as session:
        assert await wallet_balance(session, user.id) == 750_000
