"""Monnify funding: signed webhooks stored and credited exactly once, verify-before-credit, reservations."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.ledger.accounts import EXPENSE_MONNIFY_FEES, MONNIFY_CLEARING, REVENUE_FUNDING_FEES
from app.ledger.queries import system_balances, wallet_balance
from app.ledger.reconcile import run_reconcile
from app.payments import models as m
from app.payments.funding import process_event, store_event
from app.payments.monnify_client import MonnifyClient
from app.payments.reservations import reserve_for_user
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator, sign
from tests.fakes.server import serve
from tests.helpers import log_in

WEBHOOK = "/payments/webhooks/monnify/"


@pytest.fixture
def sim(settings) -> MonnifySimulator:
    return MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )


async def _customer(db):
    user = await create_user(db)
    await db.commit()
    return user


async def _post(client, body: bytes, signature: str | None):
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["monnify-signature"] = signature
    return await client.post(WEBHOOK, content=body, headers=headers)


async def _events(db) -> list[m.MonnifyEvent]:
    stmt = select(m.MonnifyEvent).order_by(m.MonnifyEvent.id).execution_options(populate_existing=True)
    return list((await db.execute(stmt)).scalars())


async def _clean(sessionmaker):
    report = await run_reconcile(sessionmaker)
    assert report.ok, report.lines()


async def test_signed_transfer_credits_the_wallet_once(client, db, sim, sessionmaker):
    user = await _customer(db)
    body, signature = sim.build_webhook(user.account_reference, 500_000)
    response = await _post(client, body, signature)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert await wallet_balance(db, user.id) == 500_000
    [event] = await _events(db)
    assert event.status == m.EVENT_CREDITED and event.credited_kobo == 500_000 and event.user_id == user.id
    # Monnify's 1% charge (settlementAmount 4950.00) is the platform's expense, not the customer's.
    balances = await system_balances(db)
    assert balances[EXPENSE_MONNIFY_FEES] == -5_000
    assert balances[MONNIFY_CLEARING] == -495_000
    await _clean(sessionmaker)


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "one_byte_changed", "missing_header", "reserialized_json", "empty_header"],
)
async def test_only_a_valid_signature_over_the_raw_body_credits(client, db, sim, tamper):
    user = await _customer(db)
    body, signature = sim.build_webhook(user.account_reference, 100_000)
    if tamper == "wrong_secret":
        signature = sign(body, "not-the-secret")
    elif tamper == "one_byte_changed":
        body = body.replace(b'"amountPaid":1000', b'"amountPaid":9000', 1)
        assert b'"amountPaid":9000' in body
    elif tamper == "missing_header":
        signature = None
    elif tamper == "reserialized_json":
        body = json.dumps(json.loads(body), indent=1).encode()  # same data, other bytes
    elif tamper == "empty_header":
        signature = ""
    response = await _post(client, body, signature)
    assert response.status_code == 401
    assert await _events(db) == []
    assert await wallet_balance(db, user.id) == 0


async def test_ten_concurrent_deliveries_and_a_late_replay_credit_once(
    app, db, sim, make_client, sessionmaker
):
    user = await _customer(db)
    body, signature = sim.build_webhook(user.account_reference, 250_000)

    async def deliver() -> int:
        async with make_client() as c:
            return (await _post(c, body, signature)).status_code

    statuses = await asyncio.gather(*(deliver() for _ in range(10)))
    assert statuses == [200] * 10
    async with make_client() as c:  # "a day later": Monnify re-sends the same notification
        assert (await _post(c, body, signature)).status_code == 200
    assert await wallet_balance(db, user.id) == 250_000
    assert len(await _events(db)) == 1
    await _clean(sessionmaker)


async def test_body_that_is_not_json_is_400_and_not_stored(client, db, settings):
    body = b"this is not json"
    response = await _post(client, body, sign(body, settings.monnify_secret_key))
    assert response.status_code == 400
    assert await _events(db) == []


@pytest.mark.parametrize("sources", ["object", "missing", "list"])
async def test_payment_source_shapes_and_string_amounts_are_credited(client, db, sim, sources):
    user = await _customer(db)
    tx = sim.record_transfer(user.account_reference, 123_456)
    payload = sim.webhook_payload(tx, sources)
    payload["eventData"]["amountPaid"] = "1234.56"  # a string, as some payloads carry
    body = json.dumps(payload).encode()
    assert (await _post(client, body, sign(body, sim.secret_key))).status_code == 200
    assert await wallet_balance(db, user.id) == 123_456


@pytest.mark.parametrize(
    ("mutate", "expected_status"),
    [
        (lambda p: p["eventData"].pop("amountPaid"), m.EVENT_UNMATCHED),
        (lambda p: p["eventData"].pop("product"), m.EVENT_UNMATCHED),
        (lambda p: p["eventData"].update(amountPaid="lots"), m.EVENT_UNMATCHED),
        (
            lambda p: p["eventData"].update(
                product={"reference": "VTUNOSUCHREF", "type": "RESERVED_ACCOUNT"}
            ),
            m.EVENT_UNMATCHED,
        ),
        (lambda p: p.update(eventType="SUCCESSFUL_DISBURSEMENT"), m.EVENT_IGNORED),
        (lambda p: p.update(eventData=[]), m.EVENT_UNMATCHED),
    ],
)
async def test_malformed_unknown_and_unmatched_events_are_stored_never_500(
    client, db, sim, mutate, expected_status
):
    user = await _customer(db)
    payload = sim.webhook_payload(sim.record_transfer(user.account_reference, 10_000))
    mutate(payload)
    body = json.dumps(payload).encode()
    response = await _post(client, body, sign(body, sim.secret_key))
    assert response.status_code == 200
    [event] = await _events(db)
    assert event.status == expected_status
    assert await wallet_balance(db, user.id) == 0


async def test_funding_fee_is_taken_and_booked_as_revenue(db, sim, settings, sessionmaker):
    user = await _customer(db)
    fee_settings = dataclasses.replace(
        settings, funding_fee_flat_kobo=5_000, funding_fee_percent="1.5", funding_fee_cap_kobo=20_000
    )
    body, _ = sim.build_webhook(user.account_reference, 1_000_000)
    stored = await store_event(db, json.loads(body), body, "127.0.0.1")
    assert await process_event(db, fee_settings, stored.id) == m.EVENT_CREDITED
    # fee = 50.00 + 1.5% of 10,000.00 = 200.00, capped at 200.00
    assert await wallet_balance(db, user.id) == 1_000_000 - 20_000
    assert (await system_balances(db))[REVENUE_FUNDING_FEES] == 20_000
    await _clean(sessionmaker)


@pytest.fixture
async def monnify(sim):
    with serve(sim.app) as server:
        yield server


async def _verifying(settings, monnify_url):
    verify = dataclasses.replace(settings, monnify_verify_before_credit=True, monnify_base_url=monnify_url)
    client = MonnifyClient(verify, backoff_base=0.01, backoff_max=0.02)
    return verify, client


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("PAID", m.EVENT_CREDITED), ("OVERPAID", m.EVENT_CREDITED), ("FAILED", m.EVENT_REJECTED),
     ("REVERSED", m.EVENT_REJECTED), ("EXPIRED", m.EVENT_REJECTED), ("PENDING", m.EVENT_FAILED),
     ("PARTIALLY_PAID", m.EVENT_FAILED), ("SOMETHING_NEW", m.EVENT_FAILED)],
)  # fmt: skip
async def test_verify_before_credit_trusts_monnify_not_the_webhook(
    db, sim, settings, monnify, status, outcome
):
    user = await _customer(db)
    body, _ = sim.build_webhook(user.account_reference, 300_000)
    sim.set_transaction(sim.last_transaction.transaction_reference, payment_status=status)
    stored = await store_event(db, json.loads(body), body, None)
    verify, client = await _verifying(settings, monnify.url)
    async with client:
        result = await process_event(db, verify, stored.id, client)
    assert result == outcome  # not paid yet (or unknown) is checked again later, never rejected for good
    assert await wallet_balance(db, user.id) == (300_000 if outcome == m.EVENT_CREDITED else 0)


async def test_a_transfer_still_pending_at_monnify_is_credited_once_it_settles(db, sim, settings, monnify):
    user = await _customer(db)
    user_id = user.id
    body, _ = sim.build_webhook(user.account_reference, 250_000)
    reference = sim.last_transaction.transaction_reference
    sim.set_transaction(reference, payment_status="PENDING")
    stored = await store_event(db, json.loads(body), body, None)
    verify, client = await _verifying(settings, monnify.url)
    async with client:
        assert await process_event(db, verify, stored.id, client) == m.EVENT_FAILED
        db.expire_all()
        event = await db.get(m.MonnifyEvent, stored.id)
        assert event.next_attempt_at is not None and "PENDING" in event.last_error
        assert await wallet_balance(db, user_id) == 0
        sim.set_transaction(reference, payment_status="PAID")  # Monnify settles it
        assert await process_event(db, verify, stored.id, client) == m.EVENT_CREDITED
        assert await process_event(db, verify, stored.id, client) == m.EVENT_CREDITED  # once
    assert await wallet_balance(db, user_id) == 250_000


async def test_verified_amount_wins_over_the_webhook_amount(db, sim, settings, monnify):
    user = await _customer(db)
    body, _ = sim.build_webhook(user.account_reference, 900_000)  # the webhook claims N9,000
    sim.set_transaction(sim.last_transaction.transaction_reference, amount_paid_kobo=90_000)  # Monnify: N900
    stored = await store_event(db, json.loads(body), body, None)
    verify, client = await _verifying(settings, monnify.url)
    async with client:
        assert await process_event(db, verify, stored.id, client) == m.EVENT_CREDITED
    assert await wallet_balance(db, user.id) == 90_000


async def test_monnify_down_during_verification_leaves_the_event_retryable(db, sim, settings, monnify):
    user = await _customer(db)
    body, _ = sim.build_webhook(user.account_reference, 70_000)
    stored = await store_event(db, json.loads(body), body, None)
    verify, client = await _verifying(settings, monnify.url)
    sim.fail_next(10, status=503, path_prefix="/api/v2/transactions")
    async with client:
        assert await process_event(db, verify, stored.id, client) == m.EVENT_FAILED
        assert await wallet_balance(db, user.id) == 0
        event = await db.get(m.MonnifyEvent, stored.id)
        assert (
            event.attempts == 1
            and event.next_attempt_at is not None
            and "verification failed" in event.last_error
        )
        sim.fail_next(0)
        sim._failures.clear()
        assert await process_event(db, verify, stored.id, client) == m.EVENT_CREDITED
    assert await wallet_balance(db, user.id) == 70_000


async def test_reserved_accounts_created_once_and_retried_after_outage(
    db, sim, settings, monnify, sessionmaker
):
    user = await _customer(db)
    live = dataclasses.replace(settings, monnify_base_url=monnify.url)
    async with MonnifyClient(live, backoff_base=0.01, backoff_max=0.02, max_attempts=2) as client:
        sim.fail_next(4, status=500, path_prefix="/api/v2/bank-transfer")
        with pytest.raises(Exception):
            await reserve_for_user(sessionmaker, client, user.id)
        stmt = select(m.ReservedAccount).where(m.ReservedAccount.user_id == user.id)
        row = (await db.execute(stmt.execution_options(populate_existing=True))).scalar_one()
        assert row.status == m.RESERVATION_FAILED and row.attempts == 1
        sim._failures.clear()
        sim.expire_tokens()  # the cached token died meanwhile: the client logs in again
        first = await reserve_for_user(sessionmaker, client, user.id)
        again = await reserve_for_user(sessionmaker, client, user.id)
    assert first.status == m.RESERVATION_ACTIVE and len(first.banks) >= 2
    assert {b.account_number for b in again.banks} == {b.account_number for b in first.banks}
    count = (await db.execute(select(func.count()).select_from(m.ReservedBankAccount))).scalar_one()
    assert count == len(first.banks)


async def test_a_transfer_in_the_simulator_shows_on_the_wallet_pages(
    db, sim, settings, monnify, sessionmaker
):
    """End to end over real HTTP: the app on a real port, Monnify's simulator sending the webhook."""
    from app.asgi import create_app

    live = dataclasses.replace(settings, monnify_base_url=monnify.url)
    user = await _customer(db)
    async with MonnifyClient(live, backoff_base=0.01) as client:
        reservation = await reserve_for_user(sessionmaker, client, user.id)
    number = reservation.banks[0].account_number
    with serve(create_app(live)) as site:
        async with httpx.AsyncClient(base_url=site.url, timeout=30) as browser:
            await log_in(browser, user.email, PASSWORD)
            page = await browser.get("/wallet/fund")
            assert number in page.text and reservation.banks[0].bank_name in page.text
            sent = await sim.send_transfer(f"{site.url}{WEBHOOK}", None, 2_500_000, account_number=number)
            assert sent.response.status_code == 200
            history = await browser.get("/wallet/fund/history", headers={"HX-Request": "true"})
            assert "₦25,000.00" in history.text
            dashboard = await browser.get("/dashboard")
            assert "₦25,000.00" in dashboard.text
    await _clean(sessionmaker)


async def test_inline_credit_takes_the_fee_in_the_one_statement_path(db, sim, settings, sessionmaker):
    """receive_event (the webhook path, `monnify_receive`) applies the same fee rules as the worker path."""
    from app.payments.funding import receive_event

    user = await _customer(db)
    fee_settings = dataclasses.replace(
        settings, funding_fee_flat_kobo=5_000, funding_fee_percent="1.5", funding_fee_cap_kobo=20_000
    )
    body, _ = sim.build_webhook(user.account_reference, 200_000)
    stored = await receive_event(db, fee_settings, json.loads(body), body, "127.0.0.1")
    assert stored.status == m.EVENT_CREDITED and stored.created
    # fee = 50.00 + 1.5% of 2,000.00 = 80.00 (under the cap)
    assert await wallet_balance(db, user.id) == 200_000 - 8_000
    [event] = await _events(db)
    assert (event.fee_kobo, event.credited_kobo, event.attempts) == (8_000, 192_000, 1)
    balances = await system_balances(db)
    assert balances[REVENUE_FUNDING_FEES] == 8_000
    assert balances[EXPENSE_MONNIFY_FEES] == -2_000  # the simulator's 1% charge
    replay = await receive_event(db, fee_settings, json.loads(body), body, "127.0.0.1")
    assert (replay.id, replay.created, replay.status) == (stored.id, False, m.EVENT_CREDITED)
    assert await wallet_balance(db, user.id) == 192_000
    await _clean(sessionmaker)


async def test_a_customer_without_a_wallet_yet_is_still_credited(db, sim, settings, sessionmaker):
    """The one-statement path needs an existing wallet; without one it hands over to the general path,
    which opens the wallet, in the same request."""
    from sqlalchemy import text

    from app.payments.funding import receive_event

    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO users (id, email, full_name, password_hash, account_reference, referral_code,"
                " created_at, updated_at) VALUES (gen_random_uuid(), 'nowallet@example.ng', '', 'x',"
                " 'VTUNOWALLET1', 'NOWALLET1', now(), now())"
            )
        )
    body, _ = sim.build_webhook("VTUNOWALLET1", 70_000)
    stored = await receive_event(db, settings, json.loads(body), body, None)
    assert stored.status == m.EVENT_CREDITED
    [event] = await _events(db)
    assert event.status == m.EVENT_CREDITED and event.credited_kobo == 70_000
    assert await wallet_balance(db, event.user_id) == 70_000
    await _clean(sessionmaker)


async def test_a_failing_funding_listener_undoes_the_credit_and_keeps_the_event(
    db, sim, settings, sessionmaker
):
    """A listener (e.g. referral bonus) that breaks must not leave a credit without its listeners' work:
    both are undone, the event is stored `received`, and the worker's retry credits it (and emits again)."""
    from app.core.events import WALLET_FUNDED, load_listeners
    from app.payments.funding import receive_event

    user = await _customer(db)
    load_listeners()
    calls: list[int] = []

    async def broken(session, event) -> None:
        calls.append(event.credited_kobo)
        if len(calls) == 1:
            raise RuntimeError("listener bug")

    WALLET_FUNDED.connect(broken)
    try:
        body, _ = sim.build_webhook(user.account_reference, 30_000)
        stored = await receive_event(db, settings, json.loads(body), body, None)
        assert stored.status == m.EVENT_RECEIVED and stored.created
        assert await wallet_balance(db, user.id) == 0
        assert await process_event(db, settings, stored.id) == m.EVENT_CREDITED
    finally:
        WALLET_FUNDED.listeners.remove(broken)
    assert calls == [30_000, 30_000]
    assert await wallet_balance(db, user.id) == 30_000
    [event] = await _events(db)
    assert event.status == m.EVENT_CREDITED
    await _clean(sessionmaker)


async def test_an_unexpected_error_while_crediting_is_recorded_and_retried(db, sim, settings, monkeypatch):
    from app.payments import funding

    user = await _customer(db)
    user_id = user.id
    body, _ = sim.build_webhook(user.account_reference, 400_000)
    stored = await store_event(db, json.loads(body), body, None)
    real = funding._apply_credit

    async def broken(*args, **kwargs):
        await real(*args, **kwargs)  # the posting is made ...
        raise RuntimeError("a listener blew up")  # ... and undone with everything else

    monkeypatch.setattr(funding, "_apply_credit", broken)
    assert await process_event(db, settings, stored.id) == m.EVENT_FAILED
    db.expire_all()
    event = await db.get(m.MonnifyEvent, stored.id)
    assert event.attempts == 1 and event.next_attempt_at is not None
    assert "RuntimeError: a listener blew up" in event.last_error
    assert await wallet_balance(db, user_id) == 0  # nothing half-written
    monkeypatch.undo()
    assert await process_event(db, settings, stored.id) == m.EVENT_CREDITED
    assert await wallet_balance(db, user_id) == 400_000


async def test_a_replayed_webhook_announces_nothing(db, sim, settings, sessionmaker):
    """Only the delivery that credited a transfer emits WALLET_FUNDED; a replay of a credited event used to
    emit it again (with no user), double-counting fundings in the logs and to every listener."""
    from app.core.events import WALLET_FUNDED, load_listeners
    from app.payments.funding import receive_event

    load_listeners()
    seen: list[Any] = []

    async def record(session: Any, event: Any) -> None:
        seen.append(event)

    user = await _customer(db)
    WALLET_FUNDED.connect(record)
    try:
        body, _ = sim.build_webhook(user.account_reference, 40_000)
        for _ in range(3):
            stored = await receive_event(db, settings, json.loads(body), body, None)
            assert stored.status == m.EVENT_CREDITED
    finally:
        WALLET_FUNDED.listeners.remove(record)
    assert [(e.user_id, e.credited_kobo) for e in seen] == [(user.id, 40_000)]
    assert await wallet_balance(db, user.id) == 40_000
