"""Wallet funding from Monnify webhooks: store every verified event, then credit it exactly once.

Storing and crediting are separate steps so that a crash, a Monnify outage during verification or a bug
never loses a transfer: the stored row is the source of truth and the worker retries it.
Idempotency holds at two levels: one row per (eventType, transactionReference), and the ledger posting key
`monnify:<transactionReference>`, so replays and concurrent deliveries credit once.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.config.settings import Settings
from app.core.events import WALLET_FUNDED, WalletFunded
from app.payments import models as m
from app.payments.events import MalformedEvent, MonnifyEvent, parse_monnify_event
from app.payments.money import funding_fees
from app.payments.monnify_client import MonnifyClient, MonnifyError, TransactionStatus

log = structlog.get_logger("app.payments.funding")

CREDITABLE_STATUSES = frozenset({"PAID", "OVERPAID"})
# Monnify's statuses that mean the money did not (and will not) arrive. Anything else that is not paid --
# PENDING above all, PARTIALLY_PAID or a status we do not know -- is checked again later, never rejected:
# a transfer verified a moment before Monnify settled it must still be credited.
NEVER_PAID_STATUSES = frozenset({"FAILED", "REVERSED", "CANCELLED", "EXPIRED", "ABANDONED"})
RETRY_SCHEDULE_SECONDS = (30, 60, 300, 900, 3600)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    status: str
    created: bool  # False when this delivery duplicates one already stored
    parsed: MonnifyEvent | None = None


def _event_values(
    payload: Any, raw_body: bytes, remote_ip: str | None
) -> tuple[dict[str, Any], MonnifyEvent | None, str | None]:
    """The row to store for a verified delivery, the parsed event (None if malformed) and the problem."""
    try:
        parsed: MonnifyEvent | None = parse_monnify_event(payload, raw_body)
        problem = None
    except MalformedEvent as exc:
        parsed, problem = None, exc.reason
    if parsed is not None:
        event_type, reference = parsed.event_type, parsed.dedupe_reference
    else:
        event_type = (
            str(payload.get("eventType") or "UNKNOWN")[:64] if isinstance(payload, dict) else "UNKNOWN"
        )
        reference = "sha256:" + hashlib.sha256(raw_body).hexdigest()
    values: dict[str, Any] = {
        "dedupe_key": f"{event_type}:{reference}"[:200],
        "event_type": event_type,
        "transaction_reference": parsed.transaction_reference if parsed else None,
        "product_reference": parsed.product_reference if parsed else None,
        "amount_paid_kobo": parsed.amount_paid_kobo if parsed else None,
        "payload": payload if isinstance(payload, dict) else {"body": payload},
        "remote_ip": remote_ip,
        "status": _initial_status(parsed),
        "last_error": problem or (None if parsed is None or _creditable(parsed) else "nothing to credit"),
    }
    return values, parsed, problem


async def store_event(
    session: AsyncSession, payload: Any, raw_body: bytes, remote_ip: str | None, *, commit: bool = True
) -> StoredEvent:
    """Insert the verified event once (ON CONFLICT DO NOTHING). Never raises on odd payloads."""
    values, parsed, problem = _event_values(payload, raw_body, remote_ip)
    inserted = (
        await session.execute(
            insert(m.MonnifyEvent)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(m.MonnifyEvent.id, m.MonnifyEvent.status)
        )
    ).first()
    if inserted is None:
        existing = (
            await session.execute(
                select(m.MonnifyEvent.id, m.MonnifyEvent.status).where(
                    m.MonnifyEvent.dedupe_key == values["dedupe_key"]
                )
            )
        ).one()
        if commit:
            await session.commit()
        return StoredEvent(existing.id, existing.status, created=False, parsed=parsed)
    if commit:
        await session.commit()
    if problem:
        log.warning("monnify_event_malformed", event_id=inserted.id, reason=problem)
    return StoredEvent(inserted.id, inserted.status, created=True, parsed=parsed)


def _creditable(parsed: MonnifyEvent) -> bool:
    """A paid transfer into a reserved account: the only event that moves money."""
    return (
        parsed.is_successful_transaction and (parsed.product_type or "RESERVED_ACCOUNT") == "RESERVED_ACCOUNT"
    )


def _initial_status(parsed: MonnifyEvent | None) -> str:
    if parsed is None:
        return m.EVENT_UNMATCHED  # malformed: kept for staff
    return m.EVENT_RECEIVED if _creditable(parsed) else m.EVENT_IGNORED


@dataclass(frozen=True, slots=True)
class Verification:
    amount_paid_kobo: int
    settlement_kobo: int | None
    paid: bool
    status: str


async def verify_with_monnify(client: MonnifyClient, transaction_reference: str) -> Verification:
    """Monnify's own record of the transaction (never trust the webhook body alone for money)."""
    status: TransactionStatus = await client.get_transaction_status(transaction_reference)
    return Verification(
        amount_paid_kobo=status.amount_paid_kobo,
        settlement_kobo=status.settlement_amount_kobo,
        paid=status.payment_status.upper() in CREDITABLE_STATUSES,
        status=status.payment_status,
    )


class NotConfirmed(Exception):
    """Monnify did not confirm the transfer as paid: `final` when it never will be (rejected), else the
    check is repeated later (Monnify unreachable, PENDING, PARTIALLY_PAID, a status we do not know)."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.message = message
        self.final = final


async def amounts_to_credit(
    settings: Settings, client: MonnifyClient | None, parsed: MonnifyEvent
) -> tuple[int, int | None]:
    """(amount paid, settlement amount) to credit a transfer with: with MONNIFY_VERIFY_BEFORE_CREDIT,
    Monnify's own record, asked here (call it with no database transaction open); else the webhook's
    figures. Raises NotConfirmed when Monnify does not say PAID / OVERPAID. The worker, staff retries and
    the assignment of an unmatched transfer all go through here."""
    verified: Verification | None = None
    if settings.monnify_verify_before_credit:
        if client is None:
            raise RuntimeError("verification is on but no Monnify client was given")
        assert parsed.transaction_reference is not None
        try:
            verified = await verify_with_monnify(client, parsed.transaction_reference)
        except MonnifyError as exc:
            raise NotConfirmed(f"verification failed: {exc}", final=False) from exc
        if not verified.paid and verified.status.upper() in NEVER_PAID_STATUSES:
            raise NotConfirmed(f"Monnify reports {verified.status}; not credited", final=True)
        if not verified.paid:
            raise NotConfirmed(f"Monnify reports {verified.status}: checking again", final=False)
    amount = verified.amount_paid_kobo if verified else parsed.amount_paid_kobo
    settlement = (verified.settlement_kobo if verified else None) or parsed.settlement_amount_kobo
    assert amount is not None
    return amount, settlement


def creditable(parsed: MonnifyEvent) -> bool:
    """A paid transfer into a reserved account (the only event that moves money)."""
    return _creditable(parsed)


async def process_event(
    session: AsyncSession, settings: Settings, event_id: int, client: MonnifyClient | None = None
) -> str:
    """Credit a stored event if it is a paid transfer into a customer's reserved account. Returns the status.

    With verification on, Monnify is re-queried first, OUTSIDE any database transaction; then one short
    transaction locks the event row, posts the ledger transaction and marks the event.
    """
    event = await session.get(m.MonnifyEvent, event_id)
    if event is None or event.status not in (m.EVENT_RECEIVED, m.EVENT_FAILED):
        return event.status if event else "missing"
    parsed = parse_monnify_event(event.payload)
    await session.commit()  # end the read (releasing the connection) before any HTTP call

    if not _creditable(parsed):
        return await _finish(
            session, event_id, m.EVENT_IGNORED, note=f"nothing to credit for {parsed.event_type}"
        )

    try:
        amount, settlement = await amounts_to_credit(settings, client, parsed)
    except NotConfirmed as exc:
        if exc.final:
            return await _finish(session, event_id, m.EVENT_REJECTED, note=exc.message)
        return await _retry_later(session, event_id, exc.message)
    try:
        return await _credit(session, settings, event_id, parsed, amount, settlement)
    except Exception as exc:  # anything else (a listener, the database): rolled back as a whole
        # The credit's transaction was rolled back as a whole. Record why on the event and retry it on the
        # back-off schedule, so staff see the cause on the event instead of a "received" that never moves.
        log.exception("monnify_event_processing_failed", event_id=event_id)
        await session.rollback()
        return await _retry_later(session, event_id, f"processing failed: {type(exc).__name__}: {exc}")


async def _credit(
    session: AsyncSession,
    settings: Settings,
    event_id: int,
    parsed: MonnifyEvent,
    amount: int,
    settlement: int | None,
) -> str:
    async with session.begin():
        status = (
            await session.execute(
                select(m.MonnifyEvent.status).where(m.MonnifyEvent.id == event_id).with_for_update()
            )
        ).scalar_one()
        if status not in (m.EVENT_RECEIVED, m.EVENT_FAILED):
            return status  # a concurrent delivery or worker got here first
        return await _apply_credit(session, settings, event_id, parsed, amount, settlement)


async def _apply_credit(
    session: AsyncSession,
    settings: Settings,
    event_id: int,
    parsed: MonnifyEvent,
    amount: int,
    settlement: int | None,
) -> str:
    """Credit the event with `monnify_credit` (app/payments/sql/funding.sql, the one funding-credit rule,
    also used by the webhook's one-statement path) in the caller's transaction; the event row is ours."""
    from app.ledger.accounts import (
        EXPENSE_MONNIFY_FEES,
        MONNIFY_CLEARING,
        REVENUE_FUNDING_FEES,
        resolve_accounts,
    )

    fee, monnify_charge = funding_fees(settings, amount, settlement)
    assert parsed.transaction_reference is not None
    # The SQL function only uses accounts that exist: the system ones (a migration opens them) and the
    # customer's wallet (opened at sign-up). Open any that are missing here, as the ledger does on first use.
    owner = (
        await session.execute(select(User.id).where(User.account_reference == parsed.product_reference))
    ).scalar_one_or_none()
    await resolve_accounts(
        session,
        system=(MONNIFY_CLEARING, REVENUE_FUNDING_FEES, EXPENSE_MONNIFY_FEES),
        wallets=[owner] if owner is not None else [],
    )
    connection = await session.connection()
    row = (
        await connection.exec_driver_sql(
            _CREDIT,
            (event_id, parsed.product_reference, parsed.transaction_reference, amount, fee, monnify_charge),
        )
    ).one()
    if row.status == m.EVENT_UNMATCHED:
        log.warning("monnify_event_unmatched", event_id=event_id, reference=parsed.product_reference)
        return m.EVENT_UNMATCHED
    user_id, transaction_id = row.user_id, row.ledger_transaction_id
    funded = WalletFunded(
        user_id=user_id,
        amount_paid_kobo=amount,
        credited_kobo=amount - fee,
        transaction_reference=parsed.transaction_reference,
        ledger_transaction_id=transaction_id,
    )
    await WALLET_FUNDED.emit(session, funded)  # e.g. a referral bonus, in this same transaction
    log.info("wallet_funded", event_id=event_id, user_id=str(user_id), credited_kobo=amount - fee)
    return m.EVENT_CREDITED


async def _mark(session: AsyncSession, event_id: int, **values: Any) -> None:
    await session.execute(update(m.MonnifyEvent).where(m.MonnifyEvent.id == event_id).values(**values))


# Store + credit in one statement (migration 0007): sent with exec_driver_sql, so nothing is compiled per
# request and asyncpg keeps it prepared per connection.
_CREDIT = "SELECT status, user_id, ledger_transaction_id FROM monnify_credit($1, $2, $3, $4, $5, $6)"
_RECEIVE = (
    "SELECT event_id, status, created, user_id, ledger_transaction_id, credit_error "
    "FROM monnify_receive($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)


async def receive_event(
    session: AsyncSession, settings: Settings, payload: Any, raw_body: bytes, remote_ip: str | None
) -> StoredEvent:
    """The webhook's one transaction: store the event and, when no verification call is needed, credit it.

    Both happen in one statement, `monnify_receive(...)`, whose credit step runs in a sub-transaction: if it
    fails, the stored event still commits as `received`. The general crediting path then gets one more try
    here under a savepoint, and after that the worker retries from the stored row. With verification on,
    only the event is stored (the Monnify call belongs to the worker, outside any transaction).
    """
    values, parsed, problem = _event_values(payload, raw_body, remote_ip)
    creditable = (
        parsed is not None
        and _creditable(parsed)
        and parsed.amount_paid_kobo is not None
        and parsed.transaction_reference is not None
        and not settings.monnify_verify_before_credit
    )
    fee = charge = 0
    if creditable:
        assert parsed is not None and parsed.amount_paid_kobo is not None
        amount = parsed.amount_paid_kobo
        fee, charge = funding_fees(settings, amount, parsed.settlement_amount_kobo)
    params = (
        values["dedupe_key"],
        values["event_type"],
        values["transaction_reference"],
        values["product_reference"],
        values["amount_paid_kobo"],
        json.dumps(values["payload"], separators=(",", ":"), ensure_ascii=False),
        values["remote_ip"],
        values["status"],
        values["last_error"],
        creditable,
        fee,
        charge,
    )
    connection = await session.connection()
    row = (await connection.exec_driver_sql(_RECEIVE, params)).one()
    status = row.status
    if problem and row.created:
        log.warning("monnify_event_malformed", event_id=row.event_id, reason=problem)
    if row.status == m.EVENT_UNMATCHED and creditable and row.created:
        log.warning("monnify_event_unmatched", event_id=row.event_id, reference=values["product_reference"])
    # Credited by THIS statement (a replayed webhook finds the event already credited: nothing happened now,
    # so nothing is announced again).
    if row.status == m.EVENT_CREDITED and row.created and row.ledger_transaction_id is not None:
        assert parsed is not None and parsed.amount_paid_kobo is not None
        credited = parsed.amount_paid_kobo - fee
        funded = WalletFunded(
            user_id=row.user_id,
            amount_paid_kobo=parsed.amount_paid_kobo,
            credited_kobo=credited,
            transaction_reference=str(parsed.transaction_reference),
            ledger_transaction_id=row.ledger_transaction_id,
        )
        try:
            await WALLET_FUNDED.emit(session, funded)  # e.g. a referral bonus, in this same transaction
        except Exception:
            # The credit and its listeners' work go together: undo both and keep the event for the worker,
            # whose retry (process_event) credits and emits again.
            log.exception("wallet_funded_listener_failed", event_id=row.event_id)
            await session.rollback()
            stored = await store_event(session, payload, raw_body, remote_ip, commit=True)
            return StoredEvent(stored.id, stored.status, stored.created)
        log.info("wallet_funded", event_id=row.event_id, user_id=str(row.user_id), credited_kobo=credited)
    elif row.credit_error is not None:
        log.warning("monnify_fast_credit_failed", event_id=row.event_id, error=row.credit_error)
        assert parsed is not None and parsed.amount_paid_kobo is not None
        try:
            async with session.begin_nested():
                status = await _apply_credit(
                    session,
                    settings,
                    row.event_id,
                    parsed,
                    parsed.amount_paid_kobo,
                    parsed.settlement_amount_kobo,
                )
        except Exception:
            log.exception("monnify_inline_credit_failed", event_id=row.event_id)
            status = row.status
    await session.commit()
    return StoredEvent(row.event_id, status, row.created)


async def _finish(session: AsyncSession, event_id: int, status: str, *, note: str) -> str:
    async with session.begin():
        result = await session.execute(
            update(m.MonnifyEvent)
            .where(
                m.MonnifyEvent.id == event_id, m.MonnifyEvent.status.in_((m.EVENT_RECEIVED, m.EVENT_FAILED))
            )
            .values(status=status, last_error=note, processed_at=datetime.datetime.now(datetime.UTC))
            .returning(m.MonnifyEvent.status)
        )
        row = result.first()
    return row[0] if row else status


async def _retry_later(session: AsyncSession, event_id: int, error: str) -> str:
    async with session.begin():
        event = await session.get(m.MonnifyEvent, event_id, with_for_update=True)
        assert event is not None
        if event.status not in (m.EVENT_RECEIVED, m.EVENT_FAILED):
            return event.status
        delay = RETRY_SCHEDULE_SECONDS[min(event.attempts, len(RETRY_SCHEDULE_SECONDS) - 1)]
        event.status = m.EVENT_FAILED
        event.attempts += 1
        event.last_error = error[:500]
        event.next_attempt_at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=delay)
    log.warning("monnify_event_retry", event_id=event_id, error=error, retry_in=delay)
    return m.EVENT_FAILED


async def events_due(session: AsyncSession, limit: int = 200) -> list[int]:
    """Stored events still waiting to be processed (lost jobs, failed verifications whose time has come)."""
    now = datetime.datetime.now(datetime.UTC)
    stmt = (
        select(m.MonnifyEvent.id)
        .where(
            (m.MonnifyEvent.status == m.EVENT_RECEIVED)
            | ((m.MonnifyEvent.status == m.EVENT_FAILED) & (m.MonnifyEvent.next_attempt_at <= now))
        )
        .order_by(m.MonnifyEvent.id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())
