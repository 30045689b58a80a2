"""Manual wallet adjustments (/staff/adjustments) over HTTP against the real app: finance requests them with
the password again; within ADJUSTMENT_APPROVAL_KOBO (default ₦5,000) they post at once, above it a second
finance user approves (never the requester); posting is once under `adjustment:<id>` even when 20 approvers
click at once; refusals change nothing. Balances are read from the ledger; reconcile runs after every test."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from html import unescape
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.ledger.models import Adjustment, LedgerEntry, LedgerTransaction
from app.ledger.queries import wallet_balance
from tests.factories import PASSWORD, create_user
from tests.helpers import browser_pool, csrf_token, staff_browser
from tests.integration.purchase_fixtures import fund_wallet

PAGE = "/staff/adjustments"


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(app: Any, db: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    async with browser_pool(app) as new:
        yield new


@pytest_asyncio.fixture(loop_scope="session")
async def finance(db: Any, browsers: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    return await staff_browser(db, browsers, role="finance")


async def customer(db: Any, sessionmaker: Any, *, naira: int = 0) -> Any:
    user = await create_user(db)
    await db.commit()
    if naira:
        await fund_wallet(sessionmaker, user.id, naira * 100)
    return user


async def balance(sessionmaker: Any, user_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


async def adjustments(sessionmaker: Any) -> list[Adjustment]:
    async with sessionmaker() as session:
        return list((await session.execute(select(Adjustment).order_by(Adjustment.requested_at))).scalars())


async def audit_actions(sessionmaker: Any) -> list[tuple[str, str, str]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.target_type, AuditEntry.target_id).order_by(AuditEntry.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def request_adjustment(
    browser: httpx.AsyncClient, user_id: uuid.UUID, *, amount: str, direction: str = "credit", **extra: str
) -> httpx.Response:
    token = await csrf_token(browser, f"{PAGE}/new?user={user_id}")
    data = {
        "user": str(user_id),
        "direction": direction,
        "amount": amount,
        "reason": "Goodwill: VTpass refunded purchase late",
        "password": PASSWORD,
        "_csrf_token": token,
        **extra,
    }
    return await browser.post(PAGE, data=data, follow_redirects=False)


async def decide(
    browser: httpx.AsyncClient, adjustment_id: uuid.UUID, action: str, **data: str
) -> httpx.Response:
    token = await csrf_token(browser, PAGE)
    body = {"_csrf_token": token, **data}
    if action == "approve":
        body.setdefault("password", PASSWORD)
    return await browser.post(f"{PAGE}/{adjustment_id}/{action}", data=body, follow_redirects=False)


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def flash_after(browser: httpx.AsyncClient, response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return text_of((await browser.get(response.headers["location"])).text)


# -- guard ----------------------------------------------------------------------------------------------
async def test_support_reads_finance_acts(db, sessionmaker, browsers, client) -> None:
    user = await customer(db, sessionmaker, naira=100)
    support = await staff_browser(db, browsers, role="support")
    operations = await staff_browser(db, browsers, role="operations")
    assert (await support.get(PAGE)).status_code == 200
    assert (await support.get(PAGE)).headers["cache-control"] == "no-store"
    assert (await support.get(f"{PAGE}/new?user={user.id}")).status_code == 403
    for browser in (support, operations):
        token = await csrf_token(browser, PAGE)
        response = await browser.post(
            PAGE,
            data={"user": str(user.id), "direction": "credit", "amount": "10", "reason": "x",
                  "password": PASSWORD, "_csrf_token": token},
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 403
    assert (await client.get(PAGE, follow_redirects=False)).status_code in (302, 303, 401)
    finance = await staff_browser(db, browsers, role="finance")
    no_csrf = await finance.post(
        PAGE, data={"user": str(user.id), "direction": "credit", "amount": "10", "reason": "x"},
        follow_redirects=False,
    )  # fmt: skip
    assert no_csrf.status_code == 403
    assert await adjustments(sessionmaker) == [] and await balance(sessionmaker, user.id) == 10_000


# -- within the limit: posted at once ---------------------------------------------------------------------
async def test_small_credit_posts_at_once_on_the_statement(db, sessionmaker, finance) -> None:
    user = await customer(db, sessionmaker, naira=100)
    page = await finance.get(f"{PAGE}/new?user={user.id}")
    assert page.status_code == 200 and user.email in page.text and 'name="password"' in page.text
    response = await request_adjustment(finance, user.id, amount="1,500.50")
    assert "Posted: credit of ₦1,500.50" in await flash_after(finance, response)
    assert await balance(sessionmaker, user.id) == 10_000 + 150_050
    [row] = await adjustments(sessionmaker)
    assert row.status == "posted" and row.amount_kobo == 150_050 and row.ledger_transaction_id is not None
    async with sessionmaker() as session:
        txn = await session.get(LedgerTransaction, row.ledger_transaction_id)
        assert txn is not None
        assert txn.idempotency_key == f"adjustment:{row.id}" and txn.kind == "adjustment"
        assert (txn.reference_type, txn.reference_id) == ("adjustment", str(row.id))
        assert txn.memo == "Adjustment: Goodwill: VTpass refunded purchase late"
        legs = (
            await session.execute(select(func.count()).where(LedgerEntry.transaction_id == txn.id))
        ).scalar()
        assert legs == 2
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "adjustment.request"))
        ).scalar_one()
    assert (entry.target_type, entry.target_id) == ("adjustment", str(row.id))
    assert entry.after is not None and entry.after["user_id"] == str(user.id)
    assert entry.after["status"] == "posted" and entry.reason == "Goodwill: VTpass refunded purchase late"
    assert "password" not in str(entry.after)


async def test_small_debit_posts_and_a_debit_beyond_the_wallet_is_refused(db, sessionmaker, finance) -> None:
    user = await customer(db, sessionmaker, naira=100)
    response = await request_adjustment(finance, user.id, amount="40", direction="debit")
    assert "Posted: debit of ₦40.00" in await flash_after(finance, response)
    assert await balance(sessionmaker, user.id) == 6_000
    refused = await request_adjustment(finance, user.id, amount="60.01", direction="debit")
    assert refused.status_code == 400
    body = text_of(refused.text)
    assert "wallet holds ₦60.00, less than the ₦60.01 debit" in body and 'value="60.01"' in refused.text
    assert await balance(sessionmaker, user.id) == 6_000
    assert len(await adjustments(sessionmaker)) == 1


async def test_bad_input_is_a_400_with_the_values_kept_and_nothing_written(db, sessionmaker, finance) -> None:
    user = await customer(db, sessionmaker, naira=100)
    cases = [
        ({"amount": "abc"}, "Enter the amount in naira"),
        ({"amount": "0"}, "more than ₦0"),
        ({"amount": "-5"}, "more than ₦0"),
        ({"amount": "1.234"}, "At most two decimals"),
        ({"amount": "10", "direction": "sideways"}, "Choose credit"),
        ({"amount": "10", "reason": "   "}, "Write why"),
        ({"amount": "10", "reason": "x" * 501}, "under 500 characters"),
        ({"amount": "10", "password": "wrong-password"}, "Your password is not correct"),
    ]
    for changes, message in cases:
        response = await request_adjustment(finance, user.id, **changes)  # type: ignore[arg-type]
        assert response.status_code == 400, changes
        assert message in text_of(response.text), (changes, text_of(response.text)[:400])
        assert response.headers["cache-control"] == "no-store"
    kept = await request_adjustment(finance, user.id, amount="12.50", reason="keep me", password="nope-nope")
    assert 'value="12.50"' in kept.text and "keep me" in kept.text
    unknown = await request_adjustment(finance, uuid.uuid4(), amount="10")
    assert unknown.status_code == 400 and "Choose the customer first" in text_of(unknown.text)
    assert await adjustments(sessionmaker) == [] and await balance(sessionmaker, user.id) == 10_000
    assert await audit_actions(sessionmaker) == []


# -- above the limit: a second person -------------------------------------------------------------------
async def test_above_the_limit_waits_for_a_second_finance_user(db, sessionmaker, browsers, finance) -> None:
    user = await customer(db, sessionmaker)
    response = await request_adjustment(finance, user.id, amount="5000.01")
    assert "Saved for approval" in await flash_after(finance, response)
    [row] = await adjustments(sessionmaker)
    assert row.status == "pending_approval" and row.ledger_transaction_id is None
    assert await balance(sessionmaker, user.id) == 0
    listing = await finance.get(PAGE)
    assert f'id="adj-{row.id}"' in listing.text and "Your own request" in text_of(listing.text)

    own = await decide(finance, row.id, "approve")
    assert "nobody approves their own request" in await flash_after(finance, own)
    own_reject = await decide(finance, row.id, "reject", note="changed my mind")
    assert "nobody decides their own request" in await flash_after(finance, own_reject)
    assert (await adjustments(sessionmaker))[0].status == "pending_approval"

    second = await staff_browser(db, browsers, role="finance")
    wrong = await decide(second, row.id, "approve", password="not-my-password")
    assert wrong.status_code == 400 and "Your password is not correct" in text_of(wrong.text)
    assert (await adjustments(sessionmaker))[0].status == "pending_approval"
    approved = await decide(second, row.id, "approve", note="checked the VTpass refund")
    assert "Approved and posted: credit of ₦5,000.01" in await flash_after(second, approved)
    assert await balance(sessionmaker, user.id) == 500_001
    [row] = await adjustments(sessionmaker)
    assert row.status == "posted" and row.decision_note == "checked the VTpass refund"
    again = await decide(second, row.id, "approve")
    assert "already posted" in await flash_after(second, again)
    assert await balance(sessionmaker, user.id) == 500_001
    actions = await audit_actions(sessionmaker)
    assert actions == [
        ("adjustment.request", "adjustment", str(row.id)),
        ("adjustment.approve", "adjustment", str(row.id)),
    ]


async def test_zero_limit_sends_everything_for_approval(db, sessionmaker, settings) -> None:
    from app.audit.service import Actor
    from app.ledger.adjustments import request_adjustment as request_it

    staff = await create_user(db, staff_role="finance")
    user = await customer(db, sessionmaker)
    await db.commit()
    async with sessionmaker() as session, session.begin():
        outcome = await request_it(
            session, Actor.staff(staff), user_id=user.id, direction="credit", amount_kobo=1,
            reason="one kobo", approval_limit_kobo=0,
        )  # fmt: skip
    assert not outcome.posted and outcome.adjustment.status == "pending_approval"
    assert await balance(sessionmaker, user.id) == 0


async def test_reject_then_approve_is_refused(db, sessionmaker, browsers, finance) -> None:
    user = await customer(db, sessionmaker)
    await flash_after(finance, await request_adjustment(finance, user.id, amount="9000"))
    [row] = await adjustments(sessionmaker)
    second = await staff_browser(db, browsers, role="finance")
    no_note = await decide(second, row.id, "reject", note="  ")
    assert no_note.status_code == 400 and "Write why it is rejected" in text_of(no_note.text)
    rejected = await decide(second, row.id, "reject", note="no evidence of the refund")
    assert "Rejected: nothing was posted" in await flash_after(second, rejected)
    third = await staff_browser(db, browsers, role="admin")
    late = await decide(third, row.id, "approve")
    assert "already rejected by" in await flash_after(third, late)
    [row] = await adjustments(sessionmaker)
    assert row.status == "rejected" and row.ledger_transaction_id is None
    assert await balance(sessionmaker, user.id) == 0
    assert [a for a, _, _ in await audit_actions(sessionmaker)] == ["adjustment.request", "adjustment.reject"]


async def test_pending_debit_the_wallet_no_longer_covers_stays_pending(
    db, sessionmaker, browsers, finance
) -> None:
    user = await customer(db, sessionmaker, naira=7_000)
    await flash_after(finance, await request_adjustment(finance, user.id, amount="6000", direction="debit"))
    await flash_after(finance, await request_adjustment(finance, user.id, amount="4000", direction="debit"))
    assert await balance(sessionmaker, user.id) == 300_000
    pending = [a for a in await adjustments(sessionmaker) if a.status == "pending_approval"]
    assert len(pending) == 1
    second = await staff_browser(db, browsers, role="finance")
    refused = await decide(second, pending[0].id, "approve")
    assert "less than the ₦6,000.00 debit. It stays pending" in await flash_after(second, refused)
    assert await balance(sessionmaker, user.id) == 300_000
    assert [a.status for a in await adjustments(sessionmaker)] == ["pending_approval", "posted"]


async def test_twenty_finance_users_approving_at_once_post_once(db, sessionmaker, browsers, finance) -> None:
    user = await customer(db, sessionmaker)
    await flash_after(finance, await request_adjustment(finance, user.id, amount="25000"))
    [row] = await adjustments(sessionmaker)
    approvers = [await staff_browser(db, browsers, role="finance") for _ in range(20)]
    tokens = [await csrf_token(b, PAGE) for b in approvers]
    responses = await asyncio.gather(
        *(
            b.post(f"{PAGE}/{row.id}/approve", data={"_csrf_token": t, "password": PASSWORD},
                   follow_redirects=False)
            for b, t in zip(approvers, tokens, strict=True)
        )
    )  # fmt: skip
    assert [r.status_code for r in responses] == [303] * 20
    messages = [await flash_after(b, r) for b, r in zip(approvers, responses, strict=True)]
    assert sum("Approved and posted" in m for m in messages) == 1
    assert sum("already posted" in m for m in messages) == 19
    assert await balance(sessionmaker, user.id) == 2_500_000
    async with sessionmaker() as session:
        posted = (
            await session.execute(
                select(func.count()).where(LedgerTransaction.idempotency_key == f"adjustment:{row.id}")
            )
        ).scalar()
    assert posted == 1
    assert [a for a, _, _ in await audit_actions(sessionmaker)].count("adjustment.approve") == 1
