"""The staff purchase console (/staff/purchases): guard, list filters and search, the detail page, and the
actions (check now, mark delivered, mark failed and refund) over HTTP against the real app, which sells
through the real VTpass adapter to the simulator; money asserted in the ledger, reconcile clean after."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import func, select, text

from app.dashboard import purchases as staff_purchases
from app.vtu.models import FAILED, PENDING, REVERSED, SUCCESSFUL, Purchase
from app.vtu.orders import PurchaseRequest
from app.vtu.views import PurchaseView
from tests.factories import PASSWORD, create_user
from tests.helpers import browser_pool, csrf_token, log_in, running, staff_browser
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    SHORT_SCHEDULE,
    Harness,
    assert_reconciled,
    load,
    money,
    new_buyer,
    postings_for,
    sim_settings,
)

# pytest fixtures shared by the purchase-engine tests
sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt

START = 1_000_000  # N10,000
PRICE = 50_000  # N500 airtime
DELIVERED = "08011111111"  # the sandbox delivers to this number
FAILING = "08031234567"  # ... and fails (016) for ordinary numbers
PENDING_THEN_DELIVERED = "201000000000"  # pending on /pay, delivered on requery
UNCLEAR = "500000000000"  # malformed answer, then pending for ever


def airtime(phone: str, service_id: str = "mtn", amount: int = PRICE) -> PurchaseRequest:
    return PurchaseRequest(service_id=service_id, phone=phone, amount_kobo=amount)


# -- the app under test: production-like, its provider is the VTpass simulator --------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def staff_app(settings: Any, sim_server: Any) -> AsyncIterator[Any]:
    from app.asgi import create_app
    from app.vtu.runtime import close_vtu

    sim_, server = sim_server
    application = create_app(sim_settings(settings, server.url, sim_))
    async with running(application):
        yield application
        await close_vtu(application)


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(staff_app: Any, db: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """New browsers (own cookie jars) on the app under test, on a clean database."""
    async with browser_pool(staff_app) as new:
        yield new


@pytest_asyncio.fixture(loop_scope="session")
async def staff(db: Any, browsers: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    return await staff_browser(db, browsers)


def url(purchase_id: uuid.UUID) -> str:
    return f"/staff/purchases/{purchase_id}"


async def act(client: httpx.AsyncClient, purchase_id: uuid.UUID, action: str, **data: str) -> httpx.Response:
    """POST an action form like a browser (CSRF token from the page), without following the redirect."""
    token = await csrf_token(client, "/staff/purchases")
    return await client.post(
        f"{url(purchase_id)}/{action}", data={**data, "_csrf_token": token}, follow_redirects=False
    )


async def act_and_read(client: httpx.AsyncClient, purchase_id: uuid.UUID, action: str, **data: str) -> str:
    """The action, then the page it redirects to (with its flash message)."""
    response = await act(client, purchase_id, action, **data)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == url(purchase_id)
    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    return page.text


def flashes(html: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", text).strip()
        for text in re.findall(r'<p class="alert alert-\w+" role="status">(.*?)</p>', html, re.S)
    ]


def listed(html: str) -> set[str]:
    """Ids of the purchases shown in a list page or fragment."""
    return set(re.findall(r'id="purchase-([0-9a-f-]{36})"', html))


async def pending_forever(vt: Harness, buyer: Any) -> PurchaseView:
    purchase = await vt.service.buy(buyer, airtime(UNCLEAR))
    assert purchase.status == PENDING
    return purchase


async def flagged(vt: Harness, buyer: Any) -> PurchaseView:
    """Pending after every scheduled requery: flagged for staff, never refunded blind."""
    purchase = await pending_forever(vt, buyer)
    current: PurchaseView | None = purchase
    for attempt in range(1, len(SHORT_SCHEDULE) + 1):
        current = await vt.service.requery(purchase.id, source="worker", attempt=attempt)
    assert current is not None and current.needs_attention and current.status == PENDING
    return current


async def purchase_count(sessionmaker: Any) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(Purchase))).scalar_one())


# -- guard ----------------------------------------------------------------------------------------------
async def test_anonymous_visitors_log_in_and_customers_are_refused(
    db, browsers, vt: Harness, sessionmaker
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await pending_forever(vt, buyer)
    anon = browsers()
    for path in ("/staff/purchases", url(purchase.id), "/staff/purchases/counts"):
        response = await anon.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2Fstaff%2Fpurchases")
    customer = await create_user(db)
    await db.commit()
    browser = browsers()
    await log_in(browser, customer.email, PASSWORD)
    for path in ("/staff/purchases", url(purchase.id), "/staff/purchases/counts"):
        page = await browser.get(path)
        assert page.status_code == 403 and "staff only" in page.text, path
    # A customer cannot act either, even with a valid CSRF token.
    refused = await act(browser, purchase.id, "resolve", decision="failed", note="x", confirm="yes")
    assert refused.status_code == 403
    assert (await act(browser, purchase.id, "requery")).status_code == 403
    assert (await load(sessionmaker, purchase.id)).status == PENDING
    assert (await money(sessionmaker, buyer.id)).wallet == START - PRICE
    await assert_reconciled(sessionmaker)


# -- list -----------------------------------------------------------------------------------------------
async def test_list_counts_open_section_filters_and_search(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker
) -> None:
    alice = await new_buyer(sessionmaker, fund=START)
    bob = await new_buyer(sessionmaker, fund=START, tier="reseller")
    delivered = await vt.service.buy(alice, airtime(DELIVERED))
    failed = await vt.service.buy(alice, airtime(FAILING))
    glo = await vt.service.buy(bob, airtime(DELIVERED, service_id="glo"))
    waiting = await vt.service.buy(bob, airtime(PENDING_THEN_DELIVERED))
    stuck = await flagged(vt, alice)
    assert (delivered.status, failed.status, glo.status) == (SUCCESSFUL, FAILED, SUCCESSFUL)
    assert waiting.status == PENDING
    ids = {str(p.id) for p in (delivered, failed, glo, waiting, stuck)}

    page = await staff.get("/staff/purchases")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text

    def count(name: str) -> str:
        block = re.search(rf'id="count-{name}".*?</a>', html, re.S)
        assert block, name
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", block.group(0)))

    assert " 2 " in count("pending") and "oldest" in count("pending")
    assert " 1 " in count("attention") and "1 still pending" in count("attention")
    assert " 1 " in count("failed") and "₦500.00" in count("failed")
    assert " 2 " in count("successful") and "₦990.00" in count("successful")  # bob: reseller price
    assert 'href="/staff/purchases?attention=1"' in html

    # What matters at 2 a.m.: the pending purchases, the flagged one first, with age, requeries, reason.
    open_section = re.search(r'id="open-purchases".*?</section>', html, re.S).group(0)
    assert listed(open_section) == {str(waiting.id), str(stuck.id)}
    assert open_section.index(str(stuck.id)) < open_section.index(str(waiting.id))
    assert "Unresolved:" in open_section and "3 requeries" in open_section
    assert "no more automatic requeries" in open_section and "next requery" in open_section
    assert re.search(r"(just now|\d+ s ago)", open_section)
    # ...and everything, newest first, below it.
    everything = re.search(r'id="all-purchases".*?</section>', html, re.S).group(0)
    assert listed(everything) == ids
    order = [m for m in re.findall(r'id="purchase-([0-9a-f-]{36})"', everything)]
    assert order == [str(p.id) for p in (stuck, waiting, glo, failed, delivered)]

    async def found(**params: str) -> set[str]:
        response = await staff.get("/staff/purchases", params=params)
        assert response.status_code == 200
        results = re.search(r'id="purchase-results".*', response.text, re.S)
        assert results is not None
        assert 'id="open-purchases"' not in response.text  # a filtered view is just the list
        return listed(results.group(0))

    assert await found(status="failed") == {str(failed.id)}
    assert await found(status="pending") == {str(waiting.id), str(stuck.id)}
    assert await found(status="successful") == {str(delivered.id), str(glo.id)}
    assert await found(status="reversed") == set()
    assert await found(attention="1") == {str(stuck.id)}
    assert await found(service="glo") == {str(glo.id)}
    assert await found(service="mtn", status="successful") == {str(delivered.id)}
    assert await found(q=failed.request_id) == {str(failed.id)}
    assert await found(q=str(glo.id)) == {str(glo.id)}
    assert await found(q=FAILING) == {str(failed.id)}
    assert await found(q="+2348031234567") == {str(failed.id)}  # any spelling of the number
    assert await found(q=UNCLEAR) == {str(stuck.id)}
    bob_email = (await load_email(sessionmaker, bob.id)).upper()  # case-insensitive
    assert await found(q=bob_email) == {str(glo.id), str(waiting.id)}
    assert await found(q="nobody@example.ng") == set()
    assert await found(q="100%_") == set()  # LIKE wildcards are literal
    # Unknown filter values are ignored rather than failing the page.
    bogus = await staff.get("/staff/purchases", params={"status": "bogus"})
    assert bogus.status_code == 200
    assert listed(re.search(r'id="purchase-results".*', bogus.text, re.S).group(0)) == ids

    # The filter form swaps only the results (htmx).
    fragment = await staff.get(
        "/staff/purchases",
        params={"status": "failed"},
        headers={"HX-Request": "true", "HX-Target": "purchase-results"},
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert listed(fragment.text) == {str(failed.id)}
    await assert_reconciled(sessionmaker)


async def load_email(sessionmaker: Any, user_id: uuid.UUID) -> str:
    from app.accounts.models import User

    async with sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user.email


async def test_list_pages_by_keyset_without_gaps_or_repeats(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker, monkeypatch
) -> None:
    monkeypatch.setattr(staff_purchases, "PAGE_SIZE", 2)
    buyer = await new_buyer(sessionmaker, fund=START)
    bought = [await vt.service.buy(buyer, airtime(DELIVERED, amount=5_000 + i * 100)) for i in range(5)]
    newest_first = [str(p.id) for p in reversed(bought)]

    seen: list[str] = []
    next_url: str | None = "/staff/purchases?status=successful"
    pages = 0
    while next_url:
        page = await staff.get(next_url)
        assert page.status_code == 200
        results = re.search(r'id="purchase-results".*', page.text, re.S).group(0)
        seen += re.findall(r'id="purchase-([0-9a-f-]{36})"', results)
        more = re.search(r'id="more-purchases">\s*<a[^>]* href="([^"]+)"', results)
        next_url = more.group(1).replace("&amp;", "&") if more else None
        if next_url:
            assert "status=successful" in next_url  # the filter survives paging
        pages += 1
    assert pages == 3 and seen == newest_first

    # htmx "older purchases": only the next rows (and the next link), appended in place.
    fragment = await staff.get(
        "/staff/purchases",
        params={"before": _cursor_after(bought[-1])},
        headers={"HX-Request": "true", "HX-Target": "more-purchases"},
    )
    assert "<html" not in fragment.text and "purchase-results" not in fragment.text
    assert re.findall(r'id="purchase-([0-9a-f-]{36})"', fragment.text) == newest_first[1:3]
    assert 'id="more-purchases"' in fragment.text
    # A cursor that does not parse is ignored (first page).
    assert (await staff.get("/staff/purchases", params={"before": "garbage"})).status_code == 200
    await assert_reconciled(sessionmaker)


def _cursor_after(purchase: PurchaseView) -> str:
    from app.core.keyset import Cursor

    return Cursor.after(purchase)


# -- detail ---------------------------------------------------------------------------------------------
async def test_detail_shows_customer_amounts_exchanges_and_ledger(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker, sim
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START, tier="reseller")
    purchase = await vt.service.buy(buyer, airtime(PENDING_THEN_DELIVERED, amount=100_000))
    done = await vt.service.requery(purchase.id, source="worker", attempt=1)
    assert done is not None and done.status == SUCCESSFUL
    page = await staff.get(url(purchase.id))
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    email = await load_email(sessionmaker, buyer.id)
    assert email in html and "reseller" in html
    assert purchase.request_id in html and PENDING_THEN_DELIVERED in html
    # amounts: charged 980 (reseller discount), face and cost 1,000, margin -20
    for figure in ("₦980.00", "₦1,000.00", "-₦20.00"):
        assert figure in html, figure
    assert re.search(r'id="purchase-status">successful<', html)
    assert f'href="/staff/audit?target_type=purchase&amp;target_id={purchase.id}"' in html
    # the provider log: both exchanges, pretty JSON in <pre>, without secrets
    exchanges = re.search(r'id="exchanges".*?</section>', html, re.S).group(0)
    assert "1. Sent to provider (/pay)" in exchanges and "2. Requery" in exchanges
    assert exchanges.count('<pre class="json"') >= 4
    assert f"&#34;request_id&#34;: &#34;{purchase.request_id}&#34;" in exchanges or (
        f"&quot;request_id&quot;: &quot;{purchase.request_id}&quot;" in exchanges
    )
    for secret in (sim.api_key, sim.public_key, sim.secret_key):
        assert secret not in html
    # the ledger: debit, then delivery, each leg signed, each summing to zero
    ledger = re.search(r'id="ledger".*?</section>', html, re.S).group(0)
    assert ledger.index(f"purchase:{purchase.id}") < ledger.index(f"delivery:{purchase.id}")
    assert "Customer wallet" in ledger and "-₦980.00" in ledger and "+₦980.00" in ledger
    assert "purchases_in_flight" in ledger and "provider_float:vtpass" in ledger
    assert "revenue:commission" in ledger and "+₦1,000.00" in ledger and "-₦20.00" in ledger
    # history: created, /pay pending, requery delivered, final
    history = re.search(r'id="history".*?</section>', html, re.S).group(0)
    for step in (
        "Created: pending",
        "Sent to provider (/pay): pending",
        "Requery: delivered",
        "Final: successful",
    ):
        assert step in history, step
    # nothing to resolve by hand on a final purchase; check now is still there (reversals)
    assert 'id="resolve-form"' not in html and 'id="check-now"' in html
    await assert_reconciled(sessionmaker)


async def test_unknown_purchase_is_a_404_page(db, staff: httpx.AsyncClient, sessionmaker) -> None:
    missing = uuid.uuid4()
    page = await staff.get(url(missing))
    assert page.status_code == 404 and "Page not found" in page.text and 'class="topbar"' in page.text
    assert (await act(staff, missing, "requery")).status_code == 404
    response = await act(staff, missing, "resolve", decision="failed", note="n", confirm="yes")
    assert response.status_code == 404
    assert await purchase_count(sessionmaker) == 0


# -- actions --------------------------------------------------------------------------------------------
async def test_mark_failed_refunds_once_and_a_second_try_changes_nothing(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await flagged(vt, buyer)
    assert (await money(sessionmaker, buyer.id)).wallet == START - PRICE
    page = await staff.get(url(purchase.id))
    assert 'id="resolve-form"' in page.text and "Mark failed and refund ₦500.00" in page.text
    assert "Unresolved:" in page.text  # the reason is shown

    note = "VTpass support: never delivered <script>alert(1)</script>"
    html = await act_and_read(staff, purchase.id, "resolve", decision="failed", note=note, confirm="yes")
    assert any("Marked failed: ₦500.00 was refunded" in m for m in flashes(html)), flashes(html)
    assert re.search(r'id="purchase-status">failed<', html)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html  # escaped
    after = await load(sessionmaker, purchase.id)
    assert after.status == FAILED and not after.needs_attention  # the "unresolved" flag is settled
    staff_record = after.exchanges[-1]
    assert staff_record["kind"] == "staff" and staff_record["note"] == note
    assert (await money(sessionmaker, buyer.id)).wallet == START
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"refund:{purchase.id}",
    ]

    # Again (a double click, a stale tab): refused, nothing moves, nothing is even logged.
    for decision in ("failed", "delivered"):
        html = await act_and_read(
            staff, purchase.id, "resolve", decision=decision, note="again", confirm="yes"
        )
        assert any("Not changed: this purchase is already failed" in m for m in flashes(html))
    assert (await money(sessionmaker, buyer.id)).wallet == START
    assert len(await postings_for(sessionmaker, purchase.id)) == 2
    assert len((await load(sessionmaker, purchase.id)).exchanges) == len(after.exchanges)
    await assert_reconciled(sessionmaker)


async def test_mark_delivered_settles_to_the_provider(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await pending_forever(vt, buyer)
    html = await act_and_read(
        staff,
        purchase.id,
        "resolve",
        decision="delivered",
        note="Confirmed on VTpass dashboard",
        confirm="yes",
    )
    assert any("Marked delivered" in m for m in flashes(html))
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_) == (START - PRICE, 0, PRICE)
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"delivery:{purchase.id}",
    ]
    await assert_reconciled(sessionmaker)


async def test_two_staff_racing_opposite_decisions_apply_exactly_one(
    db, browsers, vt: Harness, sessionmaker
) -> None:
    first = await staff_browser(db, browsers)
    second = await staff_browser(db, browsers)
    buyer = await new_buyer(sessionmaker, fund=START)
    purchases = [await pending_forever(vt, buyer) for _ in range(3)]
    for purchase in purchases:
        tokens = await asyncio.gather(
            csrf_token(first, "/staff/purchases"), csrf_token(second, "/staff/purchases")
        )
        form = {"confirm": "yes"}
        delivered, failed = await asyncio.gather(
            first.post(
                f"{url(purchase.id)}/resolve",
                data={**form, "decision": "delivered", "note": "looks delivered", "_csrf_token": tokens[0]},
            ),
            second.post(
                f"{url(purchase.id)}/resolve",
                data={**form, "decision": "failed", "note": "looks failed", "_csrf_token": tokens[1]},
            ),
        )
        assert delivered.status_code == failed.status_code == 303
        messages = flashes((await first.get(url(purchase.id))).text) + flashes(
            (await second.get(url(purchase.id))).text
        )
        winners = [m for m in messages if m.startswith("Marked")]
        losers = [m for m in messages if m.startswith(("Not applied", "Not changed"))]
        assert len(winners) == 1 and len(losers) == 1, messages
        final = (await load(sessionmaker, purchase.id)).status
        assert final in (SUCCESSFUL, FAILED)
        assert final in losers[0]  # the loser is told the current status
        if losers[0].startswith("Not applied"):  # its decision is logged; the page marks it as lost
            page = (await first.get(url(purchase.id))).text
            assert page.count("(not applied: already settled)") == 1
        keys = await postings_for(sessionmaker, purchase.id)
        settle = "delivery" if final == SUCCESSFUL else "refund"
        assert keys == [f"purchase:{purchase.id}", f"{settle}:{purchase.id}"]
    statuses = [(await load(sessionmaker, p.id)).status for p in purchases]
    refunded = statuses.count(FAILED)
    m = await money(sessionmaker, buyer.id)
    assert m.wallet == START - PRICE * 3 + PRICE * refunded
    assert m.in_flight == 0 and m.float_ == PRICE * statuses.count(SUCCESSFUL)
    await assert_reconciled(sessionmaker)


async def test_actions_on_final_purchases_change_nothing(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker, sim
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    delivered = await vt.service.buy(buyer, airtime(DELIVERED))
    failed = await vt.service.buy(buyer, airtime(FAILING))
    reversed_ = await vt.service.buy(buyer, airtime(DELIVERED))
    sim.reverse(reversed_.request_id)
    assert (await vt.service.requery(reversed_.id, source="callback")).status == REVERSED
    before_money = await money(sessionmaker, buyer.id)
    before = {p.id: await load(sessionmaker, p.id) for p in (delivered, failed, reversed_)}
    keys = {p.id: await postings_for(sessionmaker, p.id) for p in (delivered, failed, reversed_)}

    for purchase in (delivered, failed, reversed_):
        page = await staff.get(url(purchase.id))
        assert 'id="resolve-form"' not in page.text and 'id="final-note"' in page.text
        for decision in ("delivered", "failed"):
            html = await act_and_read(
                staff, purchase.id, "resolve", decision=decision, note="n", confirm="yes"
            )
            assert any("Not changed: this purchase is already" in m for m in flashes(html))
    html = await act_and_read(staff, reversed_.id, "requery")
    assert any("reversed purchase is final" in m for m in flashes(html))
    # "check now" on a final purchase asks the provider, logs the answer, and changes nothing.
    html = await act_and_read(staff, failed.id, "requery")
    assert any("nothing changed, the purchase stays failed" in m for m in flashes(html)), flashes(html)
    html = await act_and_read(staff, delivered.id, "requery")
    assert any("stays successful" in m for m in flashes(html)), flashes(html)

    assert await money(sessionmaker, buyer.id) == before_money
    for purchase in (delivered, failed, reversed_):
        now = await load(sessionmaker, purchase.id)
        assert now.status == before[purchase.id].status
        assert await postings_for(sessionmaker, purchase.id) == keys[purchase.id]
    assert len((await load(sessionmaker, reversed_.id)).exchanges) == len(before[reversed_.id].exchanges)
    await assert_reconciled(sessionmaker)


async def test_missing_note_confirmation_or_decision_is_a_400_with_field_errors(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await pending_forever(vt, buyer)
    cases = [
        ({"decision": "failed", "note": "   ", "confirm": "yes"}, "e-note"),
        ({"decision": "failed", "note": "checked with VTpass"}, "e-confirm"),
        ({"decision": "refund-twice", "note": "checked", "confirm": "yes"}, "e-decision"),
        ({"decision": "failed", "note": "x" * 501, "confirm": "yes"}, "e-note"),
    ]
    for data, field in cases:
        response = await act(staff, purchase.id, "resolve", **data)
        assert response.status_code == 400, data
        assert f'id="{field}"' in response.text and 'id="resolve-form"' in response.text
        if data.get("note", "").strip() and len(data["note"]) <= 500:
            assert data["note"] in response.text  # what was typed is kept
    current = await load(sessionmaker, purchase.id)
    assert current.status == PENDING and len(current.exchanges) == 1
    assert (await money(sessionmaker, buyer.id)).wallet == START - PRICE
    assert await postings_for(sessionmaker, purchase.id) == [f"purchase:{purchase.id}"]
    await assert_reconciled(sessionmaker)


async def test_check_now_applies_the_providers_answer(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker, sim
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    # pending at /pay; the provider now says delivered -> successful
    waiting = await vt.service.buy(buyer, airtime(PENDING_THEN_DELIVERED))
    assert waiting.status == PENDING
    html = await act_and_read(staff, waiting.id, "requery")
    assert any("Provider confirms it was delivered" in m for m in flashes(html)), flashes(html)
    done = await load(sessionmaker, waiting.id)
    assert done.status == SUCCESSFUL
    assert done.exchanges[-1]["kind"] == "requery" and done.exchanges[-1]["source"].startswith("staff:")
    assert await postings_for(sessionmaker, waiting.id) == [
        f"purchase:{waiting.id}",
        f"delivery:{waiting.id}",
    ]

    # no answer yet -> still pending, nothing moves
    unclear = await pending_forever(vt, buyer)
    html = await act_and_read(staff, unclear.id, "requery")
    assert any(m.startswith("Still pending") for m in flashes(html)), flashes(html)
    assert (await load(sessionmaker, unclear.id)).status == PENDING

    # the provider now says failed -> failed and refunded once
    sim.configure("08099999999", pending_answers=1, outcome="failed", pending_code="099")
    doomed = await vt.service.buy(buyer, airtime("08099999999"))
    assert doomed.status == PENDING
    html = await act_and_read(staff, doomed.id, "requery")
    assert any("Provider says it failed" in m and "₦500.00 was refunded" in m for m in flashes(html))
    assert (await load(sessionmaker, doomed.id)).status == FAILED
    assert await postings_for(sessionmaker, doomed.id) == [f"purchase:{doomed.id}", f"refund:{doomed.id}"]

    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_) == (START - 2 * PRICE, PRICE, PRICE)
    await assert_reconciled(sessionmaker)


async def test_no_transaction_is_held_while_staff_check_with_the_provider(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker, sim, engine
) -> None:
    """Money invariant 8 for "check now": while the provider is being asked (a slow requery), no database
    connection is left idle inside a transaction, the staff page's own request session included."""
    slow = "08055555555"
    sim.configure(slow, pending_answers=1, outcome="delivered", latency=1.0, on=("requery",))
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime(slow))
    assert purchase.status == PENDING

    async def probe() -> list[Any]:
        for _ in range(300):  # until the requery is on the wire
            if any(r.path == "/api/requery" for r in sim.requests):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the provider was never asked")
        await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT state, left(query, 120) AS query FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND (state LIKE 'idle in transaction%' OR backend_xid IS NOT NULL)"
                )
            )
            return list(rows)

    response, held = await asyncio.gather(act(staff, purchase.id, "requery"), probe())
    assert response.status_code == 303
    assert held == [], held
    assert (await load(sessionmaker, purchase.id)).status == SUCCESSFUL
    await assert_reconciled(sessionmaker)


# -- overview -------------------------------------------------------------------------------------------
async def test_overview_shows_the_purchase_block(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    await vt.service.buy(buyer, airtime(DELIVERED))
    await flagged(vt, buyer)
    await pending_forever(vt, buyer)
    page = await staff.get("/staff/")
    assert page.status_code == 200
    html = page.text
    assert 'id="stat-users"' in html  # the user figures are still there
    block = re.search(r'id="purchases-overview".*?</section>', html, re.S).group(0)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", block))
    assert "Pending 2 " in text and "Needs attention 1 " in text
    assert "Bought today 3 ₦1,500.00" in text
    assert 'href="/staff/purchases?attention=1"' in block and 'href="/staff/purchases"' in block
    counts = await staff.get("/staff/purchases/counts")
    assert counts.status_code == 200 and 'id="purchase-counts"' in counts.text and "<html" not in counts.text
    await assert_reconciled(sessionmaker)


async def test_a_flag_on_a_final_purchase_is_cleared_with_a_note_and_moves_no_money(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker, sim
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    delivered = await vt.service.buy(buyer, airtime(DELIVERED))
    sim.transactions[delivered.request_id].final = "failed"  # the provider now contradicts its delivery
    after = await vt.service.requery(delivered.id, source="worker")
    assert after is not None and after.status == SUCCESSFUL and after.needs_attention
    still_pending = await flagged(vt, buyer)
    before_money = await money(sessionmaker, buyer.id)
    keys = await postings_for(sessionmaker, delivered.id)

    page = await staff.get(url(delivered.id))
    assert 'id="clear-flag-form"' in page.text
    assert 'id="clear-flag-form"' not in (await staff.get(url(still_pending.id))).text
    no_note = await act(staff, delivered.id, "clear-flag", flag_note=" ")
    assert no_note.status_code == 400 and 'id="e-flag_note"' in no_note.text
    assert (await load(sessionmaker, delivered.id)).needs_attention

    html = await act_and_read(staff, delivered.id, "clear-flag", flag_note="Confirmed delivered with VTpass")
    assert any("Flag cleared" in m for m in flashes(html)), flashes(html)
    row = await load(sessionmaker, delivered.id)
    assert not row.needs_attention and row.status == SUCCESSFUL
    assert row.exchanges[-1]["action"] == "clear_flag" and row.exchanges[-1]["note"].startswith("Confirmed")
    again = await act_and_read(staff, delivered.id, "clear-flag", flag_note="twice")
    assert any("it is not flagged" in m for m in flashes(again)), flashes(again)
    # A pending purchase keeps its flag until someone settles it.
    refused = await act_and_read(staff, still_pending.id, "clear-flag", flag_note="hide it")
    assert any("still pending" in m for m in flashes(refused)), flashes(refused)
    assert (await load(sessionmaker, still_pending.id)).needs_attention
    assert await money(sessionmaker, buyer.id) == before_money
    assert await postings_for(sessionmaker, delivered.id) == keys
    await assert_reconciled(sessionmaker)


async def test_clearing_a_flag_races_to_one_change(db, vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    delivered = await vt.service.buy(buyer, airtime(DELIVERED))
    sim.transactions[delivered.request_id].final = "failed"
    await vt.service.requery(delivered.id, source="worker")
    results = await asyncio.gather(
        *(vt.service.clear_flag(delivered.id, staff=f"s{n}@ops.ng", note="handled") for n in range(8))
    )
    assert sum(r is not None for r in results) == 1
    row = await load(sessionmaker, delivered.id)
    assert not row.needs_attention
    assert sum(1 for e in row.exchanges if e.get("action") == "clear_flag") == 1


async def test_marking_a_prepaid_meter_delivered_needs_and_keeps_its_token(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker, sim
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    request = PurchaseRequest(
        service_id="ikeja-electric", meter_number="1111111111111", meter_type="prepaid",
        amount_kobo=200_000, phone=UNCLEAR,
    )  # fmt: skip
    purchase = await vt.service.buy(buyer, request)
    assert purchase.status == PENDING and purchase.token is None
    page = await staff.get(url(purchase.id))
    assert 'id="f-token"' in page.text

    missing = await act(
        staff, purchase.id, "resolve", decision="delivered", note="VTpass shows it", confirm="yes"
    )
    assert missing.status_code == 400 and 'id="e-token"' in missing.text
    bad = await act(
        staff, purchase.id, "resolve", decision="delivered", note="n", confirm="yes", token="1234-abcd"
    )
    assert bad.status_code == 400 and "16 to 24 digits" in bad.text
    assert (await load(sessionmaker, purchase.id)).status == PENDING

    await act_and_read(
        staff, purchase.id, "resolve", decision="delivered", note="token from VTpass dashboard",
        confirm="yes", token="2164 0539 7497 2547 4804",
    )  # fmt: skip
    row = await load(sessionmaker, purchase.id)
    assert row.status == SUCCESSFUL and row.token == "2164-0539-7497-2547-4804"
    # Failing it needs no token.
    other = await vt.service.buy(buyer, request)
    await act_and_read(staff, other.id, "resolve", decision="failed", note="VTpass: failed", confirm="yes")
    assert (await load(sessionmaker, other.id)).status == FAILED
    await assert_reconciled(sessionmaker)


async def test_detail_lists_the_provider_attempts_of_a_held_purchase(
    db, staff: httpx.AsyncClient, vt: Harness, sessionmaker, sim
) -> None:
    """A second identical top-up inside VTpass's 30 s window (019) is held, not refunded: the console
    shows both attempts; a purchase sent once shows no attempts list."""
    sim.duplicate_window = 30.0
    buyer = await new_buyer(sessionmaker, fund=START)
    first = await vt.service.buy(buyer, airtime(DELIVERED))
    held = await vt.service.buy(buyer, airtime(DELIVERED))
    assert first.status == SUCCESSFUL
    assert (held.status, held.attempt_no) == (PENDING, 2) and held.send_at is not None
    html = (await staff.get(url(held.id))).text
    attempts = re.search(r'id="attempts".*?</section>', html, re.S).group(0)
    assert "Provider attempts (2)" in attempts
    assert re.search(r'id="attempt-1">.*?held \(likely duplicate\).*?019', attempts, re.S)
    assert re.search(r'id="attempt-2">.*?current: pending, to be sent', attempts, re.S)
    assert held.request_id in attempts
    assert 'id="attempts"' not in (await staff.get(url(first.id))).text
    # Staff paste the first attempt's request id (e.g. from VTpass's dashboard): the purchase is found.
    first_attempt = re.search(r'id="attempt-1">.*?<span class="code">(\w+)</span>', attempts, re.S).group(1)
    assert first_attempt != held.request_id
    found = await staff.get("/staff/purchases", params={"q": first_attempt})
    assert listed(found.text) == {str(held.id)}
    assert (await money(sessionmaker, buyer.id)).wallet == START - 2 * PRICE
    await assert_reconciled(sessionmaker)
