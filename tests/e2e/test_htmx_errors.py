"""Errors for htmx requests on a 360 px phone (issue 13): an expired CSRF token, a proxy's 502 page and a
dropped connection each show a message in #flash, scrolled into view, and nothing foreign is swapped in."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, Route, async_playwright, expect

from app.vtu.providers.stub import PREPAID_METER
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user

pytestmark = pytest.mark.e2e


async def _flash_in_view(page: Page) -> bool:
    top = await page.evaluate("document.getElementById('flash').getBoundingClientRect().top")
    return bool(-1 < top < 740)  # scrolled to its top edge (sub-pixel rounding)


async def _verify_from_the_bottom(page: Page) -> None:
    await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    await page.click("button:has-text('Verify meter')")


async def test_htmx_errors_show_in_flash_on_a_phone(live_server, db):
    user = await create_user(db)
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 360, "height": 740})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{live_server}/login?next=/buy/electricity")
        await page.fill("input[name=email]", user.email)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{live_server}/buy/electricity")
        await page.select_option("select[name=service_id]", "ikeja-electric")
        await page.fill("input[name=meter_number]", PREPAID_METER)

        # 1. The token the page carries no longer matches (as after the csrf cookie expired): our 403.
        await page.evaluate("""document.body.setAttribute("hx-headers", '{"x-csrftoken": "expired"}')""")
        await _verify_from_the_bottom(page)
        alert = page.locator("#flash [role=alert]")
        await alert.wait_for()
        assert "This page has expired. Reload the page and try again." in await alert.inner_text()
        assert await _flash_in_view(page)
        assert await page.evaluate("document.activeElement === document.querySelector('#flash [role=alert]')")
        assert await page.inner_text("#customer") == ""  # the meter block is untouched
        await page.screenshot(path=str(SCREENSHOTS / "htmx-error-csrf-360.png"))

        # 2. A proxy's own 502 page (no HX-Retarget): not swapped in, a short message of ours instead.
        async def bad_gateway(route: Route) -> None:
            await route.fulfill(status=502, content_type="text/html", body="<h1>nginx 502 Bad Gateway</h1>")

        await page.route("**/buy/electricity/verify", bad_gateway)
        await _verify_from_the_bottom(page)
        # (locator waits, not wait_for_function: its polling evaluates a string, which our CSP refuses)
        await expect(page.locator("#flash")).to_contain_text("error 502")
        assert "nginx" not in await page.content()
        assert "Please try again" in await page.inner_text("#flash")
        assert await _flash_in_view(page)
        await page.screenshot(path=str(SCREENSHOTS / "htmx-error-502-360.png"))

        # 3. No answer at all (offline): say we could not reach the site.
        await page.unroute("**/buy/electricity/verify")
        await page.route("**/buy/electricity/verify", lambda route: route.abort("internetdisconnected"))
        await _verify_from_the_bottom(page)
        await expect(page.locator("#flash")).to_contain_text("could not reach")
        assert await page.inner_text("#flash") == (
            "We could not reach TopUp NG: check your connection and try again."
        )
        assert await _flash_in_view(page)
        await page.screenshot(path=str(SCREENSHOTS / "htmx-error-offline-360.png"))

        # 4. The connection is back and the page is reloaded: the check works again.
        await page.unroute("**/buy/electricity/verify")
        await page.reload()
        await page.select_option("select[name=service_id]", "ikeja-electric")
        await page.fill("input[name=meter_number]", PREPAID_METER)
        await page.click("button:has-text('Verify meter')")
        await page.locator("#customer").get_by_text("TESTMETER1").wait_for()
        assert errors == []
        await browser.close()
