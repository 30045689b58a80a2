"""Manual adjustments in a browser, on a laptop (1366x900) and a phone (360x740): a finance user asks for a
credit above the approval limit (it waits), a second finance user approves it on the phone, the customer's
wallet shows it and the audit log both steps. Screenshots: staff-adjustments-*.png, staff-audit-360.png."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect
from sqlalchemy import text

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user

pytestmark = pytest.mark.e2e


async def _log_in(browser, live_server, email, viewport):  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    await page.goto(f"{live_server}/login")
    await page.fill("#f-email", email)
    await page.fill("#f-password", PASSWORD)
    await page.click("form button[type=submit]")
    await page.wait_for_url(f"{live_server}/staff")
    return page


async def test_an_adjustment_above_the_limit_waits_for_a_second_person(live_server, db) -> None:
    asker = await create_user(db, staff_role="finance")
    approver = await create_user(db, staff_role="finance")
    customer = await create_user(db)
    await db.commit()
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await _log_in(browser, live_server, asker.email, {"width": 1366, "height": 900})
        await page.goto(f"{live_server}/staff/users/{customer.id}")
        await page.click("#new-adjustment")
        await expect(page.locator("#customer-email")).to_have_text(customer.email)
        await page.fill("#f-amount", "6,000")
        await page.fill("#f-reason", "Goodwill: airtime delivered late on 5 Dec")
        await page.fill("#f-password", PASSWORD)
        await page.screenshot(path=str(SCREENSHOTS / "staff-adjustments-new-1366.png"), full_page=True)
        await page.click("#adjustment-form button[type=submit]")
        await page.wait_for_url(f"{live_server}/staff/adjustments**")
        await expect(page.locator(".alert").first).to_contain_text("second")
        await page.screenshot(path=str(SCREENSHOTS / "staff-adjustments-pending-1366.png"), full_page=True)

        phone = await _log_in(browser, live_server, approver.email, {"width": 360, "height": 740})
        await phone.goto(f"{live_server}/staff/adjustments")
        await phone.screenshot(path=str(SCREENSHOTS / "staff-adjustments-360.png"), full_page=True)
        card = phone.locator("article.adjustment").first
        await card.locator("input[type=password]").first.fill(PASSWORD)
        await card.locator("button", has_text="Approve").click()
        await phone.wait_for_url(f"{live_server}/staff/adjustments**")
        await phone.screenshot(path=str(SCREENSHOTS / "staff-adjustments-approved-360.png"), full_page=True)
        # ...and both steps are in the audit log, newest first, with who did them.
        await phone.goto(f"{live_server}/staff/audit")
        entries = phone.locator("#audit-list > li.purchase")
        await expect(entries.first).to_contain_text("adjustment.approve")
        await expect(entries.nth(1)).to_contain_text("adjustment.request")
        await phone.screenshot(path=str(SCREENSHOTS / "staff-audit-360.png"), full_page=True)
        await browser.close()
    balance = (
        await db.execute(
            text("SELECT balance FROM ledger_accounts WHERE user_id = :id AND kind = 'wallet'"),
            {"id": customer.id},
        )
    ).scalar_one()
    assert balance == 600_000
