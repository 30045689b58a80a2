"""The staff funding console (/staff/funding): guard, counts and the needs-action section, every filter and
search, keyset paging, the event page, the customer view and "Retry now", over HTTP against the real app.

Events are made the way production makes them: signed webhooks posted to the app's real endpoint, then
processed by the worker's own task (`process_monnify_event`) against the Monnify simulator, which verifies
each transfer (MONNIFY_VERIFY_BEFORE_CREDIT on) and can be down (failed), say "not paid" (rejected) or not
know the customer (unmatched). Money is asserted in the ledger; reconcile runs after every test."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from html import unescape
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, text

from app.dashboard import funding as staff_funding
from app.ledger.models import LedgerTransaction
from app.ledger.queries import wallet_balance
from app.payments import models as m
from app.payments.monnify_client import MonnifyClient
from app.payments.reservations import reserve_for_user
from app.payments.tasks import process_monnify_event
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator
from tests.fakes.server import serve
from tests.helpers import browser_pool, csrf_token, log_in, running, staff_browser
from tests.integration.purchase_fixtures import assert_reconciled

WEBHOOK = "/payments/webhooks/monnify/"
FEE = 5_000  # the platform's flat funding fee in these tests: N50
STATUS_PATH = "/api/v2/transactions"  # Monnify's transaction status (the verification call)


# -- the app under test: verification on, Monnify = the simulator, a N50 funding fee ---------------------
@pytest.fixture(scope="module")
def sim(settings: Any) -> MonnifySimulator:
    return MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )


@pytest.fixture(scope="module")
def monnify(sim: MonnifySimulator) -> Iterator[Any]:
    with serve(sim.app) as server:
        yield server


@pytest.fixture(scope="module")
def live(settings: Any, monnify: Any) -> Any:
    return dataclasses.replace(
        settings, monnify_verify_before_credit=True, monnify_base_url=monnify.url, funding_fee_flat_kobo=FEE
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def funding_app(live: Any) -> AsyncIterator[Any]:
    from app.asgi import create_app

    async with running(create_app(live)) as application:
        yield application


@pytest.fixture(autouse=True)
def healthy(sim: MonnifySimulator) -> Iterator[None]:
    """Every test starts (and ends) with Monnify answering normally."""
    sim._failures.clear()
    sim.delay(0, STATUS_PATH)
    yield
    sim._failures.clear()
    sim.delay(0, STATUS_PATH)


@pytest_asyncio.fixture(loop_scope="session")
async def worker(live: Any, sessionmaker: Any) -> AsyncIterator[dict[str, Any]]:
    """The worker's job context (as workers/context.py builds it), with a fast-retrying Monnify client."""
    async with MonnifyClient(live, backoff_base=0.01, backoff_max=0.02) as client:
        yield {"settings": live, "sessionmaker": sessionmaker, "monnify": client}


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(funding_app: Any, db: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """New browsers (own cookie jars) on the app under test, on a clean database."""
    async with browser_pool(funding_app) as new:
        yield new


@pytest_asyncio.fixture(loop_scope="session")
async def staff(db: Any, browsers: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    return await staff_browser(db, browsers)


# -- making events the production way -------------------------------------------------------------------
class Transfers:
    """Customers' bank transfers: a signed webhook to the app, then the worker's job for the stored event."""

    def __init__(self, client: httpx.AsyncClient, sim: MonnifySimulator, worker: dict[str, Any], db: Any):
        self.client, self.sim, self.worker, self.db = client, sim, worker, db

    async def receive(self, account_reference: str, kobo: int, **payload_changes: Any) -> int:
        """Post the signed webhook; returns the stored event's id (status `received`: verification is on)."""
        body, signature = self.sim.build_webhook(account_reference, kobo)
        if payload_changes:
            import json

            from tests.fakes.monnify import sign

            payload = json.loads(body)
            payload.update(payload_changes)
            body = json.dumps(payload, separators=(",", ":")).encode()
            signature = sign(body, self.sim.secret_key)
        response = await self.client.post(
            WEBHOOK,
            content=body,
            headers={"content-type": "application/json", "monnify-signature": signature},
        )
        assert response.status_code == 200, response.text
        tx = self.sim.last_transaction
        assert tx is not None
        async with self.worker["sessionmaker"]() as session:
            event_id = (
                await session.execute(select(m.MonnifyEvent.id).order_by(m.MonnifyEvent.id.desc()).limit(1))
            ).scalar_one()
        return int(event_id)

    async def process(self, event_id: int) -> str:
        return await process_monnify_event(self.worker, event_id=event_id)

    async def credited(self, account_reference: str, kobo: int) -> int:
        event_id = await self.receive(account_reference, kobo)
        assert await self.process(event_id) == m.EVENT_CREDITED
        return event_id

    async def failed(self, account_reference: str, kobo: int) -> int:
        """Monnify is down when the worker verifies the transfer: failed, retried later with back-off."""
        event_id = await self.receive(account_reference, kobo)
        self.sim.fail_next(10, status=503, path_prefix=STATUS_PATH)
        try:
            assert await self.process(event_id) == m.EVENT_FAILED
        finally:
            self.sim._failures.clear()
        return event_id

    async def rejected(self, account_reference: str, kobo: int) -> int:
        """Monnify's own record says the transfer was not paid."""
        event_id = await self.receive(account_reference, kobo)
        assert self.sim.last_transaction is not None
        self.sim.set_transaction(self.sim.last_transaction.transaction_reference, payment_status="FAILED")
        assert await self.process(event_id) == m.EVENT_REJECTED
        return event_id

    async def unmatched(self, account_reference: str, kobo: int) -> int:
        """A paid transfer naming an account reference no customer owns."""
        event_id = await self.receive(account_reference, kobo)
        assert await self.process(event_id) == m.EVENT_UNMATCHED
        return event_id

    async def ignored(self, account_reference: str, kobo: int) -> int:
        """Another event type (a disbursement): stored and acknowledged, nothing to credit."""
        event_id = await self.receive(account_reference, kobo, eventType="SUCCESSFUL_DISBURSEMENT")
        assert (await self.event(event_id)).status == m.EVENT_IGNORED
        return event_id

    def reference(self) -> str:
        """Monnify's transaction reference of the last transfer made."""
        assert self.sim.last_transaction is not None
        return self.sim.last_transaction.transaction_reference

    async def event(self, event_id: int) -> m.MonnifyEvent:
        async with self.worker["sessionmaker"]() as session:
            event = await session.get(m.MonnifyEvent, event_id)
            assert event is not None
            return event


@pytest_asyncio.fixture(loop_scope="session")
async def transfers(
    browsers: Callable[[], httpx.AsyncClient], sim: MonnifySimulator, worker: dict[str, Any], db: Any
) -> Transfers:
    return Transfers(browsers(), sim, worker, db)


async def customer(db: Any, **overrides: Any) -> Any:
    user = await create_user(db, **overrides)
    await db.commit()
    return user


async def reserve(sessionmaker: Any, live: Any, user: Any) -> m.ReservedAccount:
    async with MonnifyClient(live, backoff_base=0.01, backoff_max=0.02) as client:
        reservation = await reserve_for_user(sessionmaker, client, user.id)
    assert reservation is not None and reservation.status == m.RESERVATION_ACTIVE and reservation.banks
    return reservation


async def balance(sessionmaker: Any, user_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


async def backdate(sessionmaker: Any, table: str, where: str, minutes: int, **params: Any) -> None:
    """Age a row: time is the one thing the tests cannot wait for (5 min stuck, 10 min pending)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(f"UPDATE {table} SET created_at = now() - make_interval(mins => :minutes) WHERE {where}"),
            {"minutes": minutes, **params},
        )


async def ledger_count(sessionmaker: Any) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(LedgerTransaction))).scalar_one())


def listed(html: str) -> list[str]:
    """Ids of the events shown in a list page or fragment, in order."""
    return re.findall(r'id="event-(\d+)"', html)


def section(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}".*?</section>', html, re.S)
    assert found, element_id
    return found.group(0)


def plain(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def flashes(html: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", unescape(found)).strip()
        for found in re.findall(r'<p class="alert alert-\w+" role="status">(.*?)</p>', html, re.S)
    ]


async def retry(client: httpx.AsyncClient, event_id: int) -> httpx.Response:
    """POST "Retry now" like a browser (CSRF token from the page), without following the redirect."""
    token = await csrf_token(client, "/staff/funding")
    return await client.post(
        f"/staff/funding/{event_id}/retry", data={"_csrf_token": token}, follow_redirects=False
    )


async def retry_and_read(client: httpx.AsyncClient, event_id: int) -> str:
    response = await retry(client, event_id)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/staff/funding/{event_id}"
    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    return page.text


# -- guard ----------------------------------------------------------------------------------------------
async def test_anonymous_visitors_log_in_and_customers_are_refused(
    db, browsers, transfers: Transfers, sessionmaker
) -> None:
    owner = await customer(db)
    event_id = await transfers.failed(owner.account_reference, 100_000)
    paths = (
        "/staff/funding",
        "/staff/funding/counts",
        f"/staff/funding/{event_id}",
        f"/staff/funding/customer?q={owner.email}",
    )
    anon = browsers()
    for path in paths:
        response = await anon.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2Fstaff%2Ffunding"), path
    someone = await customer(db)
    browser = browsers()
    await log_in(browser, someone.email, PASSWORD)
    for path in paths:
        page = await browser.get(path)
        assert page.status_code == 403 and "staff only" in page.text, path
    # A customer cannot retry either, even with a valid CSRF token; nor can anyone without one.
    token = await csrf_token(browser, "/dashboard")
    refused = await browser.post(
        f"/staff/funding/{event_id}/retry", data={"_csrf_token": token}, follow_redirects=False
    )
    assert refused.status_code == 403
    staff_user = await customer(db, is_staff=True)
    staff_client = browsers()
    await log_in(staff_client, staff_user.email, PASSWORD)
    no_csrf = await staff_client.post(f"/staff/funding/{event_id}/retry", data={}, follow_redirects=False)
    assert no_csrf.status_code == 403
    event = await transfers.event(event_id)
    assert event.status == m.EVENT_FAILED and event.attempts == 1
    assert await balance(sessionmaker, owner.id) == 0
    # Staff reach the console from the overview's button row.
    overview = await staff_client.get("/staff/")
    assert 'href="/staff/funding"' in overview.text


# -- counts, needs action, filters and search -----------------------------------------------------------
async def test_counts_needs_action_filters_and_search(
    db, staff: httpx.AsyncClient, transfers: Transfers, sessionmaker, live, sim
) -> None:
    alice = await customer(db)
    bob = await customer(db, phone="08031234567")
    carol = await customer(db)
    dave = await customer(db)
    alice_accounts = await reserve(sessionmaker, live, alice)
    five_k = await transfers.credited(alice.account_reference, 500_000)
    five_k_ref = transfers.reference()
    odd = await transfers.credited(alice.account_reference, 123_450)
    failed = await transfers.failed(bob.account_reference, 200_000)
    rejected = await transfers.rejected(carol.account_reference, 300_000)
    unmatched = await transfers.unmatched("VTUNOSUCHREF1", 750_000)
    ignored = await transfers.ignored(alice.account_reference, 900_000)
    stuck = await transfers.receive(dave.account_reference, 400_000)  # nobody processed it...
    await backdate(sessionmaker, "monnify_events", "id = :id", 10, id=stuck)  # ...for 10 minutes
    # Customers without bank accounts: Monnify refused one; another has been pending for 11 minutes.
    erin, frank = await customer(db), await customer(db)
    sim.fail_next(10, status=500, path_prefix="/api/v2/bank-transfer")
    async with MonnifyClient(live, backoff_base=0.01, backoff_max=0.02, max_attempts=2) as client:
        with pytest.raises(Exception):
            await reserve_for_user(sessionmaker, client, erin.id)
    sim._failures.clear()
    await backdate(sessionmaker, "reserved_accounts", "user_id = :uid", 11, uid=frank.id)
    everything = [stuck, ignored, unmatched, rejected, failed, odd, five_k]

    page = await staff.get("/staff/funding")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text

    def count(name: str) -> str:
        block = re.search(rf'id="count-{name}".*?</a>', html, re.S)
        assert block, name
        return plain(block.group(0))

    # credited today: N5,000 and N1,234.50 paid, each less the N50 fee
    assert " 2 " in count("credited") and "₦6,134.50 to wallets" in count("credited")
    assert " 1 " in count("unmatched") and "₦7,500.00" in count("unmatched")
    assert " 1 " in count("failed")
    assert " 1 " in count("rejected")
    assert " 2 " in count("reservations") and "1 failed · 1 pending > 10 min" in count("reservations")
    alert = plain(re.search(r'id="stuck-alert".*?</p>', html, re.S).group(0))
    assert "1 transfer was received more than 5 min ago and never processed" in alert
    assert "₦6,234.50 paid by customers" in html

    # What matters at 2 a.m.: unmatched, failed, rejected and the stuck one, newest first.
    needs = section(html, "needs-action")
    assert listed(needs) == [str(stuck), str(unmatched), str(rejected), str(failed)]
    needs_text = plain(needs)
    assert "no customer owns this account reference" in needs_text  # last_error
    assert "Monnify reports FAILED; not credited" in needs_text
    assert "verification failed" in needs_text
    assert "VTUNOSUCHREF1" in needs_text and "₦7,500.00" in needs_text and "₦2,000.00" in needs_text
    assert re.search(r"(just now|\d+ s ago)", needs_text) and "10 min ago" in needs_text
    assert "then finance credits it on Unmatched transfers" in needs_text
    # ... and the customers who have nowhere to pay into, with Monnify's error.
    stranded = section(html, "reservations")
    assert f'id="reservation-{erin.id}"' in stranded and f'id="reservation-{frank.id}"' in stranded
    assert f'id="reservation-{alice.id}"' not in stranded and f'id="reservation-{dave.id}"' not in stranded
    assert "Monnify unavailable" in plain(stranded) and "11 min ago" in plain(stranded)
    # Below: every event, newest first.
    assert listed(section(html, "all-events")) == [str(i) for i in everything]

    async def found(**params: str) -> list[str]:
        response = await staff.get("/staff/funding", params=params)
        assert response.status_code == 200
        filtered = 'id="needs-action"' not in response.text  # a filtered view is just the list
        assert filtered == (not ignored_values), params
        return listed(section(response.text, "all-events"))

    ignored_values = False

    ids = lambda *events: [str(e) for e in events]  # noqa: E731
    assert await found(status="credited") == ids(odd, five_k)
    assert await found(status="failed") == ids(failed)
    assert await found(status="rejected") == ids(rejected)
    assert await found(status="unmatched") == ids(unmatched)
    assert await found(status="ignored") == ids(ignored)
    assert await found(status="received") == ids(stuck)
    assert await found(type="SUCCESSFUL_DISBURSEMENT") == ids(ignored)
    assert await found(type="SUCCESSFUL_TRANSACTION", status="credited") == ids(odd, five_k)
    assert await found(q=five_k_ref) == ids(five_k)  # Monnify's transaction reference
    assert await found(q=alice.account_reference) == ids(ignored, odd, five_k)  # account reference
    assert await found(q=alice.account_reference.lower()) == ids(ignored, odd, five_k)
    assert await found(q="VTUNOSUCHREF1") == ids(unmatched)
    assert await found(q=alice.email.upper()) == ids(ignored, odd, five_k)  # e-mail, any case
    assert await found(q=bob.email.split("@")[0] + "@") == ids(failed)  # part of it; not credited yet
    assert await found(q="+2348031234567") == ids(failed)  # bob's phone, any spelling
    assert await found(q=alice_accounts.banks[0].account_number) == ids(ignored, odd, five_k)  # paid into
    assert await found(q="5000") == ids(five_k)  # exact amount in naira
    assert await found(q="₦1,234.50") == ids(odd)
    assert await found(q="1234.5") == ids(odd)
    assert await found(q=str(alice.id)) == ids(ignored, odd, five_k)
    assert await found(q=str(bob.id)) == ids(failed)  # user id of an event not credited yet
    assert await found(q="nobody@example.ng") == []
    assert await found(q="100%_@") == []  # LIKE wildcards are literal
    assert await found(q="4999.99") == []
    # Unknown filter values are ignored rather than failing the page.
    ignored_values = True
    assert await found(status="bogus") == ids(*everything)
    assert await found(type="not a type!") == ids(*everything)
    # Search results link to the customer's funding view.
    results = (await staff.get("/staff/funding", params={"q": "+2348031234567"})).text
    assert f'href="/staff/funding/customer?q={bob.email.replace("@", "%40")}"' in results

    # The filter form swaps only the results (htmx).
    fragment = await staff.get(
        "/staff/funding",
        params={"status": "failed"},
        headers={"HX-Request": "true", "HX-Target": "funding-results"},
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert listed(fragment.text) == ids(failed)
    # The counts block alone, for the 30 s poll.
    counts = await staff.get("/staff/funding/counts")
    assert counts.status_code == 200 and "<html" not in counts.text and 'id="count-unmatched"' in counts.text
    await assert_reconciled(sessionmaker)


async def test_nothing_to_do_is_said_plainly(db, staff: httpx.AsyncClient, transfers: Transfers) -> None:
    empty = (await staff.get("/staff/funding")).text
    assert re.search(r'id="last-event">never<', empty) and 'id="no-events"' in empty
    someone = await customer(db)
    await transfers.credited(someone.account_reference, 100_000)
    html = (await staff.get("/staff/funding")).text
    assert re.search(r'id="last-event">(just now|\d+ s ago)<', html)  # webhooks are arriving
    assert 'id="nothing-open"' in html and 'id="stuck-alert"' not in html
    assert 'id="reservations"' not in html


async def test_list_pages_by_keyset_without_gaps_or_repeats(
    db, staff: httpx.AsyncClient, transfers: Transfers, monkeypatch
) -> None:
    monkeypatch.setattr(staff_funding, "PAGE_SIZE", 2)
    someone = await customer(db)
    made = [await transfers.credited(someone.account_reference, 10_000 + i * 100) for i in range(5)]
    await transfers.unmatched("VTUNOBODY0001", 10_000)  # filtered out below
    newest_first = [str(i) for i in reversed(made)]

    seen: list[str] = []
    next_url: str | None = "/staff/funding?status=credited"
    pages = 0
    while next_url:
        page = await staff.get(next_url)
        assert page.status_code == 200
        results = section(page.text, "all-events")
        seen += listed(results)
        more = re.search(r'id="more-events">\s*<a[^>]* href="([^"]+)"', results)
        next_url = more.group(1).replace("&amp;", "&") if more else None
        if next_url:
            assert "status=credited" in next_url  # the filter survives paging
        pages += 1
    assert pages == 3 and seen == newest_first

    # htmx "older events": only the next rows (and the next link), appended in place.
    fragment = await staff.get(
        "/staff/funding",
        params={"before": newest_first[0], "status": "credited"},
        headers={"HX-Request": "true", "HX-Target": "more-events"},
    )
    assert "<html" not in fragment.text and "funding-results" not in fragment.text
    assert listed(fragment.text) == newest_first[1:3]
    assert 'id="more-events"' in fragment.text
    # A cursor that does not parse is ignored (first page).
    garbage = await staff.get("/staff/funding", params={"before": "garbage", "status": "credited"})
    assert garbage.status_code == 200 and listed(section(garbage.text, "all-events")) == newest_first[:2]


# -- one event ------------------------------------------------------------------------------------------
async def test_event_page_shows_customer_amounts_ledger_and_payload(
    db, staff: httpx.AsyncClient, transfers: Transfers, sessionmaker
) -> None:
    owner = await customer(db, phone="08029876543")
    event_id = await transfers.credited(owner.account_reference, 500_000)
    reference = transfers.reference()
    page = await staff.get(f"/staff/funding/{event_id}")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert re.search(r'id="event-status">credited<', html)
    assert f'href="/staff/audit?target_type=funding_event&amp;target_id={event_id}"' in html
    money = plain(section(html, "amount-paid").split("</section>")[0])
    assert "Paid ₦5,000.00" in money and "Our fee ₦50.00" in money and "Credited ₦4,950.00" in money
    assert "Monnify's charge ₦50.00" in money  # the simulator's 1%: the platform's cost
    facts = plain(section(html, "event-facts"))
    assert reference in facts and owner.account_reference in facts and "Attempts 1" in facts
    assert "ADAEZE OKAFOR" in facts  # the sender, from the body
    who = plain(section(html, "customer"))
    assert owner.email in who and "08029876543" in who and "Wallet now ₦4,950.00" in who
    assert f'href="/staff/funding/customer?q={owner.email.replace("@", "%40")}"' in html
    ledger = section(html, "ledger")
    assert f"monnify:{reference}" in ledger and "Ledger (1)" in ledger
    legs = plain(ledger)
    assert "Customer wallet +₦4,950.00" in legs and "revenue:funding_fees +₦50.00" in legs
    assert "monnify_clearing -₦4,950.00" in legs and "expense:monnify_fees -₦50.00" in legs
    # The raw body, pretty-printed and escaped.
    payload = re.search(r'<pre class="json"[^>]*id="payload-json">(.*?)</pre>', html, re.S).group(1)
    assert "&#34;eventType&#34;: &#34;SUCCESSFUL_TRANSACTION&#34;" in payload or (
        "&quot;eventType&quot;: &quot;SUCCESSFUL_TRANSACTION&quot;" in payload
    )
    assert reference in payload and "\n  " in payload
    assert 'id="retry-form"' not in html and "Credited: nothing to do." in html
    await assert_reconciled(sessionmaker)


async def test_unmatched_failed_and_rejected_event_pages(
    db, staff: httpx.AsyncClient, transfers: Transfers
) -> None:
    owner = await customer(db)
    unmatched = await transfers.unmatched("VTUNOSUCHREF2", 250_000)
    html = (await staff.get(f"/staff/funding/{unmatched}")).text
    note = plain(re.search(r'id="unmatched-note".*?</p>', html, re.S).group(0))
    assert "then finance credits it on Unmatched transfers" in note
    assert "no customer owns this account reference" in note
    assert 'id="retry-form"' not in html and 'id="no-customer"' in html and 'id="no-ledger"' in html

    failed = await transfers.failed(owner.account_reference, 150_000)
    html = (await staff.get(f"/staff/funding/{failed}")).text
    assert 'id="retry-form"' in html and 'id="failed-note"' in html
    assert "verification failed" in plain(section(html, "event-facts"))
    # Not credited yet, but the account reference names the customer: shown, with the wallet.
    assert 'id="by-reference"' in html and owner.email in section(html, "customer")
    assert "Credited —" in plain(html)

    rejected = await transfers.rejected(owner.account_reference, 80_000)
    html = (await staff.get(f"/staff/funding/{rejected}")).text
    assert 'id="rejected-note"' in html and "Monnify reports FAILED" in html
    assert 'id="retry-form"' not in html


async def test_unknown_events_are_404_pages(db, staff: httpx.AsyncClient) -> None:
    for path in ("/staff/funding/999999", "/staff/funding/99999999999999999999999"):
        page = await staff.get(path)
        assert page.status_code == 404 and "Page not found" in page.text and 'class="topbar"' in page.text, (
            path
        )
    assert (await retry(staff, 999999)).status_code == 404
    assert (await staff.get("/staff/funding/not-a-number")).status_code == 404


# -- the customer's funding view ------------------------------------------------------------------------
async def test_customer_view_shows_accounts_wallet_and_events(
    db, staff: httpx.AsyncClient, transfers: Transfers, sessionmaker, live, sim
) -> None:
    owner = await customer(db, phone="08051112222")
    accounts = await reserve(sessionmaker, live, owner)
    credited = await transfers.credited(owner.account_reference, 300_000)
    failed = await transfers.failed(owner.account_reference, 200_000)
    other = await customer(db)
    await transfers.credited(other.account_reference, 100_000)  # not theirs
    for q in (
        owner.email,
        owner.email.upper(),
        "+2348051112222",
        owner.account_reference,
        accounts.banks[-1].account_number,
        str(owner.id),
    ):
        page = await staff.get("/staff/funding/customer", params={"q": q})
        assert page.status_code == 200, q
        assert re.search(rf"<h1[^>]*>{re.escape(owner.email)}</h1>", page.text), q
    html = page.text
    banks = plain(section(html, "reserved-accounts"))
    for bank in accounts.banks:
        assert bank.bank_name in banks and bank.account_number in banks
    assert re.search(r'id="reservation-status">active<', html)
    assert "Wallet now ₦2,950.00" in plain(section(html, "customer"))
    assert listed(section(html, "customer-events")) == [str(failed), str(credited)]
    # From the event page to the customer view.
    event_page = (await staff.get(f"/staff/funding/{credited}")).text
    link = re.search(r'href="(/staff/funding/customer\?q=[^"]+)" id="customer-funding-view"', event_page)
    assert link and (await staff.get(link.group(1).replace("&amp;", "&"))).status_code == 200
    # ... and the e-mail opens the customer's profile in the Users console.
    assert re.search(rf'href="/staff/users/{owner.id}" id="customer-email"', event_page)

    # A customer whose reservation failed: no numbers, Monnify's error shown.
    stranded = await customer(db)
    sim.fail_next(10, status=500, path_prefix="/api/v2/bank-transfer")
    async with MonnifyClient(live, backoff_base=0.01, backoff_max=0.02, max_attempts=2) as client:
        with pytest.raises(Exception):
            await reserve_for_user(sessionmaker, client, stranded.id)
    sim._failures.clear()
    html = (await staff.get("/staff/funding/customer", params={"q": stranded.email})).text
    assert re.search(r'id="reservation-status">failed<', html)
    assert 'id="reservation-error"' in html and "Monnify unavailable" in plain(
        section(html, "reserved-accounts")
    )
    assert 'id="no-banks"' in html and 'id="no-events"' in html

    missing = await staff.get("/staff/funding/customer", params={"q": "nobody@example.ng"})
    assert missing.status_code == 404 and 'id="not-found"' in missing.text
    empty = await staff.get("/staff/funding/customer")
    assert empty.status_code == 200 and 'id="customer-lookup"' in empty.text


# -- retry ----------------------------------------------------------------------------------------------
async def test_retry_credits_a_failed_event_once(
    db, staff: httpx.AsyncClient, transfers: Transfers, sessionmaker, sim
) -> None:
    owner = await customer(db)
    event_id = await transfers.failed(owner.account_reference, 500_000)
    before = await transfers.event(event_id)
    assert before.status == m.EVENT_FAILED and before.next_attempt_at is not None
    assert await balance(sessionmaker, owner.id) == 0
    checks = sim.calls(STATUS_PATH)

    # Monnify is back: "Retry now" verifies and credits at once (no waiting for the back-off).
    html = await retry_and_read(staff, event_id)
    assert any(f"Retried: credited ₦4,950.00 to {owner.email}'s wallet" in f for f in flashes(html)), flashes(
        html
    )
    after = await transfers.event(event_id)
    assert after.status == m.EVENT_CREDITED and after.credited_kobo == 495_000 and after.user_id == owner.id
    assert after.attempts == 2 and after.last_error is None
    assert await balance(sessionmaker, owner.id) == 495_000
    assert sim.calls(STATUS_PATH) == checks + 1  # it did ask Monnify
    assert re.search(r'id="event-status">credited<', html) and 'id="retry-form"' not in html

    # A second click (or the worker's sweep racing it) credits nothing more.
    postings = await ledger_count(sessionmaker)
    again = await retry_and_read(staff, event_id)
    assert any("Not retried: this event is credited" in f for f in flashes(again)), flashes(again)
    assert await balance(sessionmaker, owner.id) == 495_000
    assert await ledger_count(sessionmaker) == postings
    assert (await transfers.event(event_id)).attempts == 2
    await assert_reconciled(sessionmaker)


async def test_two_staff_retrying_at_once_credit_once(
    db, browsers, transfers: Transfers, sessionmaker
) -> None:
    owner = await customer(db)
    event_id = await transfers.failed(owner.account_reference, 200_000)
    clients = []
    for _ in range(2):
        user = await customer(db, is_staff=True)
        client = browsers()
        await log_in(client, user.email, PASSWORD)
        clients.append(client)
    responses = await asyncio.gather(*(retry(c, event_id) for c in clients))
    assert [r.status_code for r in responses] == [303, 303]
    assert (await transfers.event(event_id)).status == m.EVENT_CREDITED
    assert await balance(sessionmaker, owner.id) == 195_000
    await assert_reconciled(sessionmaker)


async def test_retry_while_monnify_is_still_down_keeps_it_failed(
    db, staff: httpx.AsyncClient, transfers: Transfers, sessionmaker, sim
) -> None:
    owner = await customer(db)
    event_id = await transfers.failed(owner.account_reference, 120_000)
    sim.fail_next(100, status=503, path_prefix=STATUS_PATH)
    html = await retry_and_read(staff, event_id)
    assert any("Retried, still failing: verification failed" in f for f in flashes(html)), flashes(html)
    event = await transfers.event(event_id)
    assert event.status == m.EVENT_FAILED and event.attempts == 2 and event.next_attempt_at is not None
    assert await balance(sessionmaker, owner.id) == 0
    assert 'id="retry-form"' in html


async def test_retry_on_events_that_are_not_failed_changes_nothing(
    db, staff: httpx.AsyncClient, transfers: Transfers, sessionmaker, sim
) -> None:
    owner = await customer(db)
    credited = await transfers.credited(owner.account_reference, 100_000)
    rejected = await transfers.rejected(owner.account_reference, 200_000)
    unmatched = await transfers.unmatched("VTUNOSUCHREF3", 300_000)
    waiting = await transfers.receive(owner.account_reference, 400_000)  # received: the worker's job
    ignored = await transfers.ignored(owner.account_reference, 500_000)
    snapshot = {i: await transfers.event(i) for i in (credited, rejected, unmatched, waiting, ignored)}
    wallet, postings, checks = (
        await balance(sessionmaker, owner.id),
        await ledger_count(sessionmaker),
        sim.calls(STATUS_PATH),
    )
    for event_id, before in snapshot.items():
        html = await retry_and_read(staff, event_id)
        assert any(f"Not retried: this event is {before.status}" in f for f in flashes(html)), flashes(html)
        after = await transfers.event(event_id)
        assert (after.status, after.attempts, after.last_error, after.processed_at) == (
            before.status,
            before.attempts,
            before.last_error,
            before.processed_at,
        )
    assert await balance(sessionmaker, owner.id) == wallet == 95_000
    assert await ledger_count(sessionmaker) == postings
    assert sim.calls(STATUS_PATH) == checks  # Monnify was not even asked
    await assert_reconciled(sessionmaker)


async def test_no_transaction_is_held_while_retrying_asks_monnify(
    db, staff: httpx.AsyncClient, transfers: Transfers, sessionmaker, sim, engine
) -> None:
    """Money invariant 8 for "Retry now": while Monnify is being asked (slowly), no database connection
    is left idle inside a transaction, the staff page's own request session included."""
    owner = await customer(db)
    event_id = await transfers.failed(owner.account_reference, 100_000)
    checks = sim.calls(STATUS_PATH)
    sim.delay(1.0, STATUS_PATH)

    async def probe() -> list[Any]:
        for _ in range(500):  # until the verification call is on the wire
            if sim.calls(STATUS_PATH) > checks:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("Monnify was never asked")
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

    response, held = await asyncio.gather(retry(staff, event_id), probe())
    assert response.status_code == 303
    assert held == [], held
    assert (await transfers.event(event_id)).status == m.EVENT_CREDITED
    await assert_reconciled(sessionmaker)
