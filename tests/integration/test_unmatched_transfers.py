"""Unmatched transfers (/staff/funding/unmatched and `vtu funding assign`): credited by hand once, under the
webhook's own key `monnify:<transactionReference>`, with the webhook's fee rule and Monnify's verification.

Events are made as production makes them (signed webhooks to the real endpoint, the worker's task against the
Monnify simulator with verification on): the fixtures come from test_staff_funding. Money is asserted in the
ledger; reconcile runs after every test."""

# ruff: noqa: F811  (the fixtures of test_staff_funding are imported, and test arguments name them)
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from html import unescape
from typing import Any

import httpx
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.ledger.models import LedgerTransaction
from app.ledger.queries import wallet_balance
from app.payments import models as m
from tests.factories import PASSWORD
from tests.helpers import csrf_token, staff_browser
from tests.integration.test_staff_funding import (  # noqa: F401  (fixtures, used by name)
    FEE,
    WEBHOOK,
    Transfers,
    browsers,
    customer,
    funding_app,
    healthy,
    live,
    monnify,
    sim,
    transfers,
    worker,
)

PAGE = "/staff/funding/unmatched"


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def assign(
    browser: httpx.AsyncClient, event_id: int, who: str, *, reason: str = "Bank receipt matches", **extra: str
) -> httpx.Response:
    token = await csrf_token(browser, PAGE)
    data = {"customer": who, "reason": reason, "password": PASSWORD, "_csrf_token": token, **extra}
    return await browser.post(f"{PAGE}/{event_id}/assign", data=data, follow_redirects=False)


async def flash_after(browser: httpx.AsyncClient, response: httpx.Response) -> str:
    assert response.status_code == 303, response.text[:500]
    return text_of((await browser.get(response.headers["location"])).text)


async def balance(sessionmaker: Any, user_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


async def postings(sessionmaker: Any, reference: str) -> int:
    async with sessionmaker() as session:
        return int(
            (
                await session.execute(
                    select(func.count()).where(LedgerTransaction.idempotency_key == f"monnify:{reference}")
                )
            ).scalar_one()
        )


async def audit_count(sessionmaker: Any) -> int:
    async with sessionmaker() as session:
        return int(
            (
                await session.execute(select(func.count()).where(AuditEntry.action == "funding_event.assign"))
            ).scalar_one()
        )


async def test_page_lists_unmatched_oldest_first_with_the_payer(db, browsers, transfers: Transfers) -> None:
    support = await staff_browser(db, browsers, role="support")
    first = await transfers.unmatched("VTUNOSUCH1", 700_000)
    second = await transfers.unmatched("VTUNOSUCH2", 120_000)
    response = await support.get(PAGE)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    html = response.text
    assert html.index(f'id="event-{first}"') < html.index(f'id="event-{second}"')
    body = text_of(html)
    assert "ADAEZE OKAFOR" in body and "VTUNOSUCH1" in body and "₦7,000.00" in body
    assert transfers.reference() in body
    assert "Credit this transfer" not in body  # support reads; finance acts
    token = await csrf_token(support, PAGE)
    refused = await support.post(
        f"{PAGE}/{first}/assign", data={"customer": "x@example.ng", "reason": "r", "_csrf_token": token}
    )
    assert refused.status_code == 403


async def test_assignment_credits_once_with_the_fee_and_monnify_verification(
    db, sessionmaker, browsers, transfers: Transfers
) -> None:
    owner = await customer(db)
    event_id = await transfers.unmatched("VTUTYPO123", 500_000)
    reference = transfers.reference()
    finance = await staff_browser(db, browsers, role="finance")
    assert "Credit this transfer" in (await finance.get(PAGE)).text
    response = await assign(finance, event_id, owner.email.upper())
    assert response.headers["location"] == f"/staff/funding/{event_id}"
    message = await flash_after(finance, response)
    assert f"Assigned: credited ₦4,950.00 to {owner.email}" in message  # ₦5,000 less the ₦50 fee
    assert await balance(sessionmaker, owner.id) == 500_000 - FEE
    assert await postings(sessionmaker, reference) == 1
    event = await transfers.event(event_id)
    assert event.status == m.EVENT_CREDITED and event.user_id == owner.id
    assert event.credited_kobo == 500_000 - FEE and event.fee_kobo == FEE
    assert event.assignment_reason == "Bank receipt matches" and event.assigned_by is not None
    assert event.assigned_by.startswith("staff:") and event.assigned_at is not None
    async with sessionmaker() as session:
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "funding_event.assign"))
        ).scalar_one()
    assert (entry.target_type, entry.target_id) == ("funding_event", str(event_id))
    assert entry.after is not None and entry.after["user_id"] == str(owner.id)
    assert entry.reason == "Bank receipt matches"
    # Monnify's charge was booked as on the webhook path: the event page shows the posting.
    page = text_of((await finance.get(f"/staff/funding/{event_id}")).text)
    assert "credited" in page and reference in page

    again = await assign(finance, event_id, owner.email)
    assert "already credited" in await flash_after(finance, again)
    # The worker retrying and Monnify re-sending the webhook change nothing.
    assert await transfers.process(event_id) == m.EVENT_CREDITED
    assert await postings(sessionmaker, reference) == 1
    assert await balance(sessionmaker, owner.id) == 500_000 - FEE
    assert (await finance.get(PAGE)).text.count(f"#{event_id}") >= 1  # listed under "assigned lately"


async def test_refusals_change_nothing(db, sessionmaker, browsers, transfers: Transfers, sim) -> None:
    owner = await customer(db)
    credited = await transfers.credited(owner.account_reference, 100_000)
    event_id = await transfers.unmatched("VTUNOBODY9", 300_000)
    reference = transfers.reference()
    finance = await staff_browser(db, browsers, role="finance")
    before = await balance(sessionmaker, owner.id)

    cases = [
        ({"who": "nobody@example.ng"}, "No customer matches"),
        ({"who": ""}, "Who does this transfer belong to"),
        ({"who": owner.email, "reason": "  "}, "Write how you know it is theirs"),
        ({"who": owner.email, "reason": "x" * 501}, "under 500 characters"),
        ({"who": owner.email, "password": "wrong-password"}, "Your password is not correct"),
    ]
    for case, message in cases:
        who = case.pop("who")
        response = await assign(finance, event_id, who, **case)  # type: ignore[arg-type]
        assert response.status_code == 400, case
        assert message in text_of(response.text)
    kept = await assign(finance, event_id, owner.email, reason="keep this reason", password="nope-nope")
    assert "keep this reason" in kept.text and f'value="{owner.email}"' in kept.text

    not_unmatched = await assign(finance, credited, owner.email)
    assert "already credited" in await flash_after(finance, not_unmatched)
    missing = await assign(finance, 999_999, owner.email)
    assert "No such funding event" in await flash_after(finance, missing)

    sim.fail_next(10, status=503, path_prefix="/api/v2/transactions")
    down = await assign(finance, event_id, owner.email)
    assert "Monnify did not confirm the transfer (verification failed" in await flash_after(finance, down)
    sim._failures.clear()
    sim.set_transaction(reference, payment_status="REVERSED")
    reversed_ = await assign(finance, event_id, owner.email)
    assert "Monnify reports REVERSED" in await flash_after(finance, reversed_)

    assert (await transfers.event(event_id)).status == m.EVENT_UNMATCHED
    assert await balance(sessionmaker, owner.id) == before
    assert await postings(sessionmaker, reference) == 0
    assert await audit_count(sessionmaker) == 0


async def test_two_staff_assigning_at_once_credit_once(
    db, sessionmaker, browsers, transfers: Transfers
) -> None:
    for _ in range(3):
        one, two = await customer(db), await customer(db)
        event_id = await transfers.unmatched(f"VTURACE{uuid.uuid4().hex[:6]}", 200_000)
        reference = transfers.reference()
        a = await staff_browser(db, browsers, role="finance")
        b = await staff_browser(db, browsers, role="admin")
        ta, tb = await csrf_token(a, PAGE), await csrf_token(b, PAGE)
        form = {"password": PASSWORD}
        ra, rb = await asyncio.gather(
            a.post(f"{PAGE}/{event_id}/assign", data={**form, "customer": one.email, "reason": "r1",
                                                      "_csrf_token": ta}),
            b.post(f"{PAGE}/{event_id}/assign", data={**form, "customer": two.email, "reason": "r2",
                                                      "_csrf_token": tb}),
        )  # fmt: skip
        assert ra.status_code == rb.status_code == 303
        assert await postings(sessionmaker, reference) == 1
        credited = await balance(sessionmaker, one.id) + await balance(sessionmaker, two.id)
        assert credited == 200_000 - FEE
        assert await audit_count(sessionmaker) >= 1


async def test_resent_webhook_and_worker_racing_the_assignment_credit_once(
    db, sessionmaker, browsers, transfers: Transfers, sim
) -> None:
    owner = await customer(db)
    finance = await staff_browser(db, browsers, role="finance")
    for round_ in range(4):
        body, signature = sim.build_webhook(f"VTURESEND{round_}", 150_000)
        headers = {"content-type": "application/json", "monnify-signature": signature}
        assert (await transfers.client.post(WEBHOOK, content=body, headers=headers)).status_code == 200
        reference = transfers.reference()
        async with sessionmaker() as session:
            event_id = (
                await session.execute(
                    select(m.MonnifyEvent.id).where(m.MonnifyEvent.transaction_reference == reference)
                )
            ).scalar_one()
        assert await transfers.process(event_id) == m.EVENT_UNMATCHED
        token = await csrf_token(finance, PAGE)

        async def resend() -> None:
            response = await transfers.client.post(WEBHOOK, content=body, headers=headers)
            assert response.status_code == 200
            await transfers.process(event_id)

        results = await asyncio.gather(
            finance.post(f"{PAGE}/{event_id}/assign",
                         data={"customer": owner.email, "reason": "receipt", "password": PASSWORD,
                               "_csrf_token": token}),
            resend(),
            transfers.process(event_id),
            resend(),
        )  # fmt: skip
        assert results[0].status_code == 303
        assert await postings(sessionmaker, reference) == 1
        assert (await transfers.event(event_id)).status == m.EVENT_CREDITED
        assert await balance(sessionmaker, owner.id) == (round_ + 1) * (150_000 - FEE)


def _vtu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


async def test_cli_assign(db, sessionmaker, client, settings) -> None:
    """`vtu funding assign` over the real entry point (the default test settings: verification off)."""
    from tests.fakes.monnify import MonnifySimulator

    owner = await customer(db)
    builder = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )
    body, signature = builder.build_webhook("VTUCLINOBODY", 250_000)
    reference = builder.last_transaction.transaction_reference  # type: ignore[union-attr]
    response = await client.post(
        WEBHOOK, content=body, headers={"content-type": "application/json", "monnify-signature": signature}
    )
    assert response.status_code == 200
    async with sessionmaker() as session:
        event = (
            await session.execute(
                select(m.MonnifyEvent).where(m.MonnifyEvent.transaction_reference == reference)
            )
        ).scalar_one()
    assert event.status == m.EVENT_UNMATCHED

    for args, message in [
        (("--transaction-reference", "MNFY|NOPE", "--email", owner.email, "--reason", "r"), "no transfer"),
        (("--transaction-reference", reference, "--email", "ghost@example.ng", "--reason", "r"), "no user"),
        (("--transaction-reference", reference, "--email", owner.email, "--reason", "  "), "reason"),
    ]:
        result = _vtu("funding", "assign", *args)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert await balance(sessionmaker, owner.id) == 0

    result = _vtu("funding", "assign", "--transaction-reference", reference, "--email", owner.email,
                  "--reason", "customer e-mailed the receipt")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().count("\n") == 0 and f"credited ₦2,500.00 to {owner.email}" in result.stdout
    assert await balance(sessionmaker, owner.id) == 250_000
    again = _vtu("funding", "assign", "--transaction-reference", reference, "--email", owner.email,
                 "--reason", "again")  # fmt: skip
    assert again.returncode == 1 and "already credited" in again.stderr
    assert await postings(sessionmaker, reference) == 1
    async with sessionmaker() as session:
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "funding_event.assign"))
        ).scalar_one()
    assert entry.actor.startswith("cli:") and entry.actor_role == "operator" and entry.actor_id is None
