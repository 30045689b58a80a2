"""A new customer's whole first visit on a 360x740 phone (issue 13): sign up, fund the wallet with
`vtu dev-transfer` (the Monnify simulator's transfer and its signed webhook to the running app), choose the
transaction PIN inside the first purchase, buy data with the network detected from the number, see the
statement with a failed purchase's refund, and an expired-CSRF htmx request whose message is visible.
Screenshots: tests/e2e/artifacts/journey-*.png (git-ignored)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect
from sqlalchemy import select

from app.accounts.models import User
from app.ledger.queries import wallet_balance
from app.vtu.plans import sync_plans
from app.vtu.providers import StubProvider
from app.vtu.providers.stub import DEMO_PHONES, PREPAID_METER
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.fakes.monnify import MonnifySimulator
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parent / "artifacts"
EMAIL = "amaka.journey@example.ng"
PASSWORD = "amaka-strong-pass-7"
PIN = "4826"
FAILING_PHONE = "08030000001"  # the stub fails any number it does not know: refunded at once


async def dev_transfer(email: str, naira: int, simulator: str) -> str:
    """`vtu dev-transfer`, as the README's "Try it" says, in its own process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "dev-transfer", "--email", email, "--naira", str(naira),
        "--simulator", simulator, env=dict(os.environ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def test_a_new_customers_first_visit_on_a_phone(live_server, db, sessionmaker, settings) -> None:
    async with sessionmaker() as session:
        await sync_plans(session, StubProvider(), "mtn-data")
    sim = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code,
        webhook_url=f"{live_server}/payments/webhooks/monnify/",
    )  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(sim.app) as monnify:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = await browser.new_context(viewport={"width": 360, "height": 740})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # 1. Sign up.
            await page.goto(f"{live_server}/signup")
            await page.fill("#f-full_name", "Amaka Eze")
            await page.fill("#f-email", EMAIL)
            await page.fill("#f-phone", "0803 111 2233")
            await page.fill("#f-password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{live_server}/dashboard")
            await expect(page.locator("#wallet-balance")).to_have_text("₦0.00")

            # 2. Fund the wallet by bank transfer (the simulator's signed webhook, credited by the app).
            printed = await dev_transfer(EMAIL, 5_000, monnify.url)
            assert "sent ₦5,000" in printed and "webhook answered 200" in printed
            await page.reload()
            await expect(page.locator("#wallet-balance")).to_have_text("₦5,000.00")
            await page.screenshot(path=str(ARTIFACTS / "journey-1-funded-360.png"), full_page=True)

            # 3. Buy data: the MTN number picks MTN and its plans; the first PIN is chosen on the form.
            await page.goto(f"{live_server}/buy/data")
            await page.fill("input[name=phone]", DEMO_PHONES["mtn"])
            await expect(page.locator("#network-note")).to_contain_text("Detected: MTN")
            await expect(page.locator("input[name=service_id][value=mtn-data]")).to_be_checked()
            await expect(page.locator("#plans")).to_contain_text("MTN 1GB - 1 Day")
            await page.click("label.choice:has-text('MTN 1GB - 1 Day')")
            await expect(page.locator("#pay-button")).to_have_text("Pay ₦350")
            await expect(page.locator("#pin-needed")).to_be_visible()
            await page.fill("#f-new_pin", PIN)
            await page.fill("#f-confirm_pin", PIN)
            await page.fill("#f-password", PASSWORD)
            assert await page.evaluate("document.documentElement.scrollWidth") <= 360
            await page.screenshot(path=str(ARTIFACTS / "journey-2-buy-data-360.png"), full_page=True)
            await page.click("#pay-button")
            await page.wait_for_url(re.compile(r".*/purchases/[0-9a-f-]{36}$"))
            await expect(page.locator("#purchase-status")).to_have_text("Successful")
            await expect(page.locator("#amount-charged")).to_have_text("₦350.00")
            await page.screenshot(path=str(ARTIFACTS / "journey-3-receipt-360.png"), full_page=True)

            # 4. A purchase the provider fails: refunded at once, with the PIN chosen above.
            await page.goto(f"{live_server}/buy/airtime")
            await page.fill("input[name=phone]", FAILING_PHONE)
            await expect(page.locator("input[name=service_id][value=mtn]")).to_be_checked()
            await page.fill("input[name=amount]", "200")
            await page.fill("input[name=pin]", PIN)
            await page.click("#pay-button")
            await page.wait_for_url(re.compile(r".*/purchases/[0-9a-f-]{36}$"))
            await expect(page.locator("#purchase-status")).to_have_text("Failed")

            # 5. The statement: the funding, the data, and the failed airtime as "charged, refunded".
            await page.goto(f"{live_server}/statement")
            statement = page.locator("#statement-list")
            await expect(statement).to_contain_text("₦200.00 charged, ₦200.00 refunded")
            await expect(statement).to_contain_text("₦350.00")
            await expect(page.locator("#wallet-balance")).to_have_text("₦4,650.00")
            assert await page.evaluate("document.documentElement.scrollWidth") <= 360
            await page.screenshot(path=str(ARTIFACTS / "journey-4-statement-360.png"), full_page=True)

            # 6. The page's CSRF token expired: an htmx check says so where the customer is looking.
            await page.goto(f"{live_server}/buy/electricity")
            await page.select_option("select[name=service_id]", "ikeja-electric")
            await page.fill("input[name=meter_number]", PREPAID_METER)
            await page.evaluate("""document.body.setAttribute("hx-headers", '{"x-csrftoken": "expired"}')""")
            await page.click("button:has-text('Verify meter')")
            alert = page.locator("#flash [role=alert]")
            await expect(alert).to_contain_text("This page has expired. Reload the page and try again.")
            await expect(alert).to_be_in_viewport()
            await page.screenshot(path=str(ARTIFACTS / "journey-5-expired-360.png"))
            assert errors == []
            await browser.close()

    async with sessionmaker() as session:
        user = (await session.execute(select(User).where(User.email == EMAIL))).scalar_one()
        assert user.pin_hash is not None and user.phone == "08031112233"
        assert await wallet_balance(session, user.id) == 500_000 - 35_000
