"""SAQ's own job UI, mounted for admins at /staff/queue/ui: it renders under the site's CSP (its one inline
script allowed by hash, nothing else), with no script errors. Screenshot: staff-queue-ui-1366.png."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user

pytestmark = pytest.mark.e2e


async def test_saq_ui_renders_for_an_admin(live_server, db) -> None:
    admin = await create_user(db, staff_role="admin")
    await db.commit()
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1366, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        missing: list[str] = []
        page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
        await page.goto(f"{live_server}/login")
        await page.fill("#f-email", admin.email)
        await page.fill("#f-password", PASSWORD)
        await page.click("form button[type=submit]")
        await page.wait_for_url(f"{live_server}/staff")
        await page.goto(f"{live_server}/staff/queue/ui/")  # SAQ routes on the trailing slash
        await expect(page.get_by_role("cell", name="vtu")).to_be_visible(timeout=15_000)  # SAQ drew its queue
        await page.screenshot(path=str(SCREENSHOTS / "staff-queue-ui-1366.png"), full_page=True)
        await browser.close()
    # SAQ's page names no icon, so Chromium asks for /favicon.ico (a 404 it logs; not a page resource).
    errors = [e for e in errors if not (e.startswith("Failed to load resource") and not missing)]
    assert missing == [] and errors == [], (missing, errors)
