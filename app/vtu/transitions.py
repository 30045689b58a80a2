"""Guarded status changes of a purchase, each with its ledger effect in the same DB transaction.

The transitions to a final status are SQL functions (app/vtu/sql/purchases.sql), each the guarded update and
its posting in one statement, which also own the needs-attention rule of a final answer: `purchase_deliver`
(pending -> successful, the delivery), `purchase_fail` (pending -> failed, the refund), `purchase_reverse`
(successful or pending -> reversed, the refund). This module binds them and keeps no copy of their rules.
When the /pay answer, a requery job, a callback and a staff click race, exactly one of them matches the row,
and only that one posts money. Losers just append their provider exchange to the purchase's log. Nothing
here calls a provider or commits: callers run these inside `async with session.begin()`, after the HTTP call
is done.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from sqlalchemy import Boolean, Integer, String, bindparam, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB

from app.core.db import connection_of
from app.core.events import PURCHASE_SETTLED, PurchaseSettled
from app.vtu.errors import database_errors
from app.vtu.models import FAILED, PENDING, SUCCESSFUL
from app.vtu.postings import PurchaseAccounts, purchase_accounts
from app.vtu.providers import Outcome, ProviderResult
from app.vtu.sqlcall import SqlFunction
from app.vtu.views import COLUMNS, FIELD_NAMES, Executor, PurchaseView, purchases_table

log = structlog.get_logger("app.vtu.transitions")

# Attention reasons that a later definite answer clears (note_pending writes them; the rule that clears them
# is purchase_attention_when_final in app/vtu/sql/purchases.sql, which matches this prefix).
UNRESOLVED = "Unresolved:"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def exchange_record(
    kind: str, source: str, started_at: datetime.datetime, result: ProviderResult | None = None, **extra: Any
) -> dict[str, Any]:
    """One entry of `purchases.exchanges`: what we sent and what came back (already redacted)."""
    record: dict[str, Any] = {"kind": kind, "source": source, "at": started_at.isoformat()}
    if result is not None:
        record |= {
            "outcome": result.outcome.value,
            "code": result.code,
            "message": result.message,
            "request": result.request_log,
            "response": result.response_log,
        }
        if result.staff_alert:
            record["staff_alert"] = result.staff_alert
    return record | extra


# Statements are built once with bind parameters: the purchase path runs them thousands of times a
# second, and building SQLAlchemy expressions per call costs more CPU than executing them.
_t = purchases_table
_c = _t.c


def _p(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


def _text(name: str) -> Any:
    return bindparam(name, type_=String())


_APPEND = _c.exchanges.op("||")(bindparam("exchange", type_=JSONB()))
_ANSWER = {
    "exchanges": _APPEND,
    "updated_at": _p("now", _c.updated_at),
    "provider_message": func.coalesce(_text("message"), _c.provider_message),
    "provider_code": func.coalesce(_text("code"), _c.provider_code),
    "provider_reference": func.coalesce(_text("reference"), _c.provider_reference),
}


def _returning_purchase(stmt: Any) -> Any:
    return stmt.returning(*COLUMNS)


# Anything that is not a transition: log the exchange; optionally move the requery schedule or flag staff
# (raising a flag only: the rule for a final answer is purchase_attention_when_final, in SQL).
_NOTE = _returning_purchase(
    update(_t)
    .where(_c.id == _p("pid", _c.id))
    .values(
        **_ANSWER,
        attempts=func.coalesce(bindparam("attempt", type_=Integer()), _c.attempts),
        next_requery_at=case(
            (bindparam("move_schedule", type_=Boolean()), _p("next", _c.next_requery_at)),
            else_=_c.next_requery_at,
        ),
        needs_attention=or_(_c.needs_attention, _text("alert").is_not(None)),
        attention_reason=func.coalesce(_text("alert"), _c.attention_reason),
    )
)
_APPEND_ONLY = update(_t).where(_c.id == _p("pid", _c.id)).values(exchanges=_APPEND)
_LOCK_STATUS = (
    select(_c.status, _c.attempts, _c.requery_base, _c.request_id)
    .where(_c.id == _p("pid", _c.id))
    .with_for_update()
)


# Staff acknowledge a flag on a FINAL purchase (an alert they have handled). A pending purchase keeps its flag
# until it is settled: clearing it would hide a purchase nobody has resolved.
_CLEAR_ATTENTION = _returning_purchase(
    update(_t)
    .where(_c.id == _p("pid", _c.id), _c.needs_attention, _c.status != PENDING)
    .values(needs_attention=False, exchanges=_APPEND)
)


async def clear_attention(
    session: Executor, purchase_id: uuid.UUID, record: dict[str, Any]
) -> PurchaseView | None:
    """Clear a final purchase's needs-attention flag, logging `record`; None when it was not flagged or is
    still pending (nothing changes then)."""
    return await _run(session, _CLEAR_ATTENTION, {"pid": purchase_id, "exchange": [record]})


def _params(
    purchase_id: uuid.UUID, result: ProviderResult | None, record: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    params = {
        "pid": purchase_id,
        "exchange": [record],
        "now": utcnow(),
        "message": result.message[:2000] if result else None,
        "code": result.code[:8] if result and result.code else None,
        "reference": (result.provider_reference or "")[:64] or None if result else None,
        "token": (result.token or "")[:128] or None if result else None,
        "units": (result.units or "")[:64] or None if result else None,
        "alert": result.staff_alert if result else None,
    }
    return params | extra


async def append_exchange(session: Executor, purchase_id: uuid.UUID, record: dict[str, Any]) -> None:
    """Log an exchange that changes nothing by itself (e.g. what a callback claimed)."""
    await session.execute(_APPEND_ONLY, {"pid": purchase_id, "exchange": [record]})


@dataclass(frozen=True, slots=True)
class Applied:
    purchase: PurchaseView
    changed: bool  # this call moved the status (and posted the money)
    previous_status: str | None = None  # the status it moved from, when changed


async def _run(session: Executor, stmt: Any, params: dict[str, Any]) -> PurchaseView | None:
    row = (await session.execute(stmt, params)).one_or_none()
    return PurchaseView.from_row(row) if row is not None else None


async def _record_only(
    session: Executor, purchase_id: uuid.UUID, result: ProviderResult | None, record: dict[str, Any]
) -> PurchaseView | None:
    """Append the exchange; flag the purchase when the provider now contradicts a final status we applied."""
    row = (await session.execute(_LOCK_STATUS, {"pid": purchase_id})).one_or_none()
    if row is None:
        return None
    conflict = None
    if result is not None and record.get("kind") in ("pay", "requery"):  # the provider contradicts us
        if row.status == FAILED and result.outcome is Outcome.DELIVERED:
            conflict = (
                "Provider now reports DELIVERED for a purchase we failed and refunded: recover the value"
            )
        elif row.status == SUCCESSFUL and result.outcome is Outcome.FAILED:
            conflict = "Provider now reports FAILED for a purchase it delivered: confirm before any refund"
    if conflict:
        log.warning(
            "purchase_provider_conflict", purchase_id=str(purchase_id), status=row.status, reason=conflict
        )
    # The final status keeps its own code and message; this answer is only logged.
    params = _params(purchase_id, None, record, alert=conflict, attempt=None, move_schedule=False, next=None)
    return await _run(session, _NOTE, params)


# The transitions to a final status, each the guarded update and its posting in one statement
# (app/vtu/sql/purchases.sql). Each binding names every SQL argument and the key of its value in
# `_final_values`: the provider's answer first (the same for all three), then the accounts posted to.
_ANSWER_ARGS = (
    ("p_id", "pid"), ("p_exchange", "exchange"), ("p_now", "now"), ("p_message", "message"),
    ("p_code", "code"), ("p_reference", "reference"), ("p_token", "token"), ("p_units", "units"),
    ("p_alert", "alert"),
)  # fmt: skip
# pending -> successful and `delivery:<id>` (in flight -> provider float + revenue).
PURCHASE_DELIVER = SqlFunction(
    "purchase_deliver",
    "*",
    (
        *_ANSWER_ARGS, ("p_in_flight_id", "in_flight"), ("p_float_id", "provider_float"),
        ("p_revenue_id", "revenue"), ("p_pins", "pins"),
    ),
)  # fmt: skip
# pending -> failed and `refund:<id>` (in flight -> wallet).
PURCHASE_FAIL = SqlFunction(
    "purchase_fail", "*", (*_ANSWER_ARGS, ("p_wallet_id", "wallet"), ("p_in_flight_id", "in_flight"))
)
# successful or pending -> reversed and `refund:<id>` (undoing the delivery split, or from in flight); also
# returns the status it left.
PURCHASE_REVERSE = SqlFunction(
    "purchase_reverse",
    "previous_status, (purchase).*",
    (
        *_ANSWER_ARGS, ("p_wallet_id", "wallet"), ("p_in_flight_id", "in_flight"),
        ("p_float_id", "provider_float"), ("p_revenue_id", "revenue"),
    ),
)  # fmt: skip
_OWNER = "SELECT user_id, provider_slug FROM purchases WHERE id = $1"


def _final_values(
    function: SqlFunction,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    accounts: PurchaseAccounts,
) -> tuple[Any, ...]:
    params = _params(purchase_id, result, record)
    params["exchange"] = json.dumps(params["exchange"])
    ids = {
        "wallet": accounts.wallet,
        "in_flight": accounts.in_flight,
        "provider_float": accounts.provider_float,
        "revenue": accounts.revenue,
        "pins": result.sealed_pins,  # exam PINs, encrypted (app/vtu/exam.py); purchase_deliver only
    }
    return function.values(params | ids)


def _from_row(row: Any) -> PurchaseView:
    values = {name: row[name] for name in FIELD_NAMES}
    if isinstance(values["exchanges"], str):  # jsonb through the driver may arrive as text
        values["exchanges"] = json.loads(values["exchanges"])
    return PurchaseView.from_mapping(values)


async def _accounts_of(
    conn: Any, purchase_id: uuid.UUID, accounts: PurchaseAccounts | None
) -> PurchaseAccounts | None:
    """The purchase's ledger accounts: `accounts` when the caller has them (the /pay answer, from
    purchase_open), else looked up (requeries, callbacks, staff), opening any missing one (a provider float
    is opened on first use). None when there is no such purchase."""
    if accounts is not None:
        return accounts
    owner = (await conn.exec_driver_sql(_OWNER, (purchase_id,))).first()
    if owner is None:
        return None
    return await purchase_accounts(conn, owner.user_id, owner.provider_slug)


async def _call_final(
    session: Executor,
    function: SqlFunction,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    accounts: PurchaseAccounts | None,
    *,
    key: str,
) -> Any:
    """Run one final transition; its row (None when the purchase was not in a status it moves from)."""
    conn = await connection_of(session)
    found = await _accounts_of(conn, purchase_id, accounts)
    if found is None:
        return None
    arguments = _final_values(function, purchase_id, result, record, found)
    with database_errors(key=key):
        row = (await conn.exec_driver_sql(function.statement, arguments)).first()
    return row._mapping if row is not None else None


async def mark_delivered(
    session: Executor,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    accounts: PurchaseAccounts | None = None,
) -> PurchaseView | None:
    row = await _call_final(
        session, PURCHASE_DELIVER, purchase_id, result, record, accounts, key=f"delivery:{purchase_id}"
    )
    if row is None:
        return None
    purchase = _from_row(row)
    await _settled(session, purchase, previous=PENDING)
    return purchase


async def deliver_alone(
    driver: asyncpg.Connection,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    accounts: PurchaseAccounts,
) -> PurchaseView | None:
    """mark_delivered as a transaction of its own, sent on a bare driver connection outside any
    transaction. Only for a settlement no in-transaction listener wants (the caller checks
    PURCHASE_SETTLED.wanted): nothing else is written with it. None when the purchase was not pending."""
    arguments = _final_values(PURCHASE_DELIVER, purchase_id, result, record, accounts)
    with database_errors(key=f"delivery:{purchase_id}"):
        row = await driver.fetchrow(PURCHASE_DELIVER.statement, *arguments)
    return _from_row(row) if row is not None else None


async def mark_failed(
    session: Executor,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    accounts: PurchaseAccounts | None = None,
) -> PurchaseView | None:
    """pending -> failed with the refund (purchase_fail); None when it was not pending."""
    row = await _call_final(
        session, PURCHASE_FAIL, purchase_id, result, record, accounts, key=f"refund:{purchase_id}"
    )
    if row is None:
        return None
    purchase = _from_row(row)
    await _settled(session, purchase, previous=PENDING)
    return purchase


async def mark_reversed(
    session: Executor,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    accounts: PurchaseAccounts | None = None,
) -> PurchaseView | None:
    return (await _reverse(session, purchase_id, result, record, accounts))[0]


async def _reverse(
    session: Executor,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    accounts: PurchaseAccounts | None,
) -> tuple[PurchaseView | None, str]:
    """Delivered, then undone by the provider (purchase_reverse): from `successful` the delivery split is
    undone; from `pending` (we never saw the delivery) the money is still in flight. Returns the purchase and
    the status it left (None, PENDING when it was neither)."""
    row = await _call_final(
        session, PURCHASE_REVERSE, purchase_id, result, record, accounts, key=f"refund:{purchase_id}"
    )
    if row is None:
        return None, PENDING
    purchase, previous = _from_row(row), row["previous_status"]
    await _settled(session, purchase, previous=previous)
    return purchase, previous


def log_transition(purchase: PurchaseView, result: ProviderResult, record: dict[str, Any]) -> None:
    log.info("purchase_transition", purchase_id=str(purchase.id), status=purchase.status,
             code=result.code, source=record.get("source"))  # fmt: skip


def settled_event(purchase: PurchaseView, *, previous: str) -> PurchaseSettled:
    return PurchaseSettled(
        purchase_id=purchase.id,
        user_id=purchase.user_id,
        status=purchase.status,
        previous_status=previous,
        service_id=purchase.service_id,
        amount_kobo=purchase.amount_kobo,
        cost_kobo=purchase.cost_kobo,
        margin_kobo=purchase.margin_kobo,
        api_key_id=purchase.api_key_id,
        settled_at=purchase.completed_at or utcnow(),
        provider_slug=purchase.provider_slug,
    )


async def _settled(session: Executor, purchase: PurchaseView, *, previous: str) -> None:
    """Tell listeners (referral bonuses, ...) inside this transaction, after the money moved."""
    await PURCHASE_SETTLED.emit(session, settled_event(purchase, previous=previous))


async def note_pending(
    session: Executor,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    *,
    attempt: int | None,
    schedule: Sequence[int],
) -> PurchaseView | None:
    """Still unknown: log it, and for scheduled requery `attempt` move the schedule on (or, after the last
    one, flag the purchase for staff; it is never refunded blind). Returns None if the purchase is final."""
    row = (await session.execute(_LOCK_STATUS, {"pid": purchase_id})).one_or_none()
    if row is None or row.status != PENDING:
        return None
    extra: dict[str, Any] = {"attempt": None, "move_schedule": False, "next": None}
    if attempt is not None and attempt > row.attempts:
        extra |= {"attempt": attempt, "move_schedule": True}
        # The schedule restarts with each provider attempt (requery_base: requeries before it).
        done = attempt - row.requery_base
        if done < len(schedule):
            extra["next"] = utcnow() + datetime.timedelta(seconds=schedule[done])
        else:  # the schedule is over: the purchase stays pending, flagged, never refunded blind
            extra["alert"] = result.staff_alert or (
                f"{UNRESOLVED} still unknown after {attempt} {'requery' if attempt == 1 else 'requeries'} "
                f"({result.message}). Confirm with the "
                "provider before refunding: a delivered top-up refunded is money lost."
            )
            log.warning("purchase_unresolved", purchase_id=str(purchase_id), attempts=attempt)
    return await _run(session, _NOTE, _params(purchase_id, result, record) | extra)


async def _stale_attempt(
    session: Executor,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    request_id: str,
) -> Applied | None:
    """Lock the purchase (held until the caller's transaction ends, so no attempt can start meanwhile);
    when it is pending on another attempt than `request_id`, log this answer as not applied."""
    row = (await session.execute(_LOCK_STATUS, {"pid": purchase_id})).one_or_none()
    if row is None or row.status != PENDING or row.request_id == request_id:
        return None
    alert = None
    if result.outcome is Outcome.DELIVERED:
        alert = (
            f"Provider reports DELIVERED for an earlier attempt ({request_id}) that had placed nothing; the "
            f"purchase is pending on {row.request_id}: check both with the providers before anything else"
        )
        log.error("purchase_stale_attempt_delivered", purchase_id=str(purchase_id), request_id=request_id)
    else:
        log.info("purchase_stale_attempt_answer", purchase_id=str(purchase_id), request_id=request_id)
    params = _params(purchase_id, None, {**record, "applied": False}, alert=alert, attempt=None,
                     move_schedule=False, next=None)  # fmt: skip
    current = await _run(session, _NOTE, params)
    return Applied(current, changed=False) if current is not None else None


async def apply_result(
    session: Executor,
    purchase_id: uuid.UUID,
    result: ProviderResult,
    record: dict[str, Any],
    *,
    attempt: int | None = None,
    schedule: Sequence[int] = (),
    accounts: PurchaseAccounts | None = None,
    request_id: str | None = None,
) -> Applied | None:
    """Apply one provider answer. Returns the purchase as it is now, and whether this call changed it.
    `accounts`: the purchase's ledger account ids if the caller already has them (saves a query).
    `request_id`: the provider attempt the answer is about (None: a staff decision, about the purchase).
    An answer about an earlier attempt of a purchase still pending on a later one changes nothing: it is
    logged `applied: false` (a DELIVERED one also flags the purchase: that attempt had placed nothing, so
    the provider contradicts itself and the value may have gone out twice)."""
    if request_id is not None:
        stale = await _stale_attempt(session, purchase_id, result, record, request_id)
        if stale is not None:
            return stale
    changed: PurchaseView | None
    previous = PENDING
    if result.outcome is Outcome.DELIVERED:
        changed = await mark_delivered(session, purchase_id, result, record, accounts)
    elif result.outcome is Outcome.FAILED:
        changed = await mark_failed(session, purchase_id, result, record, accounts)
    elif result.outcome is Outcome.REVERSED:
        changed, previous = await _reverse(session, purchase_id, result, record, accounts)
    else:
        pending = await note_pending(session, purchase_id, result, record, attempt=attempt, schedule=schedule)
        if pending is not None:
            return Applied(pending, changed=False)
        changed = None
    if changed is not None:
        log_transition(changed, result, record)
        return Applied(changed, changed=True, previous_status=previous)
    # Not applied (the purchase had already left the state this answer moves it from): logged as such, so a
    # staff decision or a late answer that lost a race never reads like the one that settled the purchase.
    current = await _record_only(session, purchase_id, result, {**record, "applied": False})
    return Applied(current, changed=False) if current is not None else None


__all__ = [
    "PURCHASE_DELIVER",
    "PURCHASE_FAIL",
    "PURCHASE_REVERSE",
    "UNRESOLVED",
    "Applied",
    "append_exchange",
    "apply_result",
    "clear_attention",
    "deliver_alone",
    "exchange_record",
    "log_transition",
    "mark_delivered",
    "mark_failed",
    "mark_reversed",
    "note_pending",
    "settled_event",
    "utcnow",
]
