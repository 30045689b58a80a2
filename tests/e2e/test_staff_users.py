"""Staff find a customer in the Users console and read their profile on a laptop (1366x900) and a phone
(360x740), then suspend them from the phone; screenshots go to tests/e2e/screenshots/ (staff-user-*.png)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from app.vtu.orders import PurchaseRequest
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.e2e.test_staff_funding import log_in, no_sideways_scroll
from tests.factories import create_user
from tests.fakes.monnify import MonnifySimulator
from tests.integration.api_fixtures import new_key
from tests.integration.purchase_fixtures import make_service

pytestmark = pytest.mark.e2e

WEBHOOK = "/payments/webhooks/monnify/"


async def seed(live_server: str, db: Any, sessionmaker: Any, settings: Any) -> Any:
    """A reseller with a referred friend: transfers through the running app's webhook (the friend's first
    one pays the referral bonus), purchases delivered and failed (refunded), and an API key."""
    sim = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )
    ada = await create_user(db, full_name="Adaeze Okafor", phone="08031234567", tier="reseller")
    friend = await create_user(db, full_name="Tunde Bakare", referral_code=ada.referral_code)
    await db.commit()
    async with httpx.AsyncClient(timeout=30) as http:
        for account, kobo in ((ada.account_reference, 500_000), (friend.account_reference, 150_000)):
            sent = await sim.send_transfer(f"{live_server}{WEBHOOK}", account, kobo, client=http)
            assert sent.response.status_code == 200
    shop = make_service(sessionmaker, settings)
    try:
        for phone, kobo in (("08011111111", 50_000), ("08031234567", 20_000), ("08011111111", 100_000)):
            await shop.service.buy(
                ada,
                PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=kobo),
                idempotency_key=str(uuid.uuid4()),
            )
    finally:
        await shop.aclose()
    await new_key(sessionmaker, ada.id, name="Shop server")
    return ada


async def test_staff_user_profile_on_laptop_and_phone(live_server, db, sessionmaker, settings) -> None:
    admin = await create_user(db, staff_role="admin")
    await db.commit()
    ada = await seed(live_server, db, sessionmaker, settings)
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for width, height in ((1366, 900), (360, 740)):
            context = await browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            page.on(
                "console",
                lambda msg, errors=errors: errors.append(msg.text) if msg.type == "error" else None,
            )
            await log_in(page, live_server, admin.email, "/staff/users")
            assert await page.locator("#user-list .purchase").count() == 3  # newest first, the admin on top
            await page.fill("#f-q", "0803 123 4567")  # a phone, as the customer reads it out
            await page.press("#f-q", "Enter")
            await page.wait_for_url("**/staff/users?q=*")  # the results swapped in (htmx), the URL pushed
            await expect(page.locator("#user-results .purchase")).to_have_count(1)
            await no_sideways_scroll(page, width)
            await page.screenshot(path=str(SCREENSHOTS / f"staff-users-{width}.png"), full_page=True)
            await page.click(f"#user-{ada.id} .purchase-title")
            await page.wait_for_url(f"**/staff/users/{ada.id}")
            assert await page.inner_text("#user-status") == "active"
            kinds = await page.locator("#statement .entry-kind").all_inner_texts()
            assert kinds[-1] == "Funding" and "Referral bonus" in kinds and "Refund" in kinds
            assert await page.locator("#user-keys .key").count() == 1
            await no_sideways_scroll(page, width)
            await page.screenshot(path=str(SCREENSHOTS / f"staff-user-{width}.png"), full_page=True)
            if width == 360:
                await page.screenshot(path=str(SCREENSHOTS / "staff-user-top-360.png"))
                for part in ("actions", "statement"):
                    await page.locator(f"#{part}").screenshot(
                        path=str(SCREENSHOTS / f"staff-user-{part}-360.png")
                    )
                # Suspend from the phone.
                await page.fill("#f-suspend-reason", "Chargebacks from three cards")
                await page.click("#suspend")
                await page.wait_for_selector("#unsuspend-form")
                assert await page.inner_text("#user-status") == "suspended"
                assert "is suspended" in await page.inner_text("#flash")
                await no_sideways_scroll(page, width)
                await page.screenshot(path=str(SCREENSHOTS / "staff-user-suspended-360.png"), full_page=True)
            assert not errors, errors
            await context.close()
        await browser.close()
