"""The referrals page on a 360 px phone: link, copy button (app.js under the CSP), masked friends, bonus."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator

pytestmark = pytest.mark.e2e


async def test_referrer_sees_link_friends_and_bonus_on_a_phone(live_server, db, settings):
    referrer = await create_user(db)
    friend = await create_user(db, email="chiamaka.obi@gmail.com", referral_code=referrer.referral_code)
    await db.commit()
    monnify = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )
    body, signature = monnify.build_webhook(friend.account_reference, 150_000)  # ₦1,500: earns ₦100
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{live_server}/payments/webhooks/monnify/",
            content=body,
            headers={"content-type": "application/json", "monnify-signature": signature},
        )
        assert response.status_code == 200
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 360, "height": 740})
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{live_server}/login?next=/referrals")
        await page.fill("input[name=email]", referrer.email)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{live_server}/referrals")
        link = f"{live_server}/signup?ref={referrer.referral_code}"
        assert await page.inner_text("#referral-link") == link
        assert await page.inner_text("#referral-code") == referrer.referral_code
        text = await page.inner_text("body")
        assert "ch***@gmail.com" in text and friend.email not in text
        assert "₦100.00" in await page.inner_text("#referral-total")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(SCREENSHOTS / "referrals-360.png"), full_page=True)
        copy = page.locator("button[data-copy]", has_text="Copy link")
        await copy.click()
        await expect(page.locator("body")).to_contain_text("Copied")
        assert await page.evaluate("navigator.clipboard.readText()") == link
        assert not errors, errors
        await browser.close()
