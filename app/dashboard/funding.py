"""Staff: the funding console. "I sent ₦5,000 an hour ago and my wallet shows nothing", at 2 a.m.

- `GET  /staff/funding`                 counts, the events that need action now and the filtered event list
- `GET  /staff/funding/counts`          the counts block alone (htmx polls it)
- `GET  /staff/funding/open`            the "needs action now" list alone (htmx polls it)
- `GET  /staff/funding/customer?q=...`  one customer's funding: reserved accounts, wallet, last 50 events
- `GET  /staff/funding/{id}`            one Monnify event in full: customer, amounts, ledger, raw payload
- `POST /staff/funding/{id}/retry`      a `failed` event only: reprocess it now through
                                        app.payments.funding.process_event (what the worker runs)

Read-mostly: reads come from funding_queries (read-only SQL); the one action calls the payments service,
which locks the event, verifies with Monnify when configured, posts the ledger transaction (key
`monnify:<transactionReference>`, so a retry can never credit twice) and marks the event. Nothing here
writes events or money. Crediting an unmatched transfer to a customer by hand is deliberately not offered.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlencode

import structlog
from litestar import Controller, MediaType, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.staff_roles import OPERATIONS, SUPPORT, needs, requires_staff_role
from app.audit import service as audit
from app.core.flash import flash
from app.core.naira import format_naira
from app.dashboard import funding_queries as q
from app.dashboard.purchases import NO_STORE, ago, due, pretty
from app.ledger.accounts import EXPENSE_MONNIFY_FEES
from app.payments import models as m
from app.payments.funding import process_event
from app.payments.queries import reservation_for

log = structlog.get_logger("app.dashboard.funding")

PAGE = "dashboard/funding.html"
RESULTS = "dashboard/partials/funding_results.html"
ROWS = "dashboard/partials/funding_rows.html"
COUNTS = "dashboard/partials/funding_counts.html"
OPEN = "dashboard/partials/funding_open.html"
DETAIL = "dashboard/funding_event.html"
CUSTOMER = "dashboard/funding_customer.html"
PAGE_SIZE = q.PAGE_SIZE  # events per page of the list
MAX_EVENT_ID = 2**63 - 1  # BIGINT: larger ids cannot exist (and must not reach the database)

# Badge colours: the purchase console's classes (app.css), by what the state means for the customer.
_TONES = {
    m.EVENT_CREDITED: "successful",
    m.EVENT_RECEIVED: "pending",
    m.EVENT_FAILED: "failed",
    m.EVENT_UNMATCHED: "failed",
    m.EVENT_REJECTED: "failed",
    m.RESERVATION_ACTIVE: "successful",
    m.RESERVATION_PENDING: "pending",
}


def tone(status: str | None) -> str:
    """CSS badge class for an event or reservation status."""
    name = _TONES.get(status or "")
    return f"badge-{name}" if name else ""


def _helpers(now: datetime.datetime) -> dict[str, Any]:
    return {
        "now": now,
        "ago": lambda value: ago(value, now),
        "due": lambda value: due(value, now),
        "pretty": pretty,
        "tone": tone,
        "stuck_after": q.STUCK_AFTER,
        "overdue_after": q.OVERDUE_AFTER,
        "stale_minutes": int(q.RESERVATION_STALE_AFTER.total_seconds() // 60),
    }


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _detail_url(event_id: int) -> str:
    return f"/staff/funding/{event_id}"


def _render(template: str, context: dict[str, Any], status: int = 200) -> Template:
    return Template(
        template_name=template,
        context=context,
        status_code=status,
        media_type=MediaType.HTML,
        headers=NO_STORE,
    )


# -- the event page's derived views ---------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _joined(*values: Any) -> str:
    return " · ".join(t for t in (_text(v) for v in values) if t)


def transfer_facts(payload: Any) -> list[tuple[str, str]]:
    """What the webhook body says about the transfer, for reading at a glance (the raw body is shown too).

    Lenient: real payloads vary (a single source object instead of a list, missing fields, junk)."""
    data = payload.get("eventData") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return []
    facts: list[tuple[str, str]] = []

    def add(label: str, value: Any) -> None:
        text = _text(value)
        if text:
            facts.append((label, text))

    add("Payment ref", data.get("paymentReference"))
    add("Paid on", data.get("paidOn"))
    add("Method", data.get("paymentMethod"))
    add("Monnify status", data.get("paymentStatus"))
    add("Description", data.get("paymentDescription"))
    product = data.get("product")
    if isinstance(product, dict):
        add("Product", product.get("type"))
    sources = data.get("paymentSourceInformation")
    source = sources[0] if isinstance(sources, list) and sources else sources
    if isinstance(source, dict):
        code = _text(source.get("bankCode"))
        sender = _joined(
            source.get("accountName"), source.get("accountNumber"), f"bank {code}" if code else None
        )
        add("Sender", sender)
    destination = data.get("destinationAccountInformation")
    if isinstance(destination, dict):
        add("Paid into", _joined(destination.get("bankName"), destination.get("accountNumber")))
    add("Settlement", data.get("settlementAmount"))
    customer = data.get("customer")
    if isinstance(customer, dict):
        add("Account of", _joined(customer.get("name"), customer.get("email")))
    return facts


def monnify_charge(ledger: list[q.LedgerTxn], ledger_transaction_id: int | None) -> int | None:
    """Monnify's own charge on the transfer (the platform's cost), as the event's posting booked it."""
    for txn in ledger:
        if txn.id == ledger_transaction_id:
            return sum(-line.amount for line in txn.lines if line.account_code == EXPENSE_MONNIFY_FEES)
    return None


# -- messages after the retry ---------------------------------------------------------------------------
def retry_message(after: q.EventRow, now: datetime.datetime) -> tuple[str, str]:
    """(message, flash category) saying what reprocessing the event did."""
    if after.status == m.EVENT_CREDITED:
        who = after.email or "the customer"
        fee = f" (paid {format_naira(after.amount_paid_kobo or 0)}, fee {format_naira(after.fee_kobo or 0)})"
        return (
            f"Retried: credited {format_naira(after.credited_kobo or 0)} to {who}'s wallet"
            f"{fee if after.fee_kobo else ''}.",
            "success",
        )
    if after.status == m.EVENT_FAILED:
        when = f" The worker tries again {due(after.next_attempt_at, now)}." if after.next_attempt_at else ""
        return (
            f"Retried, still failing: {after.last_error or 'no error recorded'}. Nothing was credited.{when}",
            "warning",
        )
    if after.status == m.EVENT_REJECTED:
        return (
            f"Retried: {after.last_error or 'Monnify says it was not paid'}. Nothing was credited.",
            "warning",
        )
    if after.status == m.EVENT_UNMATCHED:
        return (
            f"Retried: {after.last_error or 'no customer matches'}. Nothing was credited; see the note "
            "below.",
            "warning",
        )
    return f"Retried: the event is now {after.status}. Nothing was credited.", "info"


# -- the controller -------------------------------------------------------------------------------------
class StaffFundingController(Controller):
    path = "/staff/funding"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; actions below declare more
    include_in_schema = False

    @get("/", name="staff:funding")
    async def index(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        status_filter: str | None = Parameter(query="status", default=None, required=False),
        event_type: str | None = Parameter(query="type", default=None, required=False),
        search: str | None = Parameter(query="q", default=None, required=False),
        before: str | None = Parameter(query="before", default=None, required=False),
    ) -> Template:
        now = _now()
        filters = q.EventFilter.from_query(status=status_filter, event_type=event_type, q=search)
        page = await q.list_events(db_session, filters, before=before, limit=PAGE_SIZE)
        context: dict[str, Any] = {
            **_helpers(now),
            "f": filters,
            "page": page,
            "more_url": self._more_url(filters, page.next_cursor),
            "paged": q.decode_cursor(before) is not None,
            "statuses": q.STATUSES,
            "event_types": q.EVENT_TYPES,
        }
        htmx = request.htmx
        if htmx and not htmx.history_restore_request:
            if htmx.target == "more-events":  # "older events": just the next rows
                return _render(ROWS, context)
            if htmx.target == "funding-results":  # the filter form
                return _render(RESULTS, context)
        context["counts"] = await q.funding_counts(db_session, now=now)
        show_open = not filters.active and not context["paged"]
        context["open"] = await q.needs_action(db_session, now=now) if show_open else None
        context["reservations"] = await q.stuck_reservations(db_session, now=now) if show_open else []
        return _render(PAGE, context)

    @get("/counts", name="staff:funding-counts")
    async def counts(self, db_session: AsyncSession) -> Template:
        now = _now()
        context = {**_helpers(now), "counts": await q.funding_counts(db_session, now=now)}
        return _render(COUNTS, context)

    @get("/open", name="staff:funding-open")
    async def open_list(self, db_session: AsyncSession) -> Template:
        """The "needs action now" list alone (htmx polls it)."""
        now = _now()
        context = {
            **_helpers(now),
            "counts": await q.funding_counts(db_session, now=now),
            "open": await q.needs_action(db_session, now=now),
        }
        return _render(OPEN, context)

    @get("/customer", name="staff:funding-customer")
    async def customer(
        self,
        db_session: AsyncSession,
        search: str | None = Parameter(query="q", default=None, required=False),
    ) -> Template:
        text = (search or "").strip()[:254]
        found = await q.find_customer(db_session, text) if text else None
        context: dict[str, Any] = {**_helpers(_now()), "q": text, "customer": found}
        if found is not None:
            context["reservation"] = await reservation_for(db_session, found.id)
            context["events"] = await q.customer_events(db_session, found)
        return _render(CUSTOMER, context, 404 if text and found is None else 200)

    @get("/{event_id:int}", name="staff:funding-event")
    async def detail(self, db_session: AsyncSession, event_id: int) -> Template:
        event = await self._event(db_session, event_id)
        customer = (
            await q.customer_by_id(db_session, event.row.customer_id) if event.row.customer_id else None
        )
        ledger = await q.event_ledger(db_session, event)
        context = {
            **_helpers(_now()),
            "e": event,
            "r": event.row,
            "customer": customer,
            "ledger": ledger,
            "charge": monnify_charge(ledger, event.ledger_transaction_id),
            "facts": transfer_facts(event.payload),
            "payload": pretty(event.payload),
        }
        return _render(DETAIL, context)

    @post("/{event_id:int}/retry", status_code=303, opt=needs(OPERATIONS))
    async def retry(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, event_id: int
    ) -> Redirect:
        staff = request.user.email
        before = await self._event(db_session, event_id)
        # No database transaction stays open while Monnify is asked (money invariant 8).
        await db_session.commit()
        if before.row.status != m.EVENT_FAILED:
            flash(
                request,
                f"Not retried: this event is {before.row.status}. Only a failed event can be retried from "
                "here; nothing was changed.",
                category="error",
            )
            return Redirect(_detail_url(event_id), status_code=303)
        funding = request.app.state.funding
        try:
            # Exactly what the worker's process_monnify_event job runs, in a session of its own.
            async with funding.sessionmaker() as session:
                status = await process_event(session, request.app.state.settings, event_id, funding.monnify)
        except Exception:
            log.exception("staff_funding_retry_error", event_id=event_id, staff=staff)
            flash(
                request,
                "The retry stopped with an unexpected error (logged). Nothing was credited by it; the worker "
                "keeps retrying the event.",
                category="error",
            )
            return Redirect(_detail_url(event_id), status_code=303)
        after = await self._event(db_session, event_id)
        log.info(
            "staff_funding_retry",
            event_id=event_id,
            staff=staff,
            before=before.row.status,
            after=after.row.status,
            result=status,
        )
        await audit.record(
            db_session,
            audit.Actor.of(request),
            "funding_event.retry",
            target=("funding_event", event_id),
            before={"status": before.row.status},
            after={"status": after.row.status, "result": status},
        )
        await db_session.commit()
        message, category = retry_message(after.row, _now())
        flash(request, message, category=category)
        return Redirect(_detail_url(event_id), status_code=303)

    # -- helpers ---------------------------------------------------------------------------------------------
    @staticmethod
    def _more_url(filters: q.EventFilter, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        return "/staff/funding?" + urlencode({**filters.query_args(), "before": cursor})

    @staticmethod
    async def _event(db_session: AsyncSession, event_id: int) -> q.EventDetail:
        event = await q.event_detail(db_session, event_id) if 0 < event_id <= MAX_EVENT_ID else None
        if event is None:
            raise NotFoundException("No such funding event.")
        return event


__all__ = ["StaffFundingController", "monnify_charge", "retry_message", "tone", "transfer_facts"]
