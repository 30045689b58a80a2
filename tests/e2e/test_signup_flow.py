"""A customer on a 360 px phone signs up (with a referral link) and lands on the dashboard."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright
from sqlalchemy import select

from app.accounts.models import User
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import create_user

pytestmark = pytest.mark.e2e


async def test_phone_sign_up_lands_on_dashboard(live_server, db):
    referrer = await create_user(db)
    await db.commit()
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 360, "height": 740})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))  # JavaScript errors (CSP, htmx)
        await page.goto(f"{live_server}/signup?ref={referrer.referral_code}")
        assert await page.input_value("#f-referral_code") == referrer.referral_code

        # A mistake first: the htmx swap shows inline errors without losing what was typed.
        await page.fill("#f-full_name", "Ngozi Okafor")
        await page.fill("#f-email", "ngozi@example")
        await page.fill("#f-phone", "0803 555 0101")
        await page.fill("#f-password", "short")
        await page.click("button[type=submit]")
        await page.wait_for_selector("#e-email")
        assert "valid e-mail" in await page.inner_text("#e-email")
        assert await page.input_value("#f-full_name") == "Ngozi Okafor"
        await page.screenshot(path=str(SCREENSHOTS / "signup-errors-360.png"), full_page=True)

        await page.fill("#f-email", "ngozi@example.ng")
        await page.fill("#f-password", "a-strong-pass-9")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{live_server}/dashboard")
        assert "Wallet balance" in await page.inner_text("body")
        assert "Welcome, Ngozi Okafor" in await page.inner_text("#flash")
        # Nothing overflows a 360 px screen.
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(SCREENSHOTS / "dashboard-360.png"), full_page=True)
        assert not errors, errors
        await browser.close()

    user = (await db.execute(select(User).where(User.email == "ngozi@example.ng"))).scalar_one()
    assert user.referred_by_id == referrer.id
    assert user.phone == "08035550101"
