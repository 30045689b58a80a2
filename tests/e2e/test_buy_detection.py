"""A first purchase on a 360 px phone: typing an MTN number picks MTN and loads its data plans, the price is
shown before Pay, a network chosen by hand is never changed, and cable renew shows the renewal amount."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import async_playwright, expect

from app.accounts.passwords import hash_password
from app.ledger.queries import wallet_balance
from app.vtu.plans import sync_plans
from app.vtu.providers import StubProvider
from app.vtu.providers.stub import DEMO_PHONES, SMARTCARD
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user
from tests.integration.purchase_fixtures import fund_wallet

PIN = "2580"
pytestmark = pytest.mark.e2e


async def test_typing_a_number_picks_its_network_and_the_price_shows_before_pay(
    live_server, db, sessionmaker
):
    user = await create_user(db)
    user.pin_hash = hash_password(PIN)
    user.phone = "07027123456"  # a valid number of no known network: nothing is picked before typing
    await db.commit()
    await fund_wallet(sessionmaker, user.id, 5_000_000)  # ₦50,000
    for service_id in ("mtn-data", "glo-data", "dstv"):
        async with sessionmaker() as session:
            await sync_plans(session, StubProvider(), service_id)
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await (await browser.new_context(viewport={"width": 360, "height": 740})).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        await page.goto(f"{live_server}/login?next=/buy/data")
        await page.fill("input[name=email]", user.email)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{live_server}/buy/data")

        mtn = page.locator("input[name=service_id][value=mtn-data]")
        await expect(mtn).not_to_be_checked()
        await expect(page.locator("#plans")).to_contain_text("Choose a network")
        await page.fill("input[name=phone]", DEMO_PHONES["mtn"])
        await expect(page.locator("#network-note")).to_have_text(
            "Detected: MTN — ported number? choose the network yourself"
        )
        await expect(mtn).to_be_checked()
        await expect(page.locator("#plans")).to_contain_text("MTN 1GB - 1 Day")
        await page.click("label.choice:has-text('MTN 1GB - 1 Day')")
        await expect(page.locator("#pay-total")).to_have_text("You pay ₦350.00")
        await expect(page.locator("#pay-button")).to_have_text("Pay ₦350")
        await page.fill("input[name=pin]", PIN)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(SCREENSHOTS / "buy-data-detected-360.png"), full_page=True)
        await page.click("#pay-button")
        await page.wait_for_url(re.compile(r".*/purchases/[0-9a-f-]{36}$"))
        await expect(page.locator("#purchase-status")).to_have_text("Successful")
        await expect(page.locator("#amount-charged")).to_have_text("₦350.00")
        await expect(page.locator("#buy-again")).to_be_visible()
        await page.screenshot(path=str(SCREENSHOTS / "receipt-data-detected-360.png"), full_page=True)
        async with sessionmaker() as session:
            assert await wallet_balance(session, user.id) == 5_000_000 - 35_000

        # A network chosen by hand (a ported number) stays, whatever number is typed after it.
        await page.goto(f"{live_server}/buy/data")
        await page.click("label.choice:has-text('Glo')")
        await expect(page.locator("#plans")).to_contain_text("Glo 1.5GB - 1 Day")
        await page.fill("input[name=phone]", "08061234567")
        await expect(page.locator("#network-note")).to_contain_text("Detected: MTN")
        await expect(page.locator("input[name=service_id][value=glo-data]")).to_be_checked()
        await expect(page.locator("#plans")).to_contain_text("Glo 1.5GB - 1 Day")
        await page.screenshot(path=str(SCREENSHOTS / "buy-data-manual-network-360.png"), full_page=True)

        # Cable: verify the card, choose Renew: its bouquet and renewal amount, the bouquet list hidden.
        await page.goto(f"{live_server}/buy/cable")
        await page.fill("input[name=smartcard_number]", SMARTCARD)
        await page.click("button:has-text('Verify smartcard')")
        await expect(page.locator("#customer")).to_contain_text("Current bouquet: DStv Compact")
        await page.click("label.choice:has-text('Renew my current bouquet')")
        await expect(page.locator("#pay-button")).to_have_text("Pay ₦19,000")
        await expect(page.locator("#f-variation_code")).to_be_hidden()
        await page.screenshot(path=str(SCREENSHOTS / "buy-cable-renew-360.png"), full_page=True)
        await page.click("label.choice:has-text('Change bouquet')")
        await expect(page.locator("#f-variation_code")).to_be_visible()
        await page.click("label.choice:has-text('DStv Padi')")
        await expect(page.locator("#pay-button")).to_have_text("Pay ₦4,400")
        assert not errors, errors
        await browser.close()
