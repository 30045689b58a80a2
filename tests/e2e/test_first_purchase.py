"""A first purchase on a 360 px phone: a customer without a transaction PIN taps a saved number (it fills the
number and the network in place, keeping the amount already typed), chooses a PIN on the form itself and lands
on a successful receipt; on the data form a tap on a recent number switches the network and its plans."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, async_playwright, expect
from sqlalchemy import select

from app.accounts.models import User
from app.accounts.passwords import verify_password
from app.ledger.queries import wallet_balance
from app.vtu.beneficiaries import Beneficiary
from app.vtu.plans import sync_plans
from app.vtu.providers import StubProvider
from app.vtu.providers.stub import DELIVERED_PHONE
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user
from tests.integration.purchase_fixtures import fund_wallet

NEW_PIN = "4826"

pytestmark = pytest.mark.e2e


async def _fits_the_phone(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360, page.url


async def test_first_purchase_with_a_saved_number_and_a_pin_chosen_on_the_form(live_server, db, sessionmaker):
    user = await create_user(db)
    await db.commit()
    await fund_wallet(sessionmaker, user.id, 1_000_000)  # ₦10,000
    async with sessionmaker() as session, session.begin():
        session.add(Beneficiary(user_id=user.id, kind="phone", service_id="glo", recipient=DELIVERED_PHONE,
                                label="Mum's line"))  # fmt: skip
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
        await page.goto(f"{live_server}/login?next=/buy/airtime")
        await page.fill("input[name=email]", user.email)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{live_server}/buy/airtime")

        # No PIN yet: the form asks for one (and the password), not for a PIN to type.
        await expect(page.locator("#pin-area")).to_contain_text("Choose a 4-digit transaction PIN")
        assert await page.locator("input[name=pin]").count() == 0

        # Amount first, then a tap on the saved number: it fills the number and the network, the amount stays.
        await page.fill("input[name=amount]", "500")
        await page.fill("input[name=phone]", "")
        chip = page.locator("a.beneficiary", has_text="Mum's line")
        box = await chip.bounding_box()
        assert box and box["height"] >= 44
        await chip.click()
        await expect(page.locator("input[name=phone]")).to_have_value(DELIVERED_PHONE)
        await expect(page.locator("input[name=service_id][value=glo]")).to_be_checked()
        await expect(page.locator("input[name=amount]")).to_have_value("500")
        assert page.url == f"{live_server}/buy/airtime"  # filled in place, not navigated

        # A mismatched PIN comes back on the PIN field, the order as typed.
        await page.fill("input[name=new_pin]", NEW_PIN)
        await page.fill("input[name=confirm_pin]", "4827")
        await page.fill("#pin-area input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await expect(page.locator("#e-confirm_pin")).to_have_text("The two PINs do not match.")
        await expect(page.locator("input[name=phone]")).to_have_value(DELIVERED_PHONE)
        await expect(page.locator("input[name=amount]")).to_have_value("500")
        await expect(page.locator("input[name=service_id][value=glo]")).to_be_checked()
        async with sessionmaker() as session:
            assert await wallet_balance(session, user.id) == 1_000_000

        await page.fill("input[name=new_pin]", NEW_PIN)
        await page.fill("input[name=confirm_pin]", NEW_PIN)
        await page.fill("#pin-area input[name=password]", PASSWORD)
        await _fits_the_phone(page)
        await page.screenshot(path=str(SCREENSHOTS / "first-pin-airtime-360.png"), full_page=True)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r".*/purchases/[0-9a-f-]{36}$"))
        await expect(page.locator("#purchase-status")).to_have_text("Successful")
        await expect(page.locator("#flash")).to_contain_text("Transaction PIN set")
        await page.screenshot(path=str(SCREENSHOTS / "first-pin-receipt-360.png"), full_page=True)
        async with sessionmaker() as session:
            assert await wallet_balance(session, user.id) == 950_000
            pin_hash = (await session.execute(select(User.pin_hash).where(User.id == user.id))).scalar_one()
        assert pin_hash and verify_password(pin_hash, NEW_PIN)

        # Data: the number (bought on Glo) is offered; a tap picks Glo data and loads its plans.
        await page.goto(f"{live_server}/buy/data")
        await expect(page.locator("input[name=pin]")).to_have_count(1)
        await page.locator("label.choice:has-text('MTN')").first.click()
        await expect(page.locator("#plans")).to_contain_text("MTN")
        await page.fill("input[name=phone]", "")
        await page.locator("a.beneficiary", has_text="Mum's line").click()
        await expect(page.locator("input[name=service_id][value=glo-data]")).to_be_checked()
        await expect(page.locator("#plans")).to_contain_text("Glo 1.5GB - 1 Day")
        await expect(page.locator("input[name=phone]")).to_have_value(DELIVERED_PHONE)
        await _fits_the_phone(page)
        await page.screenshot(path=str(SCREENSHOTS / "beneficiary-data-360.png"), full_page=True)
        assert not errors, errors
        await browser.close()
