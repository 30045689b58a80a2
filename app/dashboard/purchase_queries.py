"""Read-only queries behind the staff purchase console (/staff/purchases). Nothing here writes: purchases
change only through app.vtu.service.PurchaseService, money only through app.ledger.

- `purchase_counts`: the figures at the top (pending, needs attention, overdue requeries, settled today).
- `open_purchases`: what matters at 2 a.m. (pending, flagged first, oldest first; recently flagged finals).
- `list_purchases`: the filtered list, newest first, keyset-paginated on (created_at, id).
- `purchase_owner`, `purchase_ledger`: the detail page's customer and ledger transactions.
"""

from __future__ import annotations

import contextlib
import datetime
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    func,
    or_,
    select,
)

from app.accounts.models import User
from app.core.keyset import Cursor, older_than
from app.core.lagos import lagos_midnight
from app.core.validation import InvalidPhone, escape_like, normalise_phone
from app.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from app.ledger.queries import wallet_balance
from app.vtu.models import FAILED, PENDING, REVERSED, STATUSES, SUCCESSFUL, Purchase, PurchaseAttempt

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
OPEN_LIMIT = 50
# A pending purchase whose requery is this late was probably not picked up by the worker (down? stuck?).
OVERDUE_AFTER = datetime.timedelta(minutes=2)
# Final purchases stay in the "open" section this long after being flagged (float low, conflicts, ...).
RECENT_FLAG_WINDOW = datetime.timedelta(hours=24)

_p = Purchase.__table__.c
_u = User.__table__.c


# -- rows -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PurchaseRow:
    """One line of the staff list (no exchanges: the JSONB log is loaded on the detail page only)."""

    id: uuid.UUID
    created_at: datetime.datetime
    status: str
    needs_attention: bool
    attention_reason: str | None
    channel: str
    service_id: str
    kind: str
    product_name: str
    recipient: str
    amount_kobo: int
    request_id: str
    provider_code: str | None
    provider_message: str | None
    attempts: int
    next_requery_at: datetime.datetime | None
    completed_at: datetime.datetime | None
    user_id: uuid.UUID
    email: str
    tier: str


_ROW_COLUMNS = (
    _p.id, _p.created_at, _p.status, _p.needs_attention, _p.attention_reason, _p.channel, _p.service_id,
    _p.kind, _p.product_name, _p.recipient, _p.amount_kobo, _p.request_id, _p.provider_code,
    _p.provider_message, _p.attempts, _p.next_requery_at, _p.completed_at, _p.user_id,
    _u.email.label("email"), _u.tier.label("tier"),
)  # fmt: skip
_FROM = Purchase.__table__.join(User.__table__, _u.id == _p.user_id)
# `needs_attention` as a plain boolean condition (NOT NULL column): the partial index
# ix_purchases_needs_attention (WHERE needs_attention) serves it; `needs_attention IS true` would not match
# the index's predicate, and the counts and the flagged filter would scan the whole table.
_flagged: ColumnElement[bool] = _p.needs_attention


def _rows(result: Any) -> list[PurchaseRow]:
    return [PurchaseRow(**dict(row._mapping)) for row in result]


# -- filters and the keyset cursor ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PurchaseFilter:
    status: str | None = None  # one of STATUSES
    attention: bool = False  # flagged for staff only
    service_id: str | None = None
    q: str = ""  # reference, purchase id, user id, recipient / phone, or (part of) an e-mail

    @classmethod
    def from_query(
        cls, *, status: str | None, attention: str | None, service: str | None, q: str | None
    ) -> PurchaseFilter:
        """Lenient parsing of query-string values: anything unknown is simply not applied."""
        status = (status or "").strip().lower()
        return cls(
            status=status if status in STATUSES else None,
            attention=(attention or "").strip().lower() in {"1", "true", "yes", "on"},
            service_id=(service or "").strip()[:64] or None,
            q=(q or "").strip()[:100],
        )

    @property
    def active(self) -> bool:
        return bool(self.status or self.attention or self.service_id or self.q)

    def query_args(self) -> dict[str, str]:
        """The filter as query-string arguments (for links to the next page)."""
        args: dict[str, str] = {}
        if self.status:
            args["status"] = self.status
        if self.attention:
            args["attention"] = "1"
        if self.service_id:
            args["service"] = self.service_id
        if self.q:
            args["q"] = self.q
        return args


def decode_cursor(raw: str | None) -> Cursor | None:
    return Cursor.decode(raw)


def search_clause(q: str) -> ColumnElement[bool] | None:
    """What staff paste: a purchase id (or the buyer's user id), an e-mail (or part of one), or the
    provider reference / our request_id / a recipient phone, meter or smartcard number (exact)."""
    q = q.strip()
    if not q:
        return None
    try:
        as_uuid = uuid.UUID(q)
    except ValueError:
        pass
    else:
        return or_(_p.id == as_uuid, _p.user_id == as_uuid)
    if "@" in q:
        return _u.email.ilike(f"%{escape_like(q.lower())}%", escape="\\")
    numbers = {q, q.replace(" ", "")}
    with contextlib.suppress(InvalidPhone):
        numbers.add(normalise_phone(q, allow_sandbox=True))
    # An earlier provider attempt's request id (failover, VTpass 019 holds) finds its purchase too.
    earlier = select(PurchaseAttempt.purchase_id).where(PurchaseAttempt.request_id == q).scalar_subquery()
    return or_(
        _p.request_id == q,
        _p.id == earlier,
        _p.provider_reference == q,
        _p.recipient.in_(sorted(numbers)),
        _p.phone.in_(sorted(numbers)),
    )


def _where(f: PurchaseFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.status:
        conditions.append(_p.status == f.status)
    if f.attention:
        conditions.append(_flagged)
    if f.service_id:
        conditions.append(_p.service_id == f.service_id)
    found = search_clause(f.q)
    if found is not None:
        conditions.append(found)
    return conditions


@dataclass(frozen=True, slots=True)
class PurchasePage:
    rows: list[PurchaseRow]
    next_cursor: str | None  # pass as `before` for the next (older) page


async def list_purchases(
    session: AsyncSession, f: PurchaseFilter, *, before: str | None = None, limit: int = PAGE_SIZE
) -> PurchasePage:
    """Newest first; keyset on (created_at, id), so page N costs the same as page 1."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(*_ROW_COLUMNS).select_from(_FROM).where(*_where(f))
    cursor = Cursor.decode(before)
    if cursor is not None:
        query = query.where(older_than(_p.created_at, _p.id, cursor))
    query = query.order_by(_p.created_at.desc(), _p.id.desc()).limit(limit + 1)
    rows = _rows(await session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return PurchasePage(rows, Cursor.after(rows[-1]) if more and rows else None)


async def open_purchases(
    session: AsyncSession, *, now: datetime.datetime, limit: int = OPEN_LIMIT
) -> list[PurchaseRow]:
    """Every pending purchase (flagged ones first, then the oldest first: they have waited longest), then
    final purchases flagged in the last 24 h (float low, provider contradicting us, ...), newest first."""
    recent = now - RECENT_FLAG_WINDOW
    pending = _p.status == PENDING
    group = case((and_(pending, _p.needs_attention), 0), (pending, 1), else_=2)
    query = (
        select(*_ROW_COLUMNS)
        .select_from(_FROM)
        .where(or_(pending, and_(_flagged, _p.updated_at >= recent)))
        .order_by(group, case((pending, _p.created_at)).asc().nulls_last(), _p.created_at.desc(), _p.id)
        .limit(max(1, min(limit, MAX_PAGE_SIZE)))
    )
    return _rows(await session.execute(query))


# -- counts ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PurchaseCounts:
    since: datetime.datetime  # Lagos midnight: "today" starts here
    pending: int
    needs_attention: int  # flagged, any status
    pending_attention: int  # flagged and still pending
    overdue: int  # pending, requery overdue by more than OVERDUE_AFTER: is the worker running?
    oldest_pending_at: datetime.datetime | None
    created_today: int
    created_today_kobo: int
    successful_today: int  # settled (completed) today
    successful_today_kobo: int
    failed_today: int
    failed_today_kobo: int
    reversed_today: int
    reversed_today_kobo: int


def _scalar(*where: ColumnElement[bool], what: Any = None) -> Any:
    return (
        select(what if what is not None else func.count())
        .select_from(Purchase.__table__)
        .where(*where)
        .scalar_subquery()
    )


async def purchase_counts(session: AsyncSession, *, now: datetime.datetime) -> PurchaseCounts:
    """One round trip of independent scalar subqueries (each can use its own index: the partial pending
    and needs-attention indexes cover the first ones)."""
    since = lagos_midnight(now)
    pending = _p.status == PENDING
    total = func.coalesce(func.sum(_p.amount_kobo), 0)

    def settled(status: str) -> list[ColumnElement[bool]]:
        return [_p.completed_at >= since, _p.status == status]

    query = select(
        _scalar(pending).label("pending"),
        _scalar(_flagged).label("needs_attention"),
        _scalar(_flagged, pending).label("pending_attention"),
        _scalar(pending, _p.next_requery_at < now - OVERDUE_AFTER).label("overdue"),
        _scalar(pending, what=func.min(_p.created_at)).label("oldest_pending_at"),
        _scalar(_p.created_at >= since).label("created_today"),
        _scalar(_p.created_at >= since, what=total).label("created_today_kobo"),
        _scalar(*settled(SUCCESSFUL)).label("successful_today"),
        _scalar(*settled(SUCCESSFUL), what=total).label("successful_today_kobo"),
        _scalar(*settled(FAILED)).label("failed_today"),
        _scalar(*settled(FAILED), what=total).label("failed_today_kobo"),
        _scalar(*settled(REVERSED)).label("reversed_today"),
        _scalar(*settled(REVERSED), what=total).label("reversed_today_kobo"),
    )
    row = dict((await session.execute(query)).one()._mapping)
    oldest: datetime.datetime | None = row.pop("oldest_pending_at")
    counts: dict[str, Any] = {name: int(value) for name, value in row.items()}
    return PurchaseCounts(since=since, oldest_pending_at=oldest, **counts)


# -- one purchase ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Owner:
    id: uuid.UUID
    email: str
    full_name: str
    phone: str | None
    tier: str
    is_active: bool
    balance_kobo: int  # the wallet now


async def purchase_owner(session: AsyncSession, user_id: uuid.UUID) -> Owner | None:
    row = (
        await session.execute(
            select(_u.id, _u.email, _u.full_name, _u.phone, _u.tier, _u.is_active).where(_u.id == user_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return Owner(**dict(row._mapping), balance_kobo=await wallet_balance(session, user_id))


@dataclass(frozen=True, slots=True)
class LedgerLine:
    account_code: str
    account_kind: str
    user_id: uuid.UUID | None
    amount: int  # signed kobo: positive raised the account's balance
    balance_after: int | None  # wallets only


@dataclass(slots=True)
class LedgerTxn:
    id: int
    idempotency_key: str
    kind: str
    memo: str
    created_by: str
    created_at: datetime.datetime
    lines: list[LedgerLine] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


def purchase_keys(purchase_id: uuid.UUID) -> list[str]:
    return [f"{prefix}:{purchase_id}" for prefix in ("purchase", "delivery", "refund")]


async def purchase_ledger(session: AsyncSession, purchase_id: uuid.UUID) -> list[LedgerTxn]:
    """Every ledger transaction about this purchase, oldest first, with its legs: the ones referencing it
    (debit, delivery, refund, referral bonus and claw-back) and, defensively, its well-known keys."""
    t = LedgerTransaction.__table__.c
    about = or_(
        and_(t.reference_type == "purchase", t.reference_id == str(purchase_id)),
        t.idempotency_key.in_(purchase_keys(purchase_id)),
    )
    return await ledger_transactions(session, about)


async def ledger_transactions(session: AsyncSession, about: ColumnElement[bool]) -> list[LedgerTxn]:
    """The ledger transactions matching `about` (a condition on ledger_transactions), oldest first, each
    with its legs. Read-only; shared by the staff consoles' detail pages."""
    t, e, a = LedgerTransaction.__table__.c, LedgerEntry.__table__.c, LedgerAccount.__table__.c
    query = (
        select(
            t.id,
            t.idempotency_key,
            t.kind,
            t.memo,
            t.created_by,
            t.created_at,
            a.code,
            a.kind.label("account_kind"),
            a.user_id,
            e.amount,
            e.balance_after,
        )
        .select_from(
            LedgerTransaction.__table__.join(LedgerEntry.__table__, e.transaction_id == t.id).join(
                LedgerAccount.__table__, a.id == e.account_id
            )
        )
        .where(about)
        .order_by(t.id, e.amount, e.account_id)
    )
    found: dict[int, LedgerTxn] = {}
    for row in await session.execute(query):
        txn = found.get(row.id)
        if txn is None:
            txn = found[row.id] = LedgerTxn(
                row.id, row.idempotency_key, row.kind, row.memo, row.created_by, row.created_at
            )
        txn.lines.append(
            LedgerLine(row.code, row.account_kind, row.user_id, int(row.amount), row.balance_after)
        )
    return list(found.values())


__all__ = [
    "LedgerLine",
    "LedgerTxn",
    "Owner",
    "PurchaseCounts",
    "PurchaseFilter",
    "PurchasePage",
    "PurchaseRow",
    "decode_cursor",
    "ledger_transactions",
    "list_purchases",
    "open_purchases",
    "purchase_counts",
    "purchase_keys",
    "purchase_ledger",
    "purchase_owner",
    "search_clause",
]
