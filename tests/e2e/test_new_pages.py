"""The pages added with exam PINs, bulk orders, KYC and provider routing, walked as their users would on a
360 px phone (staff on a 1366 px laptop): two WAEC PINs bought through /buy/exam and shown on the receipt,
a 3-line bulk airtime order confirmed with the PIN and followed to "done" (no SAQ worker runs beside the
served app, so the test process runs the bulk runner, as the worker's `run_bulk_order` job would), a BVN
added on /account/kyc (Monnify simulator) and shown masked with the new level, and an operations user
changing a service's provider order, and operations marking a pending exam purchase delivered with the
PINs they copied. Screenshots go to tests/e2e/artifacts."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import select, text

from app.accounts.kyc_config import parse_kyc_limits
from app.accounts.passwords import hash_password
from app.vtu.config import VtuConfig
from app.vtu.models import Purchase
from app.vtu.orders import PurchaseRequest
from app.vtu.plans import sync_plans
from app.vtu.providers import StubProvider
from app.vtu.providers.stub import DELIVERED_PHONE, DEMO_PHONES, JAMB_PROFILE, UNEXPECTED_PHONE, stub_pins
from app.vtu.runtime import VtuRuntime
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator
from tests.fakes.server import serve
from tests.integration.purchase_fixtures import fund_wallet, make_service

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE = {"width": 360, "height": 740}
LAPTOP = {"width": 1366, "height": 900}
PIN = "2580"
BVN = "22212345678"
# Level 0: N10,000 a purchase, N50,000 a day; level 1: N50,000 / N200,000; level 2: none.
LIMITS = parse_kyc_limits(
    "0=single:1000000,daily:5000000;1=single:5000000,daily:20000000;2=single:0,daily:0", []
)


@pytest.fixture(scope="module")
def site(settings: Any) -> Iterator[tuple[str, Any]]:
    """The app served over HTTP with its Monnify client pointed at the simulator and KYC limits on."""
    from app.asgi import create_app

    msim = MonnifySimulator()
    with serve(msim.app) as monnify:
        live = dataclasses.replace(
            settings,
            monnify_base_url=monnify.url,
            monnify_api_key=msim.api_key,
            monnify_secret_key=msim.secret_key,
            monnify_contract_code=msim.contract_code,
            kyc_limits=LIMITS,
        )
        with serve(create_app(live)) as server:
            yield server.url, live


async def shot(page: Page, name: str) -> None:
    """A full-page screenshot, after checking nothing makes the page scroll sideways."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    scroll = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll} px wide on a {width} px screen"
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def browser_page(browser: Browser, viewport: dict[str, int]) -> tuple[Page, list[str]]:
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


async def log_in(page: Page, url: str, email: str, target: str) -> None:
    await page.goto(f"{url}/login?next={target}")
    await page.fill("#f-email", email)
    await page.fill("#f-password", PASSWORD)
    await page.click("form button[type=submit]")
    await page.wait_for_url(f"{url}{target}")


async def customer(db: Any, sessionmaker: Any, *, fund_kobo: int) -> Any:
    user = await create_user(db)
    user.pin_hash = hash_password(PIN)
    await db.commit()
    await fund_wallet(sessionmaker, user.id, fund_kobo)
    return user


async def seed_plans(sessionmaker: Any, *service_ids: str) -> None:
    for service_id in service_ids:
        async with sessionmaker() as session:
            await sync_plans(session, StubProvider(), service_id)


async def test_two_waec_pins_bought_on_a_phone_show_on_the_receipt(site, db, sessionmaker) -> None:
    url, _ = site
    await seed_plans(sessionmaker, "waec", "jamb")
    user = await customer(db, sessionmaker, fund_kobo=2_000_000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, errors = await browser_page(browser, PHONE)
        await log_in(page, url, user.email, "/buy/exam")
        await expect(page.locator("h1")).to_have_text("Buy exam PINs")
        await expect(page.locator("input[name=profile_id]")).to_have_count(0)  # WAEC first: no JAMB field
        # The KYC limits of level 0, with the way to raise them.
        notice = page.locator("#kyc-limit")
        await expect(notice).to_contain_text("₦50,000.00 (KYC level 0), ₦10,000.00 a purchase")
        await shot(page, "exam-form-360")

        # JAMB: the profile id is checked with the provider before anything is bought.
        await page.locator("label.choice:has(input[name=service_id][value=jamb])").click()
        await expect(page.locator("#plans input[name=variation_code]").first).to_be_attached()
        await page.fill("input[name=profile_id]", JAMB_PROFILE)
        verify = page.get_by_role("button", name="Verify profile")
        await verify.click()  # no PIN type yet: said next to the button, nothing bought
        await expect(page.locator("#customer")).to_contain_text("Choose the PIN type first")
        await page.locator("#plans label.choice:has(input[value=utme])").click()
        await verify.click()
        await expect(page.locator("#customer")).to_contain_text("Profile verified for this PIN type")
        await shot(page, "exam-jamb-verified-360")

        # WAEC: 2 result checker PINs, approved with the transaction PIN.
        await page.locator("label.choice:has(input[name=service_id][value=waec])").click()
        await expect(page.locator("#plans input[name=variation_code][value=waecdirect]")).to_be_attached()
        await page.locator("#plans label.choice:has(input[value=waecdirect])").click()
        # JAMB's verified profile is not WAEC's: the profile field and its answer are gone.
        await expect(page.locator("input[name=profile_id]")).to_have_count(0)
        await expect(page.locator("#customer")).to_have_count(0)
        await page.fill("input[name=quantity]", "2")
        await page.fill("input[name=phone]", DELIVERED_PHONE)
        await page.fill("input[name=pin]", PIN)
        pay = page.locator("#buy-form button[type=submit]")
        await expect(pay).to_have_text(re.compile(r"Pay ₦7,800"))
        await shot(page, "exam-waec-ready-360")
        await pay.click()
        await page.wait_for_url(re.compile(r".*/purchases/[0-9a-f-]{36}$"))
        await expect(page.locator("#purchase-status")).to_have_text("Successful")
        purchase_id = uuid.UUID(page.url.rsplit("/", 1)[1])
        async with sessionmaker() as session:
            request_id = await session.scalar(select(Purchase.request_id).where(Purchase.id == purchase_id))
        expected = [pin for _, pin in stub_pins(request_id, 2)]
        await expect(page.locator(".pin-value")).to_have_text(expected)
        copy = page.get_by_role("button", name="Copy PIN")
        await expect(copy).to_have_count(2)
        for i in range(2):
            box = await copy.nth(i).bounding_box()
            assert box and box["height"] >= 44 and box["width"] >= 44, box
        await shot(page, "exam-receipt-360")
        assert not errors, errors
        await browser.close()


async def test_a_three_line_bulk_airtime_order_runs_to_done(site, db, sessionmaker) -> None:
    url, live = site
    await seed_plans(sessionmaker, "mtn-data")
    user = await customer(db, sessionmaker, fund_kobo=1_000_000)
    lines = f"{DEMO_PHONES['mtn']},100\n{DEMO_PHONES['airtel']},200\n{DEMO_PHONES['glo']},150"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, errors = await browser_page(browser, PHONE)
        await log_in(page, url, user.email, "/bulk")
        await expect(page.locator("#bulk-orders")).to_contain_text("No bulk orders yet")
        await shot(page, "bulk-form-360")
        await page.locator("#plan-codes summary").click()
        await expect(page.locator("#plan-codes table").first).to_be_visible()
        await shot(page, "bulk-plan-codes-360")

        await page.locator("label.choice:has(input[name=kind][value=airtime])").click()
        # A bad line: every problem listed above the list, which comes back to fix; nothing recorded.
        await page.fill("#f-lines", f"{lines}\n0803,100")
        await page.get_by_role("button", name="Check the list").click()
        await expect(page.locator("#bulk-errors")).to_contain_text("Line 4:")
        await expect(page.locator("#f-lines")).to_have_attribute("aria-describedby", "bulk-problem h-lines")
        await expect(page.locator("#f-lines")).to_have_value(f"{lines}\n0803,100")
        await shot(page, "bulk-bad-line-360")
        await page.fill("#f-lines", lines)
        await page.get_by_role("button", name="Check the list").click()
        await page.wait_for_url(re.compile(r".*/bulk/[0-9a-f-]{36}$"))
        bulk_id = uuid.UUID(page.url.rsplit("/", 1)[1])
        await expect(page.locator("h1")).to_have_text("Confirm bulk airtime")
        await expect(page.locator("#bulk-total")).to_have_text("₦450.00")
        await expect(page.locator("#bulk-balance")).to_have_text("₦10,000.00")
        await shot(page, "bulk-confirm-360")
        await page.fill("#f-pin", PIN)
        await page.locator("#bulk-pay").click()
        await page.wait_for_url(f"{url}/bulk/{bulk_id}")
        await expect(page.locator("h1")).to_have_text("Bulk airtime")
        progress = page.locator("[hx-get$='/progress']")
        await expect(progress).to_have_count(1)  # polling while it runs
        await expect(page.locator("main")).to_contain_text("0 of 3")
        await expect(page.locator("#bulk-stop")).to_be_visible()
        await shot(page, "bulk-running-360")

        # No SAQ worker runs beside the served app: run the order here, as the worker's job does.
        runtime = VtuRuntime(live, sessionmaker)
        try:
            assert (await runtime.bulk_runner.run(bulk_id)).startswith("done")
        finally:
            await runtime.aclose()
        # The page's own polling picks up the end, then stops.
        await expect(page.locator("main")).to_contain_text("3 of 3", timeout=15_000)
        await expect(page.locator("[hx-get$='/progress']")).to_have_count(0)
        await expect(page.locator("#bulk-lines .badge-successful")).to_have_count(3)
        await expect(page.locator("#bulk-stop")).to_have_count(0)  # nothing left to stop
        await shot(page, "bulk-done-360")

        sheet = await page.request.get(f"{url}/bulk/{bulk_id}.csv")
        assert sheet.ok and sheet.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(await sheet.text())))
        assert [(r[1], r[3], r[4]) for r in rows[1:]] == [
            (DEMO_PHONES["mtn"], "100.00", "successful"),
            (DEMO_PHONES["airtel"], "200.00", "successful"),
            (DEMO_PHONES["glo"], "150.00", "successful"),
        ]
        await page.goto(f"{url}/bulk")
        await expect(page.locator("#bulk-orders")).to_contain_text("3 of 3 done")
        await shot(page, "bulk-list-360")
        assert not errors, errors
        await browser.close()


async def test_a_bvn_added_on_a_phone_shows_masked_with_level_1(site, db, sessionmaker) -> None:
    url, _ = site
    user = await customer(db, sessionmaker, fund_kobo=100_000)
    staff = await create_user(db, full_name="Ops Lead", staff_role="operations")
    await db.commit()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, errors = await browser_page(browser, PHONE)
        await log_in(page, url, user.email, "/account/kyc")
        await expect(page.locator("#kyc-level")).to_contain_text("KYC level 0")
        await expect(page.locator("#kyc-one-is-enough")).to_be_visible()
        await shot(page, "kyc-level-0-360")
        # The step-up: a wrong password keeps nothing.
        await page.fill("#f-bvn", BVN)
        await page.fill("#f-password", "not-my-password")
        await page.fill("#f-pin", PIN)
        await page.get_by_role("button", name="Save and verify").click()
        await expect(page.locator("#e-password")).to_be_visible()
        await expect(page.locator("#kyc-bvn")).to_contain_text("not given")
        await shot(page, "kyc-wrong-password-360")
        await page.fill("#f-bvn", BVN)
        await page.fill("#f-password", PASSWORD)
        await page.fill("#f-pin", PIN)
        await page.get_by_role("button", name="Save and verify").click()
        await expect(page.locator("#kyc-level")).to_contain_text("KYC level 1")
        await expect(page.locator("#kyc-one-is-enough")).to_have_count(0)
        await expect(page.locator("#kyc-bvn")).to_contain_text("*******5678")
        await expect(page.locator("#kyc-bvn")).to_contain_text("verified")
        assert BVN not in await page.content()
        await expect(page.locator("#kyc-limits")).to_contain_text("₦200,000.00")
        await shot(page, "kyc-level-1-360")
        await page.goto(f"{url}/buy/airtime")
        await expect(page.locator("#kyc-limit")).to_contain_text("₦200,000.00 (KYC level 1)")
        await shot(page, "buy-airtime-kyc-notice-360")
        assert not errors, errors

        laptop, laptop_errors = await browser_page(browser, LAPTOP)
        await log_in(laptop, url, staff.email, f"/staff/users/{user.id}")
        await expect(laptop.locator("#kyc")).to_contain_text("level 1")
        await expect(laptop.locator("#kyc")).to_contain_text("*******5678")
        await shot(laptop, "staff-user-kyc-1366")
        assert not laptop_errors, laptop_errors
        await browser.close()


async def _failed_over_purchase(sessionmaker: Any, settings: Any, user: Any) -> uuid.UUID:
    """An airtime purchase refused by two providers in turn (two stubs behind the two slugs): two attempts."""
    stubs = {"stub": StubProvider(), "clubkonnect": StubProvider()}
    order = VtuConfig(provider_order={"mtn": ("stub", "clubkonnect")})
    shop = make_service(sessionmaker, settings, config=order, providers=stubs)
    try:
        bought = await shop.service.buy(
            user,
            PurchaseRequest(service_id="mtn", phone="08039999999", amount_kobo=10_000),
            idempotency_key=str(uuid.uuid4()),
        )
    finally:
        await shop.aclose()
    async with sessionmaker() as session:
        attempts = await session.scalar(
            text("SELECT count(*) FROM purchase_attempts WHERE purchase_id = :id"), {"id": bought.id}
        )
    assert attempts == 2, attempts
    return bought.id


async def test_operations_change_a_provider_order_and_see_attempts(site, db, sessionmaker) -> None:
    url, live = site
    staff = await create_user(db, full_name="Ops Lead", staff_role="operations")
    user = await customer(db, sessionmaker, fund_kobo=100_000)
    await db.commit()
    purchase_id = await _failed_over_purchase(sessionmaker, live, user)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, errors = await browser_page(browser, LAPTOP)
        await log_in(page, url, staff.email, "/staff/providers")
        await expect(page.locator("h1")).to_have_text("Providers & routing")
        await expect(page.locator("#providers .provider")).not_to_have_count(0)
        await shot(page, "staff-providers-1366")
        await page.screenshot(path=str(ARTIFACTS / "staff-providers-1366-top.png"))
        route = page.locator("#route-mtn")
        await expect(route.locator(".order")).to_have_text("stub")
        await expect(route.get_by_label("Provider order")).to_be_hidden()  # folded under its service
        await route.locator("summary").click()
        await route.get_by_label("Provider order").fill("stub, nosuch")
        await route.get_by_role("button", name="Save order").click()
        route = page.locator("#route-mtn")
        await expect(route.locator(".error")).to_contain_text("Unknown provider 'nosuch'")
        await expect(route.get_by_label("Provider order")).to_have_value("stub, nosuch")
        await route.scroll_into_view_if_needed()
        await shot(page, "staff-providers-error-1366")
        await route.get_by_label("Provider order").fill("stub, clubkonnect")
        await route.get_by_role("button", name="Save order").click()
        route = page.locator("#route-mtn")
        await expect(route.locator(".order")).to_have_text("stub → clubkonnect")
        await expect(route).to_contain_text("Set by staff:")
        await expect(route.locator(".badge")).to_have_text("staff order")
        await shot(page, "staff-providers-saved-1366")
        async with sessionmaker() as session:
            sql = "SELECT providers FROM provider_routes WHERE service_id = 'mtn'"
            saved = await session.scalar(text(sql))
        assert list(saved) == ["stub", "clubkonnect"]
        await route.locator("summary").click()
        await route.get_by_role("button", name="Reset to configured").click()
        await expect(page.locator("#route-mtn .order")).to_have_text("stub")
        await expect(page.locator("#route-mtn .badge")).to_have_count(0)

        await page.goto(f"{url}/staff/purchases/{purchase_id}")
        attempts = page.locator("#attempts li")
        await expect(attempts).to_have_count(2)
        await expect(attempts.nth(0)).to_contain_text("stub")
        await expect(attempts.nth(1)).to_contain_text("clubkonnect")
        first = re.compile(r"nothing placed · code 016 · sent \d\d:\d\d")
        await expect(attempts.nth(0)).to_contain_text(first)
        await page.locator("#attempts").scroll_into_view_if_needed()
        await shot(page, "staff-purchase-attempts-1366")
        assert not errors, errors

        phone, phone_errors = await browser_page(browser, PHONE)
        await log_in(phone, url, staff.email, "/staff/providers")
        await shot(phone, "staff-providers-360")
        # the routes fit a few screens: one line per service (the forms were one screen each)
        routes = await phone.locator("#routes").bounding_box()
        assert routes is not None and routes["height"] < 4 * 740, routes
        await phone.locator("#route-mtn summary").click()
        await expect(phone.locator("#route-mtn").get_by_label("Provider order")).to_be_visible()
        await phone.locator("#route-mtn").scroll_into_view_if_needed()
        await phone.screenshot(path=str(ARTIFACTS / "staff-providers-360-route.png"))
        await phone.goto(f"{url}/staff/purchases/{purchase_id}")
        await shot(phone, "staff-purchase-attempts-360")
        assert not phone_errors, phone_errors
        await browser.close()


async def test_operations_mark_a_pending_exam_purchase_delivered_with_its_pins(
    site, db, sessionmaker
) -> None:
    """A 2-PIN WAEC purchase the provider leaves pending: staff copy the PINs from the provider's
    dashboard into "Resolve by hand" (one too few is refused beside the field), and the customer's receipt
    shows them."""
    url, live = site
    await seed_plans(sessionmaker, "waec")
    staff = await create_user(db, full_name="Ops Lead", staff_role="operations")
    user = await customer(db, sessionmaker, fund_kobo=2_000_000)
    await db.commit()
    shop = make_service(sessionmaker, live, providers={"stub": StubProvider()})
    try:
        bought = await shop.service.buy(
            user,
            PurchaseRequest(
                service_id="waec", phone=UNEXPECTED_PHONE, variation_code="waecdirect", quantity=2
            ),
            idempotency_key=str(uuid.uuid4()),
        )
    finally:
        await shop.aclose()
    assert bought.status == "pending"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, errors = await browser_page(browser, LAPTOP)
        await log_in(page, url, staff.email, f"/staff/purchases/{bought.id}")
        await expect(page.locator("#exam-pins")).to_have_text("None received yet.")
        form = page.locator("#resolve-form")
        await form.get_by_label("Note (required)").fill("VTpass dashboard: both cards issued")
        pins = form.get_by_label(re.compile("Exam PINs"))
        await pins.fill("WRN5001,111122223333")
        await form.get_by_label("I confirmed the outcome with the provider").check()
        await form.get_by_role("button", name="Mark delivered").click()
        await expect(page.locator("#e-pins")).to_contain_text("This purchase is for 2 PINs")
        await page.locator("#resolve-form").scroll_into_view_if_needed()
        await shot(page, "staff-exam-pins-error-1366")
        form = page.locator("#resolve-form")
        await form.get_by_label(re.compile("Exam PINs")).fill("WRN5001,111122223333\nWRN5002,444455556666")
        await form.get_by_label("I confirmed the outcome with the provider").check()
        await form.get_by_role("button", name="Mark delivered").click()
        await expect(page.locator("#exam-pins")).to_contain_text("Delivered and stored encrypted")
        await expect(page.locator("body")).not_to_contain_text("111122223333")
        await shot(page, "staff-exam-pins-delivered-1366")
        assert not errors, errors

        phone, phone_errors = await browser_page(browser, PHONE)
        await log_in(phone, url, user.email, f"/purchases/{bought.id}")
        await expect(phone.locator("#purchase-status")).to_have_text("Successful")
        await expect(phone.locator(".pin-value")).to_have_text(["111122223333", "444455556666"])
        await shot(phone, "exam-receipt-resolved-by-staff-360")
        assert not phone_errors, phone_errors
        await browser.close()
