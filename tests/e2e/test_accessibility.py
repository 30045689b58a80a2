"""WCAG 2.2 AA on the main pages (docs/architecture.md "Accessibility"): axe-core finds no serious or
critical violation, each page has exactly one h1, "Skip to content" is the first stop in tab order and
lands on <main id="content">, and on customer pages every visible control is at least 44x44 px (inline
links inside running text excepted, WCAG 2.5.8). Phones (360x740) throughout, the dashboard on a laptop too.

axe-core comes from npm (`npm ci`, package.json at the repo root); without it the test is skipped. The
site's CSP refuses injected scripts, so these contexts bypass the CSP to load axe (the other browser tests
run under it)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from app.accounts.passwords import hash_password
from app.vtu.orders import PurchaseRequest
from app.vtu.plans import sync_plans
from app.vtu.providers import StubProvider
from app.vtu.providers.stub import DELIVERED_PHONE, DEMO_PHONES
from app.vtu.runtime import VtuRuntime
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.e2e.test_staff_funding import log_in
from tests.factories import create_user
from tests.integration.api_fixtures import new_key
from tests.integration.purchase_fixtures import fund_wallet, make_service

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
PHONE = {"width": 360, "height": 740}
LAPTOP = {"width": 1366, "height": 900}
MIN_TARGET = 44

needs_axe = pytest.mark.skipif(
    not AXE.exists(),
    reason="axe-core is not installed (`npm ci --no-audit --no-fund` at the repo root; needs node and npm)",
)

# Interactive elements to measure. A radio or checkbox is measured through its label (the custom choices
# hide the input itself); a link is exempt when it is inline and shares its block with other text (a link
# inside a sentence, WCAG 2.5.8's inline exception). Returns the indexes into `selector`'s matches.
CANDIDATES_JS = """
(selector) => {
  const out = [];
  const all = [...document.querySelectorAll(selector)];
  all.forEach((el, i) => {
    if (!el.checkVisibility({visibilityProperty: true})) return;
    if (el.closest('details:not([open])') && el.tagName !== 'SUMMARY') return;
    if (el.tagName === 'INPUT' && (el.type === 'radio' || el.type === 'checkbox') && el.labels.length) return;
    if (el.tagName === 'LABEL' && !(el.control && ['radio', 'checkbox'].includes(el.control.type))) return;
    if (el.tagName === 'A' && getComputedStyle(el).display === 'inline') {
      const block = el.parentElement.closest('p, li, dd, td, th, div, span, small');
      const own = el.textContent.replace(/\\s+/g, ' ').trim();
      const around = (block ? block.textContent : '').replace(/\\s+/g, ' ').trim();
      if (around.length > own.length) return;
    }
    const name = (el.getAttribute('aria-label') || el.textContent || el.value || el.name || '')
      .replace(/\\s+/g, ' ').trim().slice(0, 40);
    const id = el.id ? '#' + el.id : '';
    const classes = typeof el.className === 'string' ? el.className.trim().split(/\\s+/) : [];
    const cls = classes.filter(Boolean).map((c) => '.' + c).join('');
    out.push([i, `${el.tagName.toLowerCase()}${id}${cls} "${name}"`]);
  });
  return out;
}
"""
CUSTOMER_TARGETS = "a[href], button, input:not([type=hidden]), select, textarea, summary, label"
# The staff console is a work tool on laptops first: its navigation, buttons and form controls are
# measured, the links inside its tables and lists are not.
STAFF_TARGETS = (
    "header a[href], header button, main button, main .btn, main input:not([type=hidden]), main select, "
    "main label"
)


async def small_targets(page: Page, selector: str) -> list[str]:
    found = await page.evaluate(CANDIDATES_JS, selector)
    matches = page.locator(selector)
    small = []
    for index, described in found:
        box = await matches.nth(index).bounding_box()
        if box is None or box["width"] == 0 or box["height"] == 0:
            continue
        if box["height"] < MIN_TARGET - 0.5 or box["width"] < MIN_TARGET - 0.5:
            small.append(f"{described} is {box['width']:.0f}x{box['height']:.0f}")
    return small


async def axe_violations(page: Page) -> list[str]:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        """async (tags) => {
          const options = {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']};
          const r = await axe.run(document, options);
          const why = (n) => n.failureSummary.replace(/\\s+/g, ' ').slice(0, 160);
          const node = (n) => `      ${n.target.join(' ')} ${why(n)}`;
          return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) =>
            `${v.impact} ${v.id}: ${v.help}\\n` + v.nodes.slice(0, 8).map(node).join('\\n'));
        }""",
        WCAG_TAGS,
    )
    return list(result)


async def audit_page(page: Page, url: str, *, customer: bool) -> list[str]:
    """Every problem found on one page, each prefixed with the page (an empty list: the page passes)."""
    response = await page.goto(url)
    assert response is not None
    where = f"{page.url} [{page.viewport_size['width'] if page.viewport_size else '?'}px]"
    problems: list[str] = []
    h1s = await page.locator("h1").count()
    if h1s != 1:
        problems.append(f"{h1s} h1 elements (want exactly 1)")
    # The skip link: first in tab order, visible when focused, lands on <main id="content">.
    await page.keyboard.press("Tab")
    focused = await page.evaluate(
        "() => { const el = document.activeElement; return el ? [el.tagName, el.getAttribute('href'), "
        "el.textContent.trim()] : null; }"
    )
    if not focused or focused[0] != "A" or focused[2] != "Skip to content" or not focused[1].startswith("#"):
        problems.append(f"first tab stop is {focused}, not the skip link")
    else:
        box = await page.locator("a.skip-link").bounding_box()
        if not box or box["y"] < 0 or box["height"] < MIN_TARGET - 0.5:
            problems.append(f"the focused skip link is not visible on screen: {box}")
        await page.keyboard.press("Enter")
        landed = await page.evaluate("() => [document.activeElement.tagName, document.activeElement.id]")
        if landed != ["MAIN", focused[1][1:]]:
            problems.append(f"the skip link moved focus to {landed}, not the main landmark {focused[1]}")
    if await page.locator("header.topbar nav[aria-label]").count() != 1:
        problems.append("the site navigation has no aria-label")
    for landmark in ("header", "main", "footer"):
        if await page.locator(f"body > {landmark}").count() != 1:
            problems.append(f"no {landmark} landmark")
    problems += [
        f"small target: {t}"
        for t in await small_targets(page, CUSTOMER_TARGETS if customer else STAFF_TARGETS)
    ]
    problems += await axe_violations(page)
    return [f"{where}: {p}" for p in problems]


async def new_page(browser: Browser, viewport: dict[str, int]) -> tuple[Page, list[str]]:
    context = await browser.new_context(viewport=viewport, bypass_csp=True)  # to load axe (see above)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


async def seed(db: Any, sessionmaker: Any, settings: Any) -> dict[str, Any]:
    """A reseller with a funded wallet, a PIN, plans, a successful and a failed purchase, 2 WAEC PINs, a
    bulk order to confirm and a finished one, an API key and a referred friend; an admin for the console."""
    ada = await create_user(db, full_name="Adaeze Okafor", phone="08031234567", tier="reseller")
    ada.pin_hash = hash_password("2580")
    await create_user(
        db, full_name="Tunde Bakare", email="tunde.bakare@gmail.com", referral_code=ada.referral_code
    )
    admin = await create_user(db, full_name="Ops Admin", staff_role="admin")
    await db.commit()
    await fund_wallet(sessionmaker, ada.id, 1_000_000)
    for service_id in ("mtn-data", "dstv", "waec", "jamb"):
        async with sessionmaker() as session:
            await sync_plans(session, StubProvider(), service_id)
    shop = make_service(sessionmaker, settings)
    purchases = []
    try:
        for phone in ("08011111111", "08022222222"):
            result = await shop.service.buy(
                ada,
                PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=50_000),
                idempotency_key=str(uuid.uuid4()),
            )
            purchases.append(result)
        exam = await shop.service.buy(
            ada,
            PurchaseRequest(
                service_id="waec", variation_code="waecdirect", quantity=2, phone=DELIVERED_PHONE
            ),
            idempotency_key=str(uuid.uuid4()),
        )
    finally:
        await shop.aclose()
    # Bulk orders: one finished (run here: no worker runs beside the served app), one waiting for its PIN.
    runtime = VtuRuntime(settings, sessionmaker)
    try:
        finished = await runtime.bulk.prepare_upload(
            ada, "airtime", f"{DEMO_PHONES['mtn']},100\n{DEMO_PHONES['airtel']},200\n08039999999,100"
        )
        await runtime.bulk.confirm(ada.id, finished.bulk.id)
        assert (await runtime.bulk_runner.run(finished.bulk.id)).startswith("done")
        draft = await runtime.bulk.prepare_upload(ada, "data", f"{DEMO_PHONES['mtn']},mtn-1gb-1day")
    finally:
        await runtime.aclose()
    await new_key(sessionmaker, ada.id, name="Shop server")
    return {
        "ada": ada,
        "admin": admin,
        "purchases": purchases,
        "exam": exam,
        "bulk_done": finished.bulk.id,
        "bulk_draft": draft.bulk.id,
    }


@needs_axe
async def test_public_and_customer_pages_meet_wcag_aa(live_server, db, sessionmaker, settings) -> None:
    seeded = await seed(db, sessionmaker, settings)
    receipt = f"/purchases/{seeded['purchases'][0].id}"
    problems: list[str] = []
    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, errors = await new_page(browser, PHONE)
        for path in (
            "/",
            "/login",
            "/signup",
            "/password/forgot",
            "/password/reset/not-a-token",
            "/no-such-page",
            "/api/guide",
        ):
            problems += await audit_page(page, f"{live_server}{path}", customer=True)
        await log_in(page, live_server, seeded["ada"].email, "/dashboard")
        for path in (
            "/dashboard",
            "/buy/airtime",
            "/buy/data",
            "/buy/electricity",
            "/buy/cable",
            "/purchases",
            receipt,
            "/statement",
            "/referrals",
            "/account/api-keys",
            "/account/notifications",
            "/beneficiaries",
            "/wallet/fund",
            "/buy/exam",
            f"/purchases/{seeded['exam'].id}",
            "/bulk",
            f"/bulk/{seeded['bulk_draft']}",
            f"/bulk/{seeded['bulk_done']}",
            "/account/kyc",
            "/no-such-page",
        ):
            problems += await audit_page(page, f"{live_server}{path}", customer=True)
        await page.goto(f"{live_server}/dashboard")
        await page.screenshot(path=str(SCREENSHOTS / "a11y-dashboard-360.png"), full_page=True)
        await page.goto(f"{live_server}/buy/data")
        await page.click("label.choice:has-text('MTN')")
        await expect(page.locator("#plans label.choice").first).to_be_visible()
        problems += [f"{page.url} with plans: {p}" for p in await small_targets(page, CUSTOMER_TARGETS)]
        await page.screenshot(path=str(SCREENSHOTS / "a11y-buy-data-360.png"), full_page=True)
        await page.goto(f"{live_server}/bulk")
        await page.locator("#plan-codes summary").click()
        await expect(page.locator("#plan-codes table").first).to_be_visible()
        problems += [f"{page.url} with plan codes: {p}" for p in await axe_violations(page)]
        problems += [f"{page.url} with plan codes: {p}" for p in await small_targets(page, CUSTOMER_TARGETS)]
        await page.goto(f"{live_server}/buy/data")
        await page.keyboard.press("Tab")  # the skip link, focused
        await page.screenshot(path=str(SCREENSHOTS / "a11y-skip-link-360.png"))
        assert not errors, errors

        laptop, laptop_errors = await new_page(browser, LAPTOP)
        await log_in(laptop, live_server, seeded["ada"].email, "/dashboard")
        problems += await audit_page(laptop, f"{live_server}/dashboard", customer=True)
        await laptop.screenshot(path=str(SCREENSHOTS / "a11y-dashboard-1366.png"), full_page=True)
        assert not laptop_errors, laptop_errors
        await browser.close()
    assert not problems, "\n".join(problems)


@needs_axe
async def test_staff_console_meets_wcag_aa(live_server, db, sessionmaker, settings) -> None:
    seeded = await seed(db, sessionmaker, settings)
    ada = seeded["ada"]
    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, errors = await new_page(browser, PHONE)
        await log_in(page, live_server, seeded["admin"].email, "/staff")
        for path in (
            "/staff",
            "/staff/users",
            f"/staff/users/{ada.id}",
            "/staff/purchases",
            f"/staff/purchases/{seeded['purchases'][0].id}",
            "/staff/funding",
            "/staff/providers",
            f"/staff/purchases/{seeded['exam'].id}",
        ):
            problems += await audit_page(page, f"{live_server}{path}", customer=False)
        assert not errors, errors
        laptop, laptop_errors = await new_page(browser, LAPTOP)
        await log_in(laptop, live_server, seeded["admin"].email, "/staff/providers")
        problems += await audit_page(laptop, f"{live_server}/staff/providers", customer=False)
        assert not laptop_errors, laptop_errors
        await browser.close()
    assert not problems, "\n".join(problems)
