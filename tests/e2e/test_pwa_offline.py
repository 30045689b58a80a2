"""The installable app on a 360 px phone: a funded customer opens the dashboard, the service worker takes
control, the connection drops, and the next page is the offline page with the last balance seen. Cache
Storage then holds the static shell and /offline, and no page, API answer or statement. Log-out forgets the
balance (a shared phone)."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user
from tests.integration.purchase_fixtures import fund_wallet

pytestmark = pytest.mark.e2e

CACHED_URLS = """async () => {
  const urls = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) urls.push(new URL(request.url).pathname);
  }
  return urls;
}"""

LAST_BALANCE = "() => localStorage.getItem('vtu:last-balance')"


async def test_offline_page_shows_the_last_balance_and_nothing_private_is_cached(
    live_server, db, sessionmaker
):
    user = await create_user(db)
    await db.commit()
    await fund_wallet(sessionmaker, user.id, 1_234_550)  # ₦12,345.50
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
        await expect(page.locator("#wallet-balance")).to_have_text("₦12,345.50")

        # The worker installs, activates and claims the page (app.js marks <html data-sw="controlled">).
        await expect(page.locator("html[data-sw=controlled]")).to_be_attached(timeout=20_000)
        assert (
            await page.evaluate("async () => (await navigator.serviceWorker.ready).active.state")
            == "activated"
        )
        assert '"kobo":1234550' in await page.evaluate(LAST_BALANCE)
        # Pages seen online (and a JSON probe, a partial-like fetch) must not end up in Cache Storage.
        await page.goto(f"{live_server}/statement")
        await page.goto(f"{live_server}/purchases")
        await page.evaluate("async () => { await fetch('/health'); await fetch('/api/v1/wallet'); }")

        await context.set_offline(True)
        await page.goto(f"{live_server}/buy/airtime")
        await expect(page.locator("h1")).to_have_text("You're offline")
        assert page.url == f"{live_server}/buy/airtime"  # the page asked for; Retry reloads it
        balance = page.locator("#last-balance")
        await expect(balance).to_be_visible()
        await expect(balance.locator("[data-last-balance-amount]")).to_have_text("₦12,345.50")
        await expect(balance).to_contain_text("may be out of date")
        assert await page.locator("#last-balance [data-last-balance-time]").inner_text() != ""
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(SCREENSHOTS / "offline-360.png"), full_page=True)

        cached = await page.evaluate(CACHED_URLS)
        assert "/offline" in cached
        assert any(url.startswith("/static/css/app.") for url in cached)
        for url in cached:
            assert url == "/offline" or url.startswith("/static/"), cached  # no other page, ever
            assert not url.startswith(("/api", "/purchases", "/statement", "/dashboard", "/health")), cached

        # Back online: Retry loads the real page; log-out forgets the balance.
        await context.set_offline(False)
        await page.click("[data-retry]")
        await expect(page.locator("#wallet-balance")).to_have_text("₦12,345.50")
        await page.click("form[action='/logout'] button")
        await page.wait_for_url(f"{live_server}/login")
        assert await page.evaluate(LAST_BALANCE) is None
        await context.set_offline(True)
        await page.goto(f"{live_server}/dashboard")
        await expect(page.locator("h1")).to_have_text("You're offline")
        await expect(page.locator("#last-balance")).to_be_hidden()
        await page.screenshot(path=str(SCREENSHOTS / "offline-signed-out-360.png"), full_page=True)
        assert errors == []
        await browser.close()
