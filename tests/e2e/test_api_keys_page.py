"""A reseller on a 360 px phone creates an API key (shown once, copyable), uses it, and revokes it."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import async_playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user

pytestmark = pytest.mark.e2e


async def test_phone_creates_uses_and_revokes_an_api_key(live_server, db):
    user = await create_user(db, tier="reseller")
    await db.commit()
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 360, "height": 740})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())  # the revoke confirmation
        await page.goto(f"{live_server}/login?next=/account/api-keys")
        await page.fill("#f-email", user.email)
        await page.fill("#f-password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{live_server}/account/api-keys")
        assert "No keys yet" in await page.inner_text("#api-keys")

        await page.fill("#f-allowed_ips", "not an ip")
        await page.fill("#api-key-form #f-password", PASSWORD)  # step-up: creating a key asks again
        await page.click("#api-key-form button[type=submit]")
        await page.wait_for_selector("#e-allowed_ips")
        await page.fill("#f-name", "Shop server")
        await page.fill("#f-allowed_ips", "")
        await page.fill("#f-callback_url", "https://shop.example.ng/vtu/callback")
        await page.fill("#api-key-form #f-password", PASSWORD)
        await page.click("#api-key-form button[type=submit]")
        await page.wait_for_selector("#new-key-secret")
        secret = await page.inner_text("#new-key-secret")
        assert secret.startswith("vtu_")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(SCREENSHOTS / "api-keys-created-360.png"), full_page=True)

        async with httpx.AsyncClient(base_url=live_server) as api:
            headers = {"Authorization": f"Bearer {secret}"}
            assert (await api.get("/api/v1/wallet", headers=headers)).status_code == 200
            await page.reload()
            assert secret not in await page.content()  # shown once
            await page.screenshot(path=str(SCREENSHOTS / "api-keys-list-360.png"), full_page=True)
            await page.click("#key-list button.btn-danger")
            await page.wait_for_selector("#key-list .badge:not(.badge-ok)")
            assert (await api.get("/api/v1/wallet", headers=headers)).status_code == 401
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(SCREENSHOTS / "api-keys-revoked-360.png"), full_page=True)
        assert not errors, errors
        await browser.close()


async def test_api_docs_render_from_our_own_files(live_server):
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1024, "height": 900})
        blocked: list[str] = []
        page.on("console", lambda message: blocked.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda exc: blocked.append(str(exc)))
        page.on("response", lambda r: blocked.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        await page.goto(f"{live_server}/api/docs")
        await page.wait_for_selector(".opblock", timeout=20_000)
        text = await page.inner_text("#swagger-ui")
        for path in ("/api/v1/wallet", "/api/v1/plans", "/api/v1/purchases", "/api/v1/verify"):
            assert path in text
        assert await page.locator("button.authorize").count() == 1  # the bearer security scheme
        await page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
        assert not blocked, blocked
        await browser.close()
