"""Read-only queries behind the staff funding console (/staff/funding). Nothing here writes: events change
only through app.payments.funding (process_event), money only through app.ledger.

- `funding_counts`: the figures at the top (credited today, unmatched, failed, rejected, stuck, reservations).
- `needs_action`: what matters at 2 a.m. (unmatched, failed, rejected, and received events nobody processed).
- `list_events`: the filtered list, newest first, keyset-paginated on the event id.
- `event_detail`, `event_ledger`: one event in full, with the customer it belongs to and its ledger posting.
- `find_customer`, `customer_events`, `stuck_reservations`: the customer's funding view.

An event's customer: the user it was credited to (`user_id`, set when credited) or, before that (received,
failed, rejected), the user whose account reference the transfer names (`product_reference`).
"""

from __future__ import annotations

import contextlib
import datetime
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, union_all

from app.accounts.models import User
from app.core.keyset import decode_id
from app.core.lagos import lagos_midnight
from app.core.naira import amount_in_search
from app.core.validation import InvalidPhone, escape_like, normalise_phone
from app.dashboard.purchase_queries import LedgerTxn, ledger_transactions
from app.ledger.models import LedgerTransaction
from app.ledger.queries import wallet_balance
from app.payments import models as m
from app.payments.ledger_postings import funding_key

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
NEEDS_ACTION_LIMIT = 50
CUSTOMER_EVENTS = 50
STUCK_RESERVATIONS_LIMIT = 20
# Event states in the order staff think about them; every value the `status` column can hold.
STATUSES = (
    m.EVENT_RECEIVED,
    m.EVENT_CREDITED,
    m.EVENT_FAILED,
    m.EVENT_UNMATCHED,
    m.EVENT_REJECTED,
    m.EVENT_IGNORED,
)
NEEDS_ACTION = (m.EVENT_UNMATCHED, m.EVENT_FAILED, m.EVENT_REJECTED)
# Monnify's webhook event types (docs), and UNKNOWN: what a body without a usable eventType is stored as.
EVENT_TYPES = (
    "SUCCESSFUL_TRANSACTION",
    "SUCCESSFUL_REFUND",
    "FAILED_REFUND",
    "SUCCESSFUL_DISBURSEMENT",
    "FAILED_DISBURSEMENT",
    "REVERSED_DISBURSEMENT",
    "SETTLEMENT",
    "MANDATE_UPDATE",
    "UNKNOWN",
)
# A `received` event is credited within a second (webhook) or a few (worker): older means nobody did it.
STUCK_AFTER = datetime.timedelta(minutes=5)
# A failed event whose retry time passed this long ago was not picked up: is the worker (sweep) running?
OVERDUE_AFTER = datetime.timedelta(minutes=2)
# Reserved accounts are requested within seconds of sign-up; still pending after this is a problem.
RESERVATION_STALE_AFTER = datetime.timedelta(minutes=10)

_e = m.MonnifyEvent.__table__.c
_u = User.__table__.c
_r = m.ReservedAccount.__table__.c
_b = m.ReservedBankAccount.__table__.c

# The customer of an event: credited to (user_id) or, not credited yet, named by its account reference.
_CUSTOMER = or_(_u.id == _e.user_id, and_(_e.user_id.is_(None), _u.account_reference == _e.product_reference))
_FROM = m.MonnifyEvent.__table__.outerjoin(User.__table__, _CUSTOMER)


# -- rows -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EventRow:
    """One line of the staff list (no payload: the JSONB body is loaded on the detail page only)."""

    id: int
    created_at: datetime.datetime
    event_type: str
    status: str
    transaction_reference: str | None
    product_reference: str | None
    amount_paid_kobo: int | None
    credited_kobo: int | None
    fee_kobo: int | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime.datetime | None
    processed_at: datetime.datetime | None
    user_id: uuid.UUID | None  # set once credited
    customer_id: uuid.UUID | None  # user_id, or the owner of the account reference
    email: str | None
    phone: str | None

    @property
    def matched(self) -> bool:
        """Credited to a customer (not just naming one)."""
        return self.user_id is not None


_ROW_COLUMNS = (
    _e.id, _e.created_at, _e.event_type, _e.status, _e.transaction_reference, _e.product_reference,
    _e.amount_paid_kobo, _e.credited_kobo, _e.fee_kobo, _e.attempts, _e.last_error, _e.next_attempt_at,
    _e.processed_at, _e.user_id, _u.id.label("customer_id"), _u.email.label("email"),
    _u.phone.label("phone"),
)  # fmt: skip


def _rows(result: Any) -> list[EventRow]:
    return [EventRow(**dict(row._mapping)) for row in result]


# -- filters, search and the keyset cursor --------------------------------------------------------------
_EVENT_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_ACCOUNT_NUMBER = re.compile(r"^[0-9]{10}$")


@dataclass(frozen=True, slots=True)
class EventFilter:
    status: str | None = None  # one of STATUSES
    event_type: str | None = None  # e.g. SUCCESSFUL_TRANSACTION
    q: str = ""  # transaction / account reference, customer e-mail or phone, account number, amount in naira

    @classmethod
    def from_query(cls, *, status: str | None, event_type: str | None, q: str | None) -> EventFilter:
        """Lenient parsing of query-string values: anything unknown is simply not applied."""
        status = (status or "").strip().lower()
        kind = (event_type or "").strip().upper()
        return cls(
            status=status if status in STATUSES else None,
            event_type=kind if _EVENT_TYPE.fullmatch(kind) else None,
            q=(q or "").strip()[:100],
        )

    @property
    def active(self) -> bool:
        return bool(self.status or self.event_type or self.q)

    def query_args(self) -> dict[str, str]:
        """The filter as query-string arguments (for links to the next page)."""
        args: dict[str, str] = {}
        if self.status:
            args["status"] = self.status
        if self.event_type:
            args["type"] = self.event_type
        if self.q:
            args["q"] = self.q
        return args


def decode_cursor(raw: str | None) -> int | None:
    return decode_id(raw)


# The customer table and the events table again, for the search (`search_clause`): each arm selects the
# ids of the events it matches from an index of its own, and the page keeps the events whose id is among
# them. (The same arms OR-ed on the event itself are evaluated as filters over every event: PostgreSQL
# hashes an `IN (subquery)` under an OR and walks the id index from the newest end, ~400 ms at 300,000
# events when few or none match.)
_cu = User.__table__.alias("searched_user").c
_se = m.MonnifyEvent.__table__.alias("searched_event").c


def _customer_matches(condition: ColumnElement[bool]) -> list[Select[Any]]:
    """The ids of events whose customer (`_CUSTOMER`: credited to, or named by the account reference when
    not credited) satisfies `condition` (on `_cu`): events by user_id, and events not credited by
    product_reference, each an index look-up."""
    return [
        select(_se.id).where(_se.user_id.in_(select(_cu.id).where(condition))),
        select(_se.id).where(
            _se.user_id.is_(None), _se.product_reference.in_(select(_cu.account_reference).where(condition))
        ),
    ]


def search_clause(q: str) -> ColumnElement[bool] | None:
    """What staff paste: (part of) the customer's e-mail, a user id, or any of: Monnify's transaction
    reference, the account (product) reference, the customer's phone (any spelling), the reserved account
    number the customer paid into, or the exact amount paid in naira. As `id IN (the union of each
    meaning's matching event ids)`."""
    q = q.strip()
    if not q:
        return None
    arms: list[Select[Any]]
    if "@" in q:
        arms = _customer_matches(_cu.email.ilike(f"%{escape_like(q.lower())}%", escape="\\"))
        return _e.id.in_(union_all(*arms))
    try:
        as_uuid = uuid.UUID(q)
    except ValueError:
        pass
    else:
        return _e.id.in_(union_all(*_customer_matches(_cu.id == as_uuid)))
    arms = [
        select(_se.id).where(_se.transaction_reference == q),
        select(_se.id).where(_se.product_reference.in_(sorted({q, q.upper()}))),
    ]
    with contextlib.suppress(InvalidPhone):
        arms += _customer_matches(_cu.phone == normalise_phone(q))
    if _ACCOUNT_NUMBER.fullmatch(q):
        paid_into = (
            select(_r.account_reference)
            .select_from(
                m.ReservedAccount.__table__.join(m.ReservedBankAccount.__table__, _b.reservation_id == _r.id)
            )
            .where(_b.account_number == q)
        )
        arms.append(select(_se.id).where(_se.product_reference.in_(paid_into)))
    kobo = amount_in_search(q)
    if kobo is not None:
        arms.append(select(_se.id).where(_se.amount_paid_kobo == kobo))
    return _e.id.in_(union_all(*arms))


def _where(f: EventFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.status:
        conditions.append(_e.status == f.status)
    if f.event_type:
        conditions.append(_e.event_type == f.event_type)
    found = search_clause(f.q)
    if found is not None:
        conditions.append(found)
    return conditions


@dataclass(frozen=True, slots=True)
class EventPage:
    rows: list[EventRow]
    next_cursor: str | None  # pass as `before` for the next (older) page


async def list_events(
    session: AsyncSession, f: EventFilter, *, before: str | None = None, limit: int = PAGE_SIZE
) -> EventPage:
    """Newest first; keyset on the id (an identity: later rows get larger ids), so page N costs as page 1."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(*_ROW_COLUMNS).select_from(_FROM).where(*_where(f))
    cursor = decode_cursor(before)
    if cursor is not None:
        query = query.where(_e.id < cursor)
    rows = _rows(await session.execute(query.order_by(_e.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(rows, str(rows[-1].id) if more and rows else None)


async def needs_action(
    session: AsyncSession, *, now: datetime.datetime, limit: int = NEEDS_ACTION_LIMIT
) -> list[EventRow]:
    """Unmatched, failed and rejected events, and received events nobody processed, newest first."""
    query = (
        select(*_ROW_COLUMNS)
        .select_from(_FROM)
        .where(
            or_(
                _e.status.in_(NEEDS_ACTION),
                and_(_e.status == m.EVENT_RECEIVED, _e.created_at < now - STUCK_AFTER),
            )
        )
        .order_by(_e.id.desc())
        .limit(max(1, min(limit, MAX_PAGE_SIZE)))
    )
    return _rows(await session.execute(query))


# -- counts ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FundingCounts:
    since: datetime.datetime  # Lagos midnight: "today" starts here
    credited_today: int  # by processed_at
    credited_today_kobo: int  # what reached wallets
    paid_today_kobo: int  # what customers sent for those credits
    unmatched: int
    unmatched_kobo: int
    failed: int  # waiting for the worker's next retry
    failed_overdue: int  # ... whose retry time passed more than OVERDUE_AFTER ago
    rejected: int
    stuck: int  # received more than STUCK_AFTER ago and still not processed
    reservations_failed: int  # active customers whose reserved accounts Monnify refused / was down
    reservations_pending: int  # ... still pending after RESERVATION_STALE_AFTER
    last_event_at: datetime.datetime | None  # the latest notification from Monnify (are webhooks arriving?)

    @property
    def reservations_not_ready(self) -> int:
        return self.reservations_failed + self.reservations_pending

    @property
    def needs_action(self) -> int:
        return self.unmatched + self.failed + self.rejected + self.stuck


def _events(*where: ColumnElement[bool], what: Any = None) -> Any:
    return (
        select(what if what is not None else func.count())
        .select_from(m.MonnifyEvent.__table__)
        .where(*where)
        .scalar_subquery()
    )


def _not_ready(now: datetime.datetime) -> list[ColumnElement[bool]]:
    return [
        _u.is_active.is_(True),
        or_(
            _r.status == m.RESERVATION_FAILED,
            and_(_r.status == m.RESERVATION_PENDING, _r.created_at < now - RESERVATION_STALE_AFTER),
        ),
    ]


def _reservations(status: str, now: datetime.datetime) -> Any:
    return (
        select(func.count())
        .select_from(m.ReservedAccount.__table__.join(User.__table__, _u.id == _r.user_id))
        .where(*_not_ready(now), _r.status == status)
        .scalar_subquery()
    )


async def funding_counts(session: AsyncSession, *, now: datetime.datetime) -> FundingCounts:
    """One round trip of independent scalar subqueries."""
    since = lagos_midnight(now)
    credited = [_e.status == m.EVENT_CREDITED, _e.processed_at >= since]
    unmatched = _e.status == m.EVENT_UNMATCHED
    failed = _e.status == m.EVENT_FAILED
    query = select(
        _events(*credited).label("credited_today"),
        _events(*credited, what=func.coalesce(func.sum(_e.credited_kobo), 0)).label("credited_today_kobo"),
        _events(*credited, what=func.coalesce(func.sum(_e.amount_paid_kobo), 0)).label("paid_today_kobo"),
        _events(unmatched).label("unmatched"),
        _events(unmatched, what=func.coalesce(func.sum(_e.amount_paid_kobo), 0)).label("unmatched_kobo"),
        _events(failed).label("failed"),
        _events(failed, _e.next_attempt_at < now - OVERDUE_AFTER).label("failed_overdue"),
        _events(_e.status == m.EVENT_REJECTED).label("rejected"),
        _events(_e.status == m.EVENT_RECEIVED, _e.created_at < now - STUCK_AFTER).label("stuck"),
        _reservations(m.RESERVATION_FAILED, now).label("reservations_failed"),
        _reservations(m.RESERVATION_PENDING, now).label("reservations_pending"),
        select(_e.created_at).order_by(_e.id.desc()).limit(1).scalar_subquery().label("last_event_at"),
    )
    row = dict((await session.execute(query)).one()._mapping)
    last: datetime.datetime | None = row.pop("last_event_at")
    return FundingCounts(since=since, last_event_at=last, **{name: int(value) for name, value in row.items()})


# -- customers ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Customer:
    id: uuid.UUID
    email: str
    full_name: str
    phone: str | None
    tier: str
    is_active: bool
    is_staff: bool
    account_reference: str
    created_at: datetime.datetime
    balance_kobo: int  # the wallet now


_CUSTOMER_COLUMNS = (
    _u.id, _u.email, _u.full_name, _u.phone, _u.tier, _u.is_active, _u.is_staff, _u.account_reference,
    _u.created_at,
)  # fmt: skip


async def _customer_where(session: AsyncSession, condition: ColumnElement[bool]) -> Customer | None:
    row = (
        await session.execute(select(*_CUSTOMER_COLUMNS).where(condition).order_by(_u.created_at).limit(1))
    ).one_or_none()
    if row is None:
        return None
    return Customer(**dict(row._mapping), balance_kobo=await wallet_balance(session, row.id))


async def find_customer(session: AsyncSession, q: str) -> Customer | None:
    """Exact look-up by e-mail, phone (any spelling), account reference, reserved account number or user
    id: the customer on the phone says one of these."""
    q = q.strip()[:254]
    if not q:
        return None
    try:
        return await _customer_where(session, _u.id == uuid.UUID(q))
    except ValueError:
        pass
    if "@" in q:
        return await _customer_where(session, _u.email == q.lower())
    found: list[ColumnElement[bool]] = [_u.account_reference.in_(sorted({q, q.upper()}))]
    with contextlib.suppress(InvalidPhone):
        found.append(_u.phone == normalise_phone(q))
    if _ACCOUNT_NUMBER.fullmatch(q):
        owner = (
            select(_r.user_id)
            .select_from(
                m.ReservedAccount.__table__.join(m.ReservedBankAccount.__table__, _b.reservation_id == _r.id)
            )
            .where(_b.account_number == q)
        )
        found.append(_u.id.in_(owner))
    return await _customer_where(session, or_(*found))


async def customer_by_id(session: AsyncSession, user_id: uuid.UUID) -> Customer | None:
    return await _customer_where(session, _u.id == user_id)


async def customer_events(
    session: AsyncSession, customer: Customer, *, limit: int = CUSTOMER_EVENTS
) -> list[EventRow]:
    """The customer's funding events, newest first: credited to them, or naming their account reference."""
    query = (
        select(*_ROW_COLUMNS)
        .select_from(_FROM)
        .where(
            or_(
                _e.user_id == customer.id,
                and_(_e.user_id.is_(None), _e.product_reference == customer.account_reference),
            )
        )
        .order_by(_e.id.desc())
        .limit(max(1, min(limit, MAX_PAGE_SIZE)))
    )
    return _rows(await session.execute(query))


@dataclass(frozen=True, slots=True)
class StuckReservation:
    user_id: uuid.UUID
    email: str
    phone: str | None
    account_reference: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


async def stuck_reservations(
    session: AsyncSession, *, now: datetime.datetime, limit: int = STUCK_RESERVATIONS_LIMIT
) -> list[StuckReservation]:
    """Active customers without bank accounts to pay into: failed, or pending too long; oldest first."""
    query = (
        select(
            _r.user_id,
            _u.email,
            _u.phone,
            _r.account_reference,
            _r.status,
            _r.attempts,
            _r.last_error,
            _r.created_at,
            _r.updated_at,
        )
        .select_from(m.ReservedAccount.__table__.join(User.__table__, _u.id == _r.user_id))
        .where(*_not_ready(now))
        .order_by(_r.created_at, _r.id)
        .limit(max(1, min(limit, MAX_PAGE_SIZE)))
    )
    return [StuckReservation(**dict(row._mapping)) for row in await session.execute(query)]


# -- one event ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EventDetail:
    row: EventRow
    dedupe_key: str
    payload: dict[str, Any]
    remote_ip: str | None
    ledger_transaction_id: int | None
    updated_at: datetime.datetime


async def event_detail(session: AsyncSession, event_id: int) -> EventDetail | None:
    query = (
        select(
            *_ROW_COLUMNS,
            _e.dedupe_key,
            _e.payload,
            _e.remote_ip,
            _e.ledger_transaction_id,
            _e.updated_at,
        )
        .select_from(_FROM)
        .where(_e.id == event_id)
        .limit(1)  # the join matches at most one user, defensively
    )
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    values = dict(row._mapping)
    extra = {
        k: values.pop(k)
        for k in ("dedupe_key", "payload", "remote_ip", "ledger_transaction_id", "updated_at")
    }
    return EventDetail(row=EventRow(**values), **extra)


async def event_ledger(session: AsyncSession, event: EventDetail) -> list[LedgerTxn]:
    """The ledger transaction the event posted (by its id, its reference, or the transfer's funding key)."""
    t = LedgerTransaction.__table__.c
    about: list[ColumnElement[bool]] = [
        and_(t.reference_type == "monnify_event", t.reference_id == str(event.row.id))
    ]
    if event.ledger_transaction_id is not None:
        about.append(t.id == event.ledger_transaction_id)
    if event.row.transaction_reference:
        about.append(t.idempotency_key == funding_key(event.row.transaction_reference))
    return await ledger_transactions(session, or_(*about))


# -- unmatched transfers (/staff/funding/unmatched) ----------------------------------------------------
UNMATCHED_LIMIT = 50  # each comes with its payer's details and a form: the oldest first, a page's worth
ASSIGNED_LIMIT = 30


@dataclass(frozen=True, slots=True)
class UnmatchedTransfer:
    """An unmatched event with what its webhook body says about the payer (lenient: bodies vary)."""

    id: int
    created_at: datetime.datetime
    event_type: str
    status: str
    transaction_reference: str | None
    product_reference: str | None
    amount_paid_kobo: int | None
    last_error: str | None
    payment_reference: str | None
    paid_on: str | None
    sender_name: str | None
    sender_account: str | None
    sender_bank: str | None
    paid_into: str | None
    customer_name: str | None  # Monnify's `customer` block (who the reserved account was made for)
    customer_email: str | None
    # assigned ones
    user_id: uuid.UUID | None = None
    email: str | None = None
    credited_kobo: int | None = None
    assigned_by: str | None = None
    assigned_at: datetime.datetime | None = None
    assignment_reason: str | None = None


def _txt(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text or None


def payer_facts(payload: Any) -> dict[str, Any]:
    data = payload.get("eventData") if isinstance(payload, dict) else None
    data = data if isinstance(data, dict) else {}
    sources = data.get("paymentSourceInformation")
    source = sources[0] if isinstance(sources, list) and sources else sources
    source = source if isinstance(source, dict) else {}
    dest = data.get("destinationAccountInformation")
    dest = dest if isinstance(dest, dict) else {}
    customer = data.get("customer")
    customer = customer if isinstance(customer, dict) else {}
    paid_into = " · ".join(t for t in (_txt(dest.get("bankName")), _txt(dest.get("accountNumber"))) if t)
    return {
        "payment_reference": _txt(data.get("paymentReference")),
        "paid_on": _txt(data.get("paidOn")),
        "sender_name": _txt(source.get("accountName")),
        "sender_account": _txt(source.get("accountNumber")),
        "sender_bank": _txt(source.get("bankName")) or _txt(source.get("bankCode")),
        "paid_into": paid_into or None,
        "customer_name": _txt(customer.get("name")),
        "customer_email": _txt(customer.get("email")),
    }


_UNMATCHED_COLUMNS = (
    _e.id, _e.created_at, _e.event_type, _e.status, _e.transaction_reference, _e.product_reference,
    _e.amount_paid_kobo, _e.last_error, _e.payload,
)  # fmt: skip


def _unmatched(row: Any, **extra: Any) -> UnmatchedTransfer:
    values = dict(row._mapping)
    payload = values.pop("payload")
    return UnmatchedTransfer(**values, **payer_facts(payload), **extra)


async def unmatched_transfers(
    session: AsyncSession, *, limit: int = UNMATCHED_LIMIT
) -> list[UnmatchedTransfer]:
    """Unmatched events, oldest first (the longest-waiting customer first)."""
    rows = await session.execute(
        select(*_UNMATCHED_COLUMNS).where(_e.status == m.EVENT_UNMATCHED).order_by(_e.id).limit(limit)
    )
    return [_unmatched(row) for row in rows]


async def unmatched_transfer(session: AsyncSession, event_id: int) -> UnmatchedTransfer | None:
    row = (await session.execute(select(*_UNMATCHED_COLUMNS).where(_e.id == event_id))).one_or_none()
    return _unmatched(row) if row is not None else None


async def assigned_transfers(
    session: AsyncSession, *, limit: int = ASSIGNED_LIMIT
) -> list[UnmatchedTransfer]:
    """Transfers credited by hand, the latest first."""
    rows = await session.execute(
        select(
            *_UNMATCHED_COLUMNS, _e.user_id, _u.email, _e.credited_kobo, _e.assigned_by, _e.assigned_at,
            _e.assignment_reason,
        )
        .select_from(m.MonnifyEvent.__table__.outerjoin(User.__table__, _u.id == _e.user_id))
        .where(_e.assigned_at.is_not(None))
        .order_by(_e.assigned_at.desc(), _e.id.desc())
        .limit(limit)
    )  # fmt: skip
    found = []
    for row in rows:
        values = dict(row._mapping)
        extra = {k: values.pop(k) for k in ("user_id", "email", "credited_kobo", "assigned_by", "assigned_at",
                                            "assignment_reason")}  # fmt: skip
        payload = values.pop("payload")
        found.append(UnmatchedTransfer(**values, **payer_facts(payload), **extra))
    return found


__all__ = [
    "EVENT_TYPES",
    "NEEDS_ACTION",
    "STATUSES",
    "Customer",
    "EventDetail",
    "EventFilter",
    "EventPage",
    "EventRow",
    "FundingCounts",
    "StuckReservation",
    "UnmatchedTransfer",
    "assigned_transfers",
    "customer_by_id",
    "customer_events",
    "decode_cursor",
    "event_detail",
    "event_ledger",
    "find_customer",
    "funding_counts",
    "list_events",
    "needs_action",
    "payer_facts",
    "search_clause",
    "stuck_reservations",
    "unmatched_transfer",
    "unmatched_transfers",
]
