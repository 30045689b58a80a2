"""The customer's statement (/statement, /statement.csv) over HTTP against the real app: every kind of wallet
line (a bank transfer with its sender, a delivered and a failed purchase with its refund, a referral bonus,
a staff adjustment) with running balances ending at the wallet balance; the customer's own wallet only;
filters; keyset paging without duplicates or gaps; the CSV and its formula escaping; the purchase history
and receipts reading "charged, refunded". Money is made the production way (signed Monnify webhooks, the
app's purchase service, the adjustment service); every test ends with a clean reconcile (clean_db)."""

from __future__ import annotations

import csv
import datetime
import io
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Callable
from html import unescape
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.accounts.models import User
from app.audit.service import Actor
from app.ledger import pages as statement_pages
from app.ledger.adjustments import request_adjustment
from app.ledger.queries import wallet_balance
from app.ledger.statement import LAGOS, csv_cell
from app.vtu.orders import PurchaseRequest
from app.vtu.runtime import get_vtu
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator
from tests.helpers import browser_pool, log_in

WEBHOOK = "/payments/webhooks/monnify/"
DELIVERED = "08011111111"  # the stub provider delivers to this number
FAILING = "08031234567"  # ... and fails (refunded) for other numbers


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(app: Any, db: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    async with browser_pool(app) as new:
        yield new


@pytest.fixture
def monnify(settings: Any) -> MonnifySimulator:
    return MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )


async def webhook(client: httpx.AsyncClient, monnify: MonnifySimulator, user: Any, kobo: int) -> None:
    body, signature = monnify.build_webhook(user.account_reference, kobo, sender_name="ADA OBI")
    response = await client.post(
        WEBHOOK, content=body, headers={"content-type": "application/json", "monnify-signature": signature}
    )
    assert response.status_code == 200, response.text


async def fresh(sessionmaker: Any, user_id: uuid.UUID) -> User:
    async with sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user


async def buy(app: Any, user: User, phone: str, amount: int) -> Any:
    runtime = await get_vtu(app)
    return await runtime.purchases.buy(
        user,
        PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=amount),
        idempotency_key=str(uuid.uuid4()),
    )


async def adjust(sessionmaker: Any, staff: User, user_id: uuid.UUID, kobo: int, reason: str) -> None:
    """A finance user's credit within the no-approval limit: posted at once by adjustment_post."""
    async with sessionmaker() as session, session.begin():
        outcome = await request_adjustment(
            session,
            Actor.staff(staff),
            user_id=user_id,
            direction="credit",
            amount_kobo=kobo,
            reason=reason,
            approval_limit_kobo=1_000_000,
        )
    assert outcome.posted, outcome.message


def section(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}".*?</section>', html, re.S)
    assert found, element_id
    return found.group(0)


def plain(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


LINE = re.compile(
    r'id="entry-(\d+)" data-kind="([a-z_]+)".*?class="entry-kind">([^<]+)<.*?data-kobo="(-?\d+)".*?'
    r'class="entry-desc">(.*?)</span>\s*<span class="entry-balance">Balance <strong data-kobo="(\d+)"',
    re.S,
)


def lines(html: str) -> list[dict[str, Any]]:
    return [
        {"id": int(i), "kind": k, "label": label, "amount": int(a), "desc": plain(d).strip(), "after": int(b)}
        for i, k, label, a, d, b in LINE.findall(html)
    ]


@pytest_asyncio.fixture(loop_scope="session")
async def customer(app, db, client, monnify, sessionmaker) -> dict[str, Any]:
    """A customer with a funding (₦5,000 from ADA OBI), a referral bonus (their friend funded), a delivered
    ₦500 purchase, a failed ₦200 purchase (refunded) and a ₦300 goodwill adjustment; and another customer."""
    user = await create_user(db)
    friend = await create_user(db, referral_code=user.referral_code)
    other = await create_user(db)
    await webhook(client, monnify, user, 500_000)
    await webhook(client, monnify, friend, 100_000)  # the friend's first ₦1,000: the user's ₦100 bonus
    await webhook(client, monnify, other, 70_000)
    delivered = await buy(app, await fresh(sessionmaker, user.id), DELIVERED, 50_000)
    failed = await buy(app, await fresh(sessionmaker, user.id), FAILING, 20_000)
    assert (delivered.status, failed.status) == ("successful", "failed")
    await buy(app, await fresh(sessionmaker, other.id), DELIVERED, 10_000)
    finance = await create_user(db)
    finance.staff_role, finance.is_staff = "finance", True
    await db.commit()
    await adjust(sessionmaker, finance, user.id, 30_000, '=HYPERLINK("x") goodwill for a late top-up')
    return {"user": user, "other": other, "delivered": delivered, "failed": failed}


async def signed_in(browsers: Any, user: Any) -> httpx.AsyncClient:
    browser = browsers()
    assert (await log_in(browser, user.email, PASSWORD)).status_code == 303
    return browser


async def test_every_line_with_running_balances_to_the_wallet_balance(
    customer, browsers, sessionmaker
) -> None:
    user, delivered, failed = customer["user"], customer["delivered"], customer["failed"]
    browser = await signed_in(browsers, user)
    assert (await browsers().get("/statement")).status_code in (302, 303, 401)  # anonymous: not shown
    dashboard = (await browser.get("/dashboard")).text
    assert 'href="/statement"' in dashboard

    response = await browser.get("/statement")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    html = response.text
    found = lines(section(html, "statement"))
    kinds = [line["kind"] for line in found]
    assert kinds == ["adjustment", "purchase_refund", "purchase", "purchase", "referral_bonus", "funding"], (
        kinds
    )
    async with sessionmaker() as session:
        balance = await wallet_balance(session, user.id)
    assert found[0]["after"] == balance == 500_000 + 10_000 - 50_000 + 30_000
    for newer, older in itertools.pairwise(found):
        assert newer["after"] - newer["amount"] == older["after"]
    assert found[-1]["after"] == found[-1]["amount"] == 500_000
    assert re.search(r'id="wallet-balance"[^>]*>₦4,900.00<', html)

    adjustment, refund, failed_line, delivered_line, bonus, funding = found
    assert funding["label"] == "Funding" and funding["desc"] == "Bank transfer from ADA OBI"
    assert bonus["label"] == "Referral bonus" and bonus["amount"] == 10_000
    assert delivered_line["desc"].startswith("MTN Airtime ₦500.00 to 08011111111")
    assert delivered_line["amount"] == -50_000
    assert failed_line["desc"].startswith("MTN Airtime ₦200.00 to 08031234567")
    assert refund["label"] == "Refund" and refund["amount"] == 20_000
    assert refund["desc"].startswith("Refund of MTN Airtime ₦200.00 to 08031234567")
    assert adjustment["label"] == "Adjustment" and adjustment["desc"].startswith('=HYPERLINK("x") goodwill')
    # Receipts linked; the failed pair reads together on both lines, the delivered one has no such note.
    statement = section(html, "statement")
    assert f'href="/purchases/{delivered.id}"' in statement and f'href="/purchases/{failed.id}"' in statement
    entry = {line["kind"] + str(i): line["id"] for i, line in enumerate(found)}
    for entry_id in (entry["purchase_refund1"], entry["purchase2"]):
        block = re.search(rf'id="entry-{entry_id}".*?</li>', statement, re.S).group(0)
        assert "₦200.00 charged, ₦200.00 refunded" in plain(block)
    block = re.search(rf'id="entry-{entry["purchase3"]}".*?</li>', statement, re.S).group(0)
    assert "refunded" not in plain(block)
    # Nothing of the other customer's, nor any system leg (delivery), appears.
    assert "purchase_delivery" not in kinds and "Delivery" not in plain(statement)
    assert customer["other"].email not in html and "₦700.00" not in plain(statement)


async def test_another_customers_lines_never_appear(customer, browsers) -> None:
    other = await signed_in(browsers, customer["other"])
    found = lines(section((await other.get("/statement")).text, "statement"))
    assert [line["kind"] for line in found] == ["purchase", "funding"]
    assert [line["after"] for line in found] == [60_000, 70_000]
    text = (await other.get("/statement.csv")).text
    assert str(customer["failed"].request_id) not in text and "ADJ-" not in text
    # Their own paging cursor cannot reach into anyone else's wallet either.
    mine = (await other.get(f"/statement?before={found[-1]['id'] + 10_000}")).text
    assert [line["id"] for line in lines(mine)] == [line["id"] for line in found]


async def test_filters_and_clear_messages_for_bad_values(customer, browsers) -> None:
    browser = await signed_in(browsers, customer["user"])

    async def kinds(query: str) -> list[str]:
        response = await browser.get(f"/statement?{query}")
        assert response.status_code == 200, (query, response.text[:500])
        return [line["kind"] for line in lines(response.text)]

    assert await kinds("kind=funding") == ["funding"]
    assert await kinds("kind=purchase") == ["purchase", "purchase"]
    assert await kinds("kind=refund") == ["purchase_refund"]
    assert await kinds("kind=bonus") == ["referral_bonus"]
    assert await kinds("kind=adjustment") == ["adjustment"]
    assert await kinds("status=failed") == ["purchase_refund", "purchase"]
    assert await kinds("status=successful") == ["purchase"]
    assert await kinds("kind=purchase&status=failed") == ["purchase"]
    assert await kinds("status=reversed") == []
    today = datetime.datetime.now(LAGOS).date()
    assert len(await kinds(f"from={today}&to={today}")) == 6
    assert await kinds(f"to={today - datetime.timedelta(days=1)}") == []
    assert await kinds(f"from={today + datetime.timedelta(days=1)}") == []
    # Refused values: 400 with what was wrong, the other filters still applied; never a 500.
    for query, message in (
        ("kind=salary", "Unknown type"),
        ("status=lost", "Unknown purchase status"),
        ("from=31/01/2025", "must be a date like"),
        ("to=2025-02-30", "must be a date like"),
        (f"from={today}&to={today - datetime.timedelta(days=3)}", "is after"),
        ("from=%00%ff&kind=%E2%80%AE", "must be a date like"),
    ):
        response = await browser.get(f"/statement?{query}")
        assert response.status_code == 400, query
        assert message in plain(section(response.text.replace("</div>", "</section>"), "filter-errors"))
        csv_response = await browser.get(f"/statement.csv?{query}")
        assert csv_response.status_code == 400 and message in csv_response.text
    bad = await browser.get("/statement?kind=salary&status=failed")
    assert [line["kind"] for line in lines(bad.text)] == ["purchase_refund", "purchase"]
    # A malformed cursor is the first page.
    for cursor in ("abc", "-1", "0", "99999999999999999999", "١٢"):
        assert len(lines((await browser.get(f"/statement?before={cursor}")).text)) == 6


async def test_paging_by_entry_with_htmx_and_plain_links(customer, browsers, monkeypatch) -> None:
    browser = await signed_in(browsers, customer["user"])
    everything = [line["id"] for line in lines((await browser.get("/statement")).text)]
    monkeypatch.setattr(statement_pages, "STATEMENT_PAGE", 4)
    html = (await browser.get("/statement")).text
    seen = [line["id"] for line in lines(html)]
    assert len(seen) == 4
    older = re.search(r'id="more-statement">\s*<a [^>]*href="([^"]+)"', html).group(1)
    fragment = await browser.get(
        unescape(older), headers={"HX-Request": "true", "HX-Target": "more-statement"}
    )
    assert fragment.status_code == 200 and "<h1" not in fragment.text
    more = [line["id"] for line in lines(fragment.text)]
    assert 'id="more-statement"' not in fragment.text  # the last page
    page = (await browser.get(unescape(older))).text  # without JS: the same lines as a page
    assert [line["id"] for line in lines(page)] == more and "Back to the newest" in page
    assert seen + more == everything and len(set(seen + more)) == 6
    # Paging keeps the filters.
    monkeypatch.setattr(statement_pages, "STATEMENT_PAGE", 1)
    html = (await browser.get("/statement?kind=purchase")).text
    older = unescape(re.search(r'id="more-statement">\s*<a [^>]*href="([^"]+)"', html).group(1))
    assert "kind=purchase" in older
    assert [line["kind"] for line in lines((await browser.get(older)).text)] == ["purchase"]


async def test_csv_download_same_filters_and_escaped(customer, browsers) -> None:
    user, failed = customer["user"], customer["failed"]
    browser = await signed_in(browsers, user)
    response = await browser.get("/statement.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["cache-control"] == "no-store"
    today = datetime.datetime.now(LAGOS).date().isoformat()
    assert response.headers["content-disposition"] == f'attachment; filename="statement-{today}.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["date", "type", "description", "reference", "amount_naira", "balance_naira"]
    body = rows[1:]
    assert [r[1] for r in body] == [
        "Adjustment",
        "Refund",
        "Purchase",
        "Purchase",
        "Referral bonus",
        "Funding",
    ]
    assert [r[4] for r in body] == ["300.00", "200.00", "-200.00", "-500.00", "100.00", "5000.00"]
    assert [r[5] for r in body] == ["4900.00", "4600.00", "4400.00", "4600.00", "5100.00", "5000.00"]
    assert all(datetime.datetime.fromisoformat(r[0]).utcoffset() == datetime.timedelta(hours=1) for r in body)
    assert body[0][2].startswith("'=HYPERLINK(")  # a formula is written as text
    assert body[1][3] == body[2][3] == failed.request_id
    assert "₦200.00 charged, ₦200.00 refunded" in body[2][2]
    assert body[5][2] == "Bank transfer from ADA OBI"
    filtered = list(csv.reader(io.StringIO((await browser.get("/statement.csv?kind=purchase")).text)))
    assert [r[1] for r in filtered[1:]] == ["Purchase", "Purchase"]
    page = (await browser.get("/statement?kind=purchase")).text
    assert 'href="/statement.csv?kind=purchase"' in page


def test_csv_cells_never_start_a_formula() -> None:
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(value) == "'" + value
    assert csv_cell("Bank transfer") == "Bank transfer" and csv_cell("") == ""


async def test_history_and_receipt_read_charged_and_refunded(customer, browsers) -> None:
    browser = await signed_in(browsers, customer["user"])
    failed, delivered = customer["failed"], customer["delivered"]
    history = (await browser.get("/purchases")).text
    row = re.search(rf'href="/purchases/{failed.id}".*?</a>', history, re.S).group(0)
    assert "₦200.00 charged, ₦200.00 refunded" in plain(row)
    row = re.search(rf'href="/purchases/{delivered.id}".*?</a>', history, re.S).group(0)
    assert "refunded" not in plain(row) and "₦500.00" in plain(row)
    assert 'href="/statement"' in history
    receipt = (await browser.get(f"/purchases/{failed.id}")).text
    text = plain(receipt)
    assert "Amount charged ₦200.00" in text and re.search(r"Refunded ₦200\.00 \d+ \w+ \d{4}, .* WAT", text)
    assert "₦200.00 charged, ₦200.00 refunded" in plain(section(receipt, "receipt-status"))
    status = (await browser.get(f"/purchases/{failed.id}/status")).text
    assert "₦200.00 charged, ₦200.00 refunded" in plain(status)
    receipt = (await browser.get(f"/purchases/{delivered.id}")).text
    assert 'id="refunded"' not in receipt and "Amount charged ₦500.00" in plain(receipt)
