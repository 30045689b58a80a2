"""Staff on shift open the funding console, one transfer and one customer's funding view, on a laptop
(1280x800) and a phone (360x740), and retry a failed transfer from the phone; screenshots go to
tests/e2e/screenshots/."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from app.ledger.queries import wallet_balance
from app.payments import models as m
from app.payments.funding import process_event, store_event
from app.payments.monnify_client import MonnifyClient
from app.payments.reservations import reserve_for_user
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator
from tests.fakes.server import serve
from tests.integration.purchase_fixtures import assert_reconciled

pytestmark = pytest.mark.e2e

WEBHOOK = "/payments/webhooks/monnify/"


async def seed(live_server: str, db: Any, sessionmaker: Any, settings: Any) -> dict[str, Any]:
    """A night's mix: two transfers credited through the running app's webhook, one for nobody (unmatched),
    one Monnify could not confirm (failed: it was down), one Monnify says was not paid (rejected), and a
    customer whose bank accounts Monnify refused."""
    sim = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )
    ada = await create_user(db, full_name="Adaeze Okafor", phone="08031234567")
    tunde = await create_user(db, full_name="Tunde Bakare")
    stranded = await create_user(db, full_name="Chidi Eze")
    await db.commit()
    with serve(sim.app) as monnify:
        verify = dataclasses.replace(
            settings, monnify_verify_before_credit=True, monnify_base_url=monnify.url
        )
        async with MonnifyClient(verify, backoff_base=0.01, backoff_max=0.02, max_attempts=2) as client:
            await reserve_for_user(sessionmaker, client, ada.id)
            sim.fail_next(10, status=500, path_prefix="/api/v2/bank-transfer")
            with pytest.raises(Exception):
                await reserve_for_user(sessionmaker, client, stranded.id)
            sim._failures.clear()
            async with httpx.AsyncClient(timeout=30) as http:
                for account, kobo in ((ada.account_reference, 500_000), (tunde.account_reference, 250_000)):
                    sent = await sim.send_transfer(f"{live_server}{WEBHOOK}", account, kobo, client=http)
                    assert sent.response.status_code == 200
                sent = await sim.send_transfer(
                    f"{live_server}{WEBHOOK}", "VTUNOSUCHREF9", 1_000_000, client=http
                )
                assert sent.response.status_code == 200

            async def stored(account: str, kobo: int) -> int:
                body, _ = sim.build_webhook(account, kobo)
                async with sessionmaker() as session:
                    return (await store_event(session, json.loads(body), body, "127.0.0.1")).id

            rejected = await stored(tunde.account_reference, 300_000)
            assert sim.last_transaction is not None
            sim.set_transaction(sim.last_transaction.transaction_reference, payment_status="FAILED")
            async with sessionmaker() as session:
                assert await process_event(session, verify, rejected, client) == m.EVENT_REJECTED
            failed = await stored(ada.account_reference, 200_000)
            sim.fail_next(10, status=503, path_prefix="/api/v2/transactions")
            async with sessionmaker() as session:
                assert await process_event(session, verify, failed, client) == m.EVENT_FAILED
            sim._failures.clear()
    return {"ada": ada, "failed": failed, "stranded": stranded}


async def no_sideways_scroll(page: Page, width: int) -> None:
    wide = await page.evaluate(
        """(width) => [...document.querySelectorAll('body *')]
            .filter((el) => el.getBoundingClientRect().right > width + 0.5
                || (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === 'visible'))
            .slice(0, 5).map((el) => el.tagName + '#' + el.id + '.' + el.className)""",
        width,
    )
    assert await page.evaluate("document.documentElement.scrollWidth") <= width, wide


async def log_in(page: Page, live_server: str, email: str, target: str) -> None:
    await page.goto(f"{live_server}/login?next={target}")
    await page.fill("#f-email", email)
    await page.fill("#f-password", PASSWORD)
    await page.click("form button[type=submit]")
    await page.wait_for_url(f"{live_server}{target}")


async def test_staff_funding_console_on_laptop_and_phone(live_server, db, sessionmaker, settings) -> None:
    staff = await create_user(db, is_staff=True)
    # A long address in "Recent sign-ups" must wrap, not push /staff sideways on a phone.
    await create_user(db, email="adaeze.okafor.customer.support.lagos.island@long-domain-example.com.ng")
    await db.commit()
    seeded = await seed(live_server, db, sessionmaker, settings)
    ada, failed = seeded["ada"], seeded["failed"]
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for width, height in ((1280, 800), (360, 740)):
            context = await browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            page.on(
                "console",
                lambda msg, errors=errors: errors.append(msg.text) if msg.type == "error" else None,
            )
            await log_in(page, live_server, staff.email, "/staff/funding")
            # unmatched, rejected, failed; and the customer whose accounts Monnify refused
            assert await page.locator("#needs-action-list .purchase").count() == 3
            assert await page.locator("#reservation-list .purchase").count() == 1
            assert "then finance credits it on Unmatched transfers" in await page.inner_text("#needs-action")
            await no_sideways_scroll(page, width)
            await page.screenshot(path=str(SCREENSHOTS / f"staff-funding-{width}.png"), full_page=True)
            if width == 360:  # the first screen, and close-ups, at full resolution
                await page.screenshot(path=str(SCREENSHOTS / "staff-funding-top-360.png"))
                for part in ("funding-counts", "needs-action", "funding-filters"):
                    await page.locator(f"#{part}").screenshot(path=str(SCREENSHOTS / f"staff-{part}-360.png"))

            # The filter form (htmx): unmatched only.
            await page.select_option("#f-status", "unmatched")
            await page.wait_for_url("**/staff/funding?*status=unmatched*")
            await expect(page.locator("#funding-results .purchase")).to_have_count(1)
            await page.screenshot(
                path=str(SCREENSHOTS / f"staff-funding-unmatched-{width}.png"), full_page=True
            )

            # The failed transfer: notes, retry button, customer by reference, raw body.
            await page.goto(f"{live_server}/staff/funding/{failed}")
            assert await page.inner_text("#event-status") == "failed"
            assert await page.locator("#retry").count() == 1
            assert ada.email in await page.inner_text("#customer")
            assert "SUCCESSFUL_TRANSACTION" in await page.inner_text("#payload-json")
            await no_sideways_scroll(page, width)
            await page.screenshot(path=str(SCREENSHOTS / f"staff-funding-event-{width}.png"), full_page=True)
            if width == 360:
                await page.screenshot(path=str(SCREENSHOTS / "staff-funding-event-top-360.png"))
                for part in ("actions", "event-facts", "customer", "payload"):
                    await page.locator(f"#{part}").screenshot(
                        path=str(SCREENSHOTS / f"staff-funding-event-{part}-360.png")
                    )

            # From the event to the customer's funding view.
            await page.click("#customer-funding-view")
            await page.wait_for_url("**/staff/funding/customer?q=*")
            assert await page.locator("#reserved-accounts .bank").count() >= 2
            assert await page.locator("#customer-events .purchase").count() == 2
            await no_sideways_scroll(page, width)
            await page.screenshot(
                path=str(SCREENSHOTS / f"staff-funding-customer-{width}.png"), full_page=True
            )
            if width == 360:
                await page.screenshot(path=str(SCREENSHOTS / "staff-funding-customer-top-360.png"))

            await page.goto(f"{live_server}/staff")
            assert await page.locator('.actions a[href="/staff/funding"]').count() == 1
            await no_sideways_scroll(page, width)
            assert not errors, errors
            await context.close()

        # On the phone: a credited transfer's page, then retry the failed one (Monnify is back).
        context = await browser.new_context(viewport={"width": 360, "height": 740})
        page = await context.new_page()
        await log_in(page, live_server, staff.email, f"/staff/funding/{failed}")
        await page.click("#retry")
        await page.wait_for_selector("#no-actions")
        flash = await page.inner_text("#flash")
        assert f"Retried: credited ₦2,000.00 to {ada.email}'s wallet" in flash, flash
        assert await page.inner_text("#event-status") == "credited"
        await no_sideways_scroll(page, 360)
        await page.screenshot(path=str(SCREENSHOTS / "staff-funding-retried-360.png"), full_page=True)
        await page.click("#customer-funding-view")
        await page.wait_for_url("**/staff/funding/customer?q=*")
        await page.screenshot(path=str(SCREENSHOTS / "staff-funding-customer-after-360.png"), full_page=True)
        await context.close()
        await browser.close()

    async with sessionmaker() as session:
        assert await wallet_balance(session, ada.id) == 500_000 + 200_000
    await assert_reconciled(sessionmaker)
