"""Staff manage plans and prices in a real browser, on a laptop (1280x800) and a phone (360x740): the plan
table (stacked rows on the phone), switching service, a price typed with its live preview, saved,
a plan taken off sale, and "Sync now"; screenshots go to tests/e2e/screenshots/."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, async_playwright, expect
from sqlalchemy import select

from app.vtu.models import Plan, PriceRule
from app.vtu.plans import sync_plans
from app.vtu.providers import StubProvider
from app.vtu.providers.stub import DATA_PLANS
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user

pytestmark = pytest.mark.e2e

ONE_GB = "mtn-1gb-1day"


async def no_sideways_scroll(page: Page, width: int) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= width


async def log_in(page: Page, live_server: str, email: str, path: str) -> None:
    await page.goto(f"{live_server}/login?next={path}")
    await page.fill("#f-email", email)
    await page.fill("#f-password", PASSWORD)
    await page.click("form button[type=submit]")
    await page.wait_for_url(f"{live_server}{path}")


async def test_plans_console_on_laptop_and_phone(live_server, db, sessionmaker) -> None:
    staff = await create_user(db, staff_role="finance")
    await db.commit()
    for service_id in ("mtn-data", "dstv"):
        async with sessionmaker() as session:
            await sync_plans(session, StubProvider(), service_id)
    n_mtn = len(DATA_PLANS["mtn-data"])
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for width, height in ((1280, 800), (360, 740)):
            context = await browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            await log_in(page, live_server, staff.email, "/staff/plans")
            assert await page.locator("#plans-table .plan-row").count() == n_mtn
            # Default settings: no provider commission configured, resellers get 1% off data -> below cost.
            assert await page.locator("#plans-table td.tier-price.loss[data-tier=reseller]").count() == n_mtn
            assert await page.locator("#plans-table td.tier-price.loss[data-tier=customer]").count() == 0
            row = page.locator(f"#plan-{ONE_GB}")
            assert await row.is_visible()
            await no_sideways_scroll(page, width)
            await page.screenshot(path=str(SCREENSHOTS / f"staff-plans-{width}.png"), full_page=True)
            if width == 360:  # close-ups at full resolution
                await row.screenshot(path=str(SCREENSHOTS / "staff-plans-row-360.png"))
                for part in ("service-summary", "service-rules", "variable-services"):
                    await page.locator(f"#{part}").screenshot(
                        path=str(SCREENSHOTS / f"staff-plans-{part}-360.png")
                    )
            else:
                # Laptop: a real table (one row per plan, columns side by side).
                boxes = [await row.locator("td").nth(i).bounding_box() for i in range(3)]
                assert all(b is not None for b in boxes)
                assert len({round(b["y"]) for b in boxes if b}) == 1

            # Another service from the picker.
            await page.click("#service-picker a:has-text('DStv')")
            await page.wait_for_url("**/staff/plans?service_id=dstv")
            assert (
                await page.get_attribute("#service-picker a[aria-current]", "href")
                == "/staff/plans?service_id=dstv"
            )
            await page.wait_for_selector("#plan-dstv-padi")
            assert "DStv Subscription" in await page.inner_text("#service-summary h2")
            await page.screenshot(path=str(SCREENSHOTS / f"staff-plans-dstv-{width}.png"), full_page=True)
            assert not errors, errors
            await context.close()

        # On the phone: 1GB for customers at N400 (live preview), save, take 2.5GB off sale, sync.
        context = await browser.new_context(viewport={"width": 360, "height": 740})
        page = await context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await log_in(page, live_server, staff.email, "/staff/plans")
        await page.click(f"#plan-{ONE_GB} td[data-tier=customer] .cell-actions a")
        await page.wait_for_url(f"**/staff/plans?service_id=mtn-data&tier=customer&plan={ONE_GB}#rule-form")
        assert await page.input_value("#f-variation_code") == ONE_GB
        await page.fill("#f-price_naira", "300")
        await page.wait_for_selector("#rule-preview .preview-loss")  # N300 is below the N350 cost
        assert "will be refused" in await page.inner_text("#rule-preview")
        await page.fill("#f-price_naira", "400")
        await expect(page.locator("#preview-price")).to_have_text("₦400.00")
        assert await page.inner_text("#preview-margin") == "₦50.00"
        await page.locator("#rule-form").screenshot(path=str(SCREENSHOTS / "staff-plans-rule-form-360.png"))
        await page.click("#save-rule")
        await page.wait_for_url("**/staff/plans?service_id=mtn-data")
        assert "is now fixed ₦400.00 (margin ₦50.00)" in await page.inner_text("#flash")
        cell = page.locator(f"#plan-{ONE_GB} td[data-tier=customer]")
        assert "₦400.00" in await cell.inner_text() and "plan rule" in await cell.inner_text()
        await no_sideways_scroll(page, 360)
        await page.screenshot(path=str(SCREENSHOTS / "staff-plans-saved-360.png"), full_page=False)

        await page.locator("#plan-mtn-2-5gb-2days button", has_text="Take off sale").click()
        await page.wait_for_selector("#plan-mtn-2-5gb-2days.off-sale")
        assert "is off sale" in await page.inner_text("#flash")
        await page.locator("#plan-mtn-2-5gb-2days").scroll_into_view_if_needed()
        await page.locator("#plan-mtn-2-5gb-2days").screenshot(
            path=str(SCREENSHOTS / "staff-plans-off-sale-360.png")
        )

        # Airtime: the whole service, by discount only.
        await page.goto(f"{live_server}/staff/plans?service_id=mtn")
        assert (
            await page.locator("#plans-table").count() == 0
            and await page.locator("#f-price_naira").count() == 0
        )
        await page.fill("#f-discount_percent", "1")
        await expect(page.locator("#preview-price")).to_have_text("₦990.00")
        await no_sideways_scroll(page, 360)
        await page.locator("#rule-form").screenshot(
            path=str(SCREENSHOTS / "staff-plans-airtime-rule-360.png")
        )
        await page.goto(f"{live_server}/staff/plans?service_id=mtn-data")

        await page.click("#sync-now")
        await page.wait_for_selector("#flash .alert-success")
        assert "0 reactivated" in await page.inner_text("#flash")  # staff took it off sale: it stays off
        await page.screenshot(path=str(SCREENSHOTS / "staff-plans-synced-360.png"))
        assert not errors, errors
        await context.close()
        await browser.close()

    async with sessionmaker() as session:
        rules = (await session.execute(select(PriceRule.variation_code, PriceRule.fixed_price_kobo))).all()
        assert [tuple(r) for r in rules] == [(ONE_GB, 40_000)]
        active = (
            await session.execute(select(Plan.active).where(Plan.variation_code == "mtn-2-5gb-2days"))
        ).scalar_one()
        assert active is False  # off sale by staff: the sync does not put it back
