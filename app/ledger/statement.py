"""A wallet's statement for people: every ledger entry of ONE wallet, newest first, with the wallet's balance
right after it (`balance_after`, written by `ledger_post` under the wallet's row lock, so it is the running
balance), what it was, and filters. One query for the customer's /statement (and its CSV) and the staff
profile's statement (app.dashboard.user_queries adds its console links).

Only the wallet's own entries are read (`account_id` = the wallet): the system legs of a posting (delivery
splits, clearing, fees) never appear. The lines are enriched from the business rows they reference, read for
the page's lines only:
- a purchase debit or refund -> the customer's own purchase (product, recipient, status, request id), and for
  a failed or reversed purchase its refund (amount and time), so the pair reads "₦200.00 charged, ₦200.00
  refunded" wherever either line is shown. A referral bonus references the FRIEND's purchase: never joined.
- a Monnify funding -> the sender's name and bank from the stored webhook, when Monnify sent them.

Filters (`Filters`, parsed by `parse_filters`): kind (funding / purchase / refund / bonus / adjustment), the
purchase's status, and Lagos dates from/to (inclusive). Paging is keyset on the entry id (`before`).
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.core.db import connection_of
from app.core.naira import format_naira
from app.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from app.ledger.queries import MAX_PAGE, StatementLine
from app.vtu.models import STATUSES

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

LAGOS = ZoneInfo("Africa/Lagos")
PAGE = 50
CSV_MAX_ROWS = 10_000

KIND_LABELS = {
    "funding": "Funding",
    "purchase": "Purchase",
    "purchase_refund": "Refund",
    "purchase_delivery": "Delivery",
    "referral_bonus": "Referral bonus",
    "referral_clawback": "Referral claw-back",
    "adjustment": "Adjustment",
}
REVERSAL_LABEL = "Reversal refund"
# What customers filter by -> the ledger transaction kinds it means.
FILTER_KINDS: dict[str, tuple[str, ...]] = {
    "funding": ("funding",),
    "purchase": ("purchase",),
    "refund": ("purchase_refund",),
    "bonus": ("referral_bonus", "referral_clawback"),
    "adjustment": ("adjustment",),
}
PURCHASE_KINDS = ("purchase", "purchase_refund")  # the lines that are about the wallet owner's purchase
PURCHASE_STATUSES = STATUSES


# -- filters --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Filters:
    kind: str | None = None  # a FILTER_KINDS key
    status: str | None = None  # a purchase status: purchase debits and refunds of purchases in it
    date_from: datetime.date | None = None  # Lagos dates, inclusive
    date_to: datetime.date | None = None

    def query(self) -> dict[str, str]:
        """The query-string form (for links: Older, CSV)."""
        out = {"kind": self.kind, "status": self.status}
        out["from"] = self.date_from.isoformat() if self.date_from else None
        out["to"] = self.date_to.isoformat() if self.date_to else None
        return {k: v for k, v in out.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.query())


def _date(raw: str | None, name: str, errors: list[str]) -> datetime.date | None:
    value = (raw or "").strip()
    if not value:
        return None
    if len(value) == 10:  # 2025-01-31 only
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    errors.append(f"The {name} date must be a date like 2025-01-31.")
    return None


def parse_filters(
    kind: str | None, status: str | None, date_from: str | None, date_to: str | None
) -> tuple[Filters, list[str]]:
    """The filters from a query string, and a message for each value that was refused (and left out)."""
    errors: list[str] = []
    kind = (kind or "").strip().lower() or None
    if kind is not None and kind not in FILTER_KINDS:
        errors.append(f"Unknown type: choose one of {', '.join(FILTER_KINDS)}.")
        kind = None
    status = (status or "").strip().lower() or None
    if status is not None and status not in PURCHASE_STATUSES:
        errors.append(f"Unknown purchase status: choose one of {', '.join(PURCHASE_STATUSES)}.")
        status = None
    start = _date(date_from, "'from'", errors)
    end = _date(date_to, "'to'", errors)
    if start and end and start > end:
        errors.append("The 'from' date is after the 'to' date.")
        start = end = None
    return Filters(kind, status, start, end), errors


def lagos_midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), LAGOS)


# -- rows -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PurchaseFacts:
    """The wallet owner's purchase a line is about."""

    id: uuid.UUID
    product_name: str
    recipient: str
    status: str
    amount_kobo: int  # what the wallet was charged
    request_id: str

    @property
    def text(self) -> str:
        return f"{self.product_name} to {self.recipient}" if self.recipient else self.product_name


@dataclass(frozen=True, slots=True)
class Refund:
    amount_kobo: int  # what came back to the wallet
    at: datetime.datetime


def charged_and_refunded(charged_kobo: int, refund: Refund | None) -> str | None:
    """'₦200.00 charged, ₦200.00 refunded' (None without a refund)."""
    if refund is None:
        return None
    return f"{format_naira(charged_kobo)} charged, {format_naira(refund.amount_kobo)} refunded"


@dataclass(frozen=True, slots=True)
class StatementRow:
    line: StatementLine
    label: str  # what kind of entry, for people ("Purchase", "Reversal refund", ...)
    description: str  # what it was ("MTN Airtime ₦500.00 to 0803...", "Bank transfer from ADA OBI (GTBank)")
    reference: str  # what a customer quotes to support
    purchase: PurchaseFacts | None = None
    refund: Refund | None = None  # the purchase's refund (on its debit and on the refund line)

    @property
    def amount(self) -> int:
        return self.line.amount

    @property
    def balance_after(self) -> int:
        return self.line.balance_after or 0

    @property
    def note(self) -> str | None:
        """A failed / reversed purchase's pair, read together: '₦200.00 charged, ₦200.00 refunded'."""
        if self.purchase is None:
            return None
        return charged_and_refunded(self.purchase.amount_kobo, self.refund)


@dataclass(frozen=True, slots=True)
class Statement:
    rows: list[StatementRow]
    next_before: int | None  # the entry id to pass as `before` for the next (older) page
    filters: Filters = field(default_factory=Filters)
    balance: int = 0  # the wallet's balance when the page was read (kobo; 0 without a wallet)


async def purchase_refunds(
    session: AsyncSession, user_id: uuid.UUID, purchase_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Refund]:
    """The refund (`refund:<id>`, to the user's wallet) of each of these purchases that has one (the statement
    finds it the same way inside its one statement, `_PAGE_SQL`: change both together)."""
    wanted = {str(i) for i in purchase_ids}
    if not wanted:
        return {}
    tx, e, a = LedgerTransaction, LedgerEntry, LedgerAccount
    rows = await session.execute(
        select(tx.reference_id, e.amount, tx.created_at)
        .join(e, e.transaction_id == tx.id)
        .join(a, a.id == e.account_id)
        .where(
            tx.kind == "purchase_refund",
            tx.reference_type == "purchase",
            tx.reference_id.in_(wanted),
            a.user_id == user_id,
        )
    )
    return {uuid.UUID(ref): Refund(int(amount), at) for ref, amount, at in rows}


def _sender(payload: Any) -> str | None:
    """'ADA OBI (GTBank)' from a Monnify webhook's paymentSourceInformation, when present."""
    data = payload.get("eventData") if isinstance(payload, Mapping) else None
    sources = data.get("paymentSourceInformation") if isinstance(data, Mapping) else None
    source = sources[0] if isinstance(sources, list) and sources else sources
    if not isinstance(source, Mapping):
        return None

    def text(key: str) -> str:
        value = source.get(key)
        return " ".join(str(value).split())[:80] if isinstance(value, str | int) else ""

    name, bank = text("accountName"), text("bankName")  # a bare bank code means nothing to people
    if name and bank:
        return f"{name} ({bank})"
    return name or None


def _describe(
    line: StatementLine, purchase: PurchaseFacts | None, sender: str | None
) -> tuple[str, str, str]:
    """(label, description, reference) of one line."""
    label = KIND_LABELS.get(line.kind, line.kind.replace("_", " ").capitalize())
    memo = line.memo
    if line.kind == "funding":
        reference = line.idempotency_key.removeprefix("monnify:")
        return label, "Bank transfer" + (f" from {sender}" if sender else ""), reference
    if line.kind in PURCHASE_KINDS:
        reference = purchase.request_id if purchase else (line.reference_id or "")
        what = purchase.text if purchase else "Purchase"
        if line.kind == "purchase":
            return label, what, reference
        reversed_ = memo.startswith("Reversed") or (purchase is not None and purchase.status == "reversed")
        return (REVERSAL_LABEL if reversed_ else label), f"Refund of {what}", reference
    if line.kind == "adjustment":
        return label, memo.removeprefix("Adjustment: ") or "Adjustment", f"ADJ-{line.reference_id or ''}"
    if line.kind == "referral_bonus":
        return label, memo.removeprefix("Referral bonus: ") or label, f"TX-{line.transaction_id}"
    return label, memo or label, f"TX-{line.transaction_id}"


# One round trip for a whole page (bench/README.md, "pages"): the wallet's balance, its entries (keyset on the
# entry id, one more than the page to know whether an older page exists), each purchase line's purchase (the
# wallet owner's only), a failed or reversed purchase's refund to this wallet, and a funding's sender from the
# stored webhook. Sent as driver SQL: no SQL compilation per page. The filters add fixed fragments below;
# every value is a parameter. A reference that is not a well-formed id joins nothing (CASE: never cast).
_PAGE_SQL = """
WITH wallet AS (SELECT id, balance FROM ledger_accounts WHERE user_id = $1),
page AS (
    SELECT e.id AS entry_id, e.transaction_id, e.amount, e.balance_after, t.kind, t.memo, t.reference_type,
           t.reference_id, t.idempotency_key, t.created_at
    FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
    WHERE e.account_id = (SELECT id FROM wallet) AND e.id < $2 {filters}
    ORDER BY e.id DESC
    LIMIT $3
)
SELECT wallet.balance, page.entry_id, page.transaction_id, page.amount, page.balance_after, page.kind,
       page.memo, page.reference_type, page.reference_id, page.idempotency_key, page.created_at,
       p.id, p.product_name, p.recipient, p.status, p.amount_kobo, p.request_id,
       refund.amount, refund.created_at,
       ev.payload -> 'eventData' -> 'paymentSourceInformation'
FROM wallet
LEFT JOIN page ON true
LEFT JOIN purchases p
    ON page.kind IN ('purchase', 'purchase_refund') AND page.reference_type = 'purchase' AND p.user_id = $1
   AND p.id = CASE WHEN lower(page.reference_id) ~ '^[0-9a-f]{{8}}(-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}$'
                   THEN page.reference_id::uuid END
LEFT JOIN LATERAL (  -- the refund, as `purchase_refunds` finds it for receipts
    SELECT re.amount, rt.created_at
    FROM ledger_transactions rt
    JOIN ledger_entries re ON re.transaction_id = rt.id AND re.account_id = wallet.id
    WHERE p.status IN ('failed', 'reversed') AND rt.kind = 'purchase_refund'
      AND rt.reference_type = 'purchase' AND rt.reference_id = p.id::text
    ORDER BY rt.id DESC
    LIMIT 1
) refund ON true
LEFT JOIN monnify_events ev
    ON page.kind = 'funding' AND page.reference_type = 'monnify_event' AND ev.user_id = $1
   AND ev.id = CASE WHEN page.reference_id ~ '^[0-9]{{1,18}}$' THEN page.reference_id::bigint END
ORDER BY page.entry_id DESC
"""
_NO_CURSOR = 2**63 - 1  # `before` when reading the newest page: every entry id is below it


# Each filter: a fixed fragment on the page's entry `e` and transaction `t`; `#` is its one parameter. The
# status filter keeps the purchase lines (debits and refunds) of the wallet owner's ($1) purchases in it.
_FILTER_SQL = {
    "kind": "t.kind = ANY(#::text[])",
    "status": (
        "t.kind IN ('purchase', 'purchase_refund') AND t.reference_type = 'purchase' AND t.reference_id IN"
        " (SELECT fp.id::text FROM purchases fp WHERE fp.user_id = $1 AND fp.status = #)"
    ),
    "from": "t.created_at >= #",
    "to": "t.created_at < #",
}


def _filter_sql(f: Filters, first: int) -> tuple[str, list[Any]]:
    """The filters' fragments (parameters numbered from `first`) and their values."""
    wanted: list[tuple[str, Any]] = []
    if f.kind:
        wanted.append(("kind", list(FILTER_KINDS[f.kind])))
    if f.status:
        wanted.append(("status", f.status))
    if f.date_from:
        wanted.append(("from", lagos_midnight(f.date_from)))
    if f.date_to:
        wanted.append(("to", lagos_midnight(f.date_to + datetime.timedelta(days=1))))
    sql = "".join(
        f" AND {_FILTER_SQL[name].replace('#', f'${first + n}')}" for n, (name, _) in enumerate(wanted)
    )
    return sql, [value for _, value in wanted]


def _sources(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def wallet_statement_rows(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    filters: Filters | None = None,
    before: int | None = None,
    limit: int = PAGE,
) -> Statement:
    """One page of the user's wallet statement, newest first (keyset on the entry id), and the wallet's
    balance, in one statement (`_PAGE_SQL`)."""
    filters = filters or Filters()
    limit = max(1, min(limit, MAX_PAGE))
    extra, extra_args = _filter_sql(filters, 4)
    sql = _PAGE_SQL.format(filters=extra)
    conn = await connection_of(session)
    found: Sequence[Any] = (
        await conn.exec_driver_sql(
            sql, (user_id, before if before is not None else _NO_CURSOR, limit + 1, *extra_args)
        )
    ).all()
    balance = int(found[0][0] or 0) if found else 0
    rows: list[StatementRow] = []
    for r in found[:limit]:
        if r[1] is None:  # a wallet without entries (matching the filters): only its balance
            break
        line = StatementLine(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
        purchase = PurchaseFacts(r[11], r[12], r[13], r[14], r[15], r[16]) if r[11] is not None else None
        refund = Refund(int(r[17]), r[18]) if r[17] is not None else None
        sender = (
            _sender({"eventData": {"paymentSourceInformation": _sources(r[19])}})
            if r[19] is not None
            else None
        )
        label, description, reference = _describe(line, purchase, sender)
        rows.append(StatementRow(line, label, description, reference, purchase, refund))
    next_before = rows[-1].line.entry_id if len(found) > limit and rows else None
    return Statement(rows, next_before, filters, balance)


# -- CSV ------------------------------------------------------------------------------------------------
CSV_COLUMNS = ("date", "type", "description", "reference", "amount_naira", "balance_naira")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula (OWASP CSV injection): a leading = + - @ tab or
    CR gets a single quote in front."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def naira_number(kobo: int) -> str:
    """-20000 -> '-200.00' (plain, for spreadsheets)."""
    sign = "-" if kobo < 0 else ""
    naira, rem = divmod(abs(kobo), 100)
    return f"{sign}{naira}.{rem:02d}"


def csv_row(row: StatementRow) -> list[str]:
    """One statement line as CSV cells. Numbers are written as they are (a signed amount is data, not a
    formula); every text cell is escaped."""
    when = row.line.created_at.astimezone(LAGOS).isoformat(timespec="seconds")
    description = row.description + (f" ({row.note})" if row.note else "")
    return [
        when,
        csv_cell(row.label),
        csv_cell(description),
        csv_cell(row.reference),
        naira_number(row.amount),
        naira_number(row.balance_after),
    ]


__all__ = [
    "CSV_COLUMNS",
    "CSV_MAX_ROWS",
    "FILTER_KINDS",
    "KIND_LABELS",
    "LAGOS",
    "PURCHASE_STATUSES",
    "Filters",
    "PurchaseFacts",
    "Refund",
    "Statement",
    "StatementRow",
    "charged_and_refunded",
    "csv_cell",
    "csv_row",
    "lagos_midnight",
    "naira_number",
    "parse_filters",
    "purchase_refunds",
    "wallet_statement_rows",
]
