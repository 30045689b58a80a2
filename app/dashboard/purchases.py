"""Staff: the purchase operations console. See and act on purchases, including at 2 a.m.

- `GET  /staff/purchases`            counts, the open purchases (pending / flagged) and the filtered list
- `GET  /staff/purchases/counts`     the counts block alone (htmx polls it)
- `GET  /staff/purchases/open`       the "needs action now" list alone (htmx polls it)
- `GET  /staff/purchases/{id}/live`  a pending purchase's status line + history (its page polls them)
- `GET  /staff/purchases/{id}`       one purchase: customer, amounts, history, provider log, ledger
- `POST /staff/purchases/{id}/requery`  "Check now with provider" -> PurchaseService.requery
- `POST /staff/purchases/{id}/resolve`  pending only: mark delivered / failed + refund ->
                                        PurchaseService.resolve_manually (note + confirmation required)
- `POST /staff/purchases/{id}/clear-flag`  final + flagged only: flag handled (note required) ->
                                        PurchaseService.clear_flag (moves no money)

Thin: reads come from purchase_queries (read-only SQL); every change goes through the purchase service,
which applies the guarded transition and its ledger posting. Nothing here writes purchases or money.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from dataclasses import dataclass
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
from app.dashboard import purchase_queries as q
from app.vtu import failover
from app.vtu.errors import PurchaseError, PurchaseNotFound
from app.vtu.exam import staff_pins
from app.vtu.models import FAILED, PENDING, REVERSED, STATUSES, SUCCESSFUL
from app.vtu.providers import ProviderError
from app.vtu.providers.base import ExamPin
from app.vtu.providers.catalog import SERVICES, ServiceKind, get_service
from app.vtu.runtime import get_vtu
from app.vtu.service import PurchaseService
from app.vtu.views import SELECT_PURCHASE, PurchaseView, purchases_table

log = structlog.get_logger("app.dashboard.purchases")

PAGE = "dashboard/purchases.html"
RESULTS = "dashboard/partials/purchase_results.html"
ROWS = "dashboard/partials/purchase_rows.html"
COUNTS = "dashboard/partials/purchase_counts.html"
OPEN = "dashboard/partials/purchase_open.html"
LIVE = "dashboard/partials/purchase_live_oob.html"
DETAIL = "dashboard/purchase.html"
NO_STORE = {"Cache-Control": "no-store"}
NOTE_MAX = 500
PAGE_SIZE = q.PAGE_SIZE  # purchases per page of the list
DECISIONS = {"delivered": True, "failed": False}


# -- formatting helpers for the templates ---------------------------------------------------------------
def _span(seconds: float) -> str:
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d"


def ago(value: datetime.datetime | None, now: datetime.datetime) -> str:
    """'12 min ago' (for ages: how long a purchase has waited)."""
    if value is None:
        return ""
    seconds = (now - value).total_seconds()
    if seconds < 5:
        return "just now"
    return f"{_span(seconds)} ago" if seconds > 0 else f"in {_span(seconds)}"


def due(value: datetime.datetime | None, now: datetime.datetime) -> str:
    """'in 3 min' / 'overdue by 4 min' (for the next requery)."""
    if value is None:
        return ""
    seconds = (value - now).total_seconds()
    if abs(seconds) < 5:
        return "now"
    return f"in {_span(seconds)}" if seconds > 0 else f"overdue by {_span(seconds)}"


def pretty(value: Any) -> str:
    """Provider JSON (already redacted when it was logged), indented for a <pre>."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _helpers(now: datetime.datetime) -> dict[str, Any]:
    return {
        "now": now,
        "ago": lambda value: ago(value, now),
        "due": lambda value: due(value, now),
        "pretty": pretty,
        "service_name": lambda sid: s.name if (s := get_service(sid)) else sid,
        "overdue_after": q.OVERDUE_AFTER,
    }


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# -- the detail page's derived views --------------------------------------------------------------------
_EXCHANGE_LABELS = {
    "pay": "Sent to provider (/pay)",
    "requery": "Requery",
    "callback": "Provider callback (a hint: we requery to act on it)",
    "staff": "Staff decision",
}
_KNOWN_KEYS = {"kind", "source", "at", "outcome", "code", "message", "request", "response"}


@dataclass(frozen=True, slots=True)
class ExchangeView:
    number: int
    kind: str
    label: str
    source: str
    at: datetime.datetime | None
    outcome: str | None
    code: str | None
    message: str | None
    request: str | None  # pretty JSON
    response: str | None  # pretty JSON
    extra: str | None  # anything else logged with it (attempt, staff note, callback body, alerts)
    not_applied: bool = False  # a staff decision that lost to another actor (the log does not say so)


def _when(raw: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None


def _lost(outcome: Any, status: str) -> bool:
    """A staff decision contradicted by the purchase's status was not the one applied: "failed" is final,
    so a "delivered" decision on a failed purchase lost, and so did "failed" on a delivered (or later
    reversed) one. The service logs losing decisions too, without saying they lost."""
    return (outcome == "delivered" and status == FAILED) or (
        outcome == "failed" and status in (SUCCESSFUL, REVERSED)
    )


def _logged(value: Any) -> str | None:
    """Pretty JSON, or None when nothing was logged (staff decisions carry an empty request)."""
    return None if value is None or value == {} or value == "" else pretty(value)


def exchange_views(purchase: PurchaseView) -> list[ExchangeView]:
    views = []
    for n, record in enumerate(purchase.exchanges or (), start=1):
        if not isinstance(record, dict):
            record = {"kind": "?", "value": record}
        kind = str(record.get("kind") or "?")
        extra = {k: v for k, v in record.items() if k not in _KNOWN_KEYS}
        views.append(
            ExchangeView(
                number=n,
                kind=kind,
                label=_EXCHANGE_LABELS.get(kind, kind),
                source=str(record.get("source") or ""),
                at=_when(record.get("at")),
                outcome=record.get("outcome"),
                code=record.get("code"),
                message=record.get("message"),
                request=_logged(record.get("request")),
                response=_logged(record.get("response")),
                extra=pretty(extra) if extra else None,
                not_applied=kind == "staff" and _lost(record.get("outcome"), purchase.status),
            )
        )
    return views


@dataclass(frozen=True, slots=True)
class HistoryStep:
    at: datetime.datetime | None
    label: str
    detail: str = ""
    tone: str = ""  # "ok" | "bad" | "warn" | ""


_TONES = {"delivered": "ok", "failed": "bad", "reversed": "bad", "pending": "warn"}


def status_history(purchase: PurchaseView) -> list[HistoryStep]:
    """The purchase's story as far as its row tells it: created (debited), each provider exchange with the
    answer it gave, the final status (or what happens next while pending)."""
    steps = [
        HistoryStep(
            purchase.created_at,
            "Created: pending",
            f"{format_naira(purchase.amount_kobo)} debited from the wallet into purchases in flight "
            f"(purchase:{purchase.id})",
        )
    ]
    for exchange in exchange_views(purchase):
        said = exchange.outcome or "no answer"
        bits = [b for b in (exchange.code, exchange.message) if b]
        steps.append(
            HistoryStep(
                exchange.at,
                f"{exchange.label}: {said}"
                + (" (not applied: already settled)" if exchange.not_applied else ""),
                (" · ".join(bits) + (f" · by {exchange.source}" if exchange.source else "")),
                "" if exchange.not_applied else _TONES.get(said, ""),
            )
        )
    if purchase.completed_at is not None:
        tone = "ok" if purchase.status == SUCCESSFUL else "bad"
        money = {
            SUCCESSFUL: f"delivery:{purchase.id} settled the money to the provider float",
            FAILED: f"refund:{purchase.id} returned {format_naira(purchase.amount_kobo)} to the wallet",
            REVERSED: f"refund:{purchase.id} returned {format_naira(purchase.amount_kobo)} to the wallet",
        }.get(purchase.status, "")
        steps.append(HistoryStep(purchase.completed_at, f"Final: {purchase.status}", money, tone))
    elif purchase.next_requery_at is not None:
        steps.append(
            HistoryStep(
                purchase.next_requery_at,
                "Next requery (scheduled)",
                f"after {purchase.attempts} requeries so far",
                "warn",
            )
        )
    else:
        steps.append(
            HistoryStep(
                None,
                "No more automatic requeries",
                "Check with the provider, then resolve it by hand",
                "warn",
            )
        )
    return steps


# -- messages after actions -----------------------------------------------------------------------------
def requery_message(before: PurchaseView, after: PurchaseView) -> tuple[str, str]:
    """(message, flash category) saying what "check now" found."""
    answer = " ".join(b for b in (after.provider_code, after.provider_message) if b)
    refund = format_naira(after.amount_kobo)
    if after.status != before.status:
        if after.status == SUCCESSFUL:
            return "Provider confirms it was delivered: the purchase is now successful.", "success"
        if after.status == FAILED:
            return (
                f"Provider says it failed: the purchase is now failed and {refund} was refunded to the "
                "customer's wallet.",
                "success",
            )
        if after.status == REVERSED:
            return (
                f"Provider reports it reversed: the purchase is now reversed and {refund} was refunded to "
                "the customer's wallet.",
                "warning",
            )
    if after.status == PENDING:
        return (
            f"Still pending: the provider has no final answer yet ({answer or 'no answer'}). Check again "
            "later, or resolve it by hand once you have confirmed with the provider.",
            "warning",
        )
    message = f"Checked with the provider: nothing changed, the purchase stays {after.status}."
    if after.needs_attention and after.attention_reason != before.attention_reason:
        return f"{message} It is now flagged: {after.attention_reason}", "warning"
    return message, "info"


def resolve_message(applied_purchase: PurchaseView, delivered: bool, changed: bool) -> tuple[str, str]:
    if not changed:
        return (
            "Not applied: another actor (the worker, a provider callback or another staff member) settled "
            f"this purchase first. It is now {applied_purchase.status}; nothing else was changed.",
            "warning",
        )
    if delivered:
        return "Marked delivered: the purchase is now successful and its money settled.", "success"
    return (
        f"Marked failed: {format_naira(applied_purchase.amount_kobo)} was refunded to the customer's wallet "
        "(once) and the purchase is now failed.",
        "success",
    )


def needs_token(purchase: PurchaseView) -> bool:
    """A prepaid meter gets a token: marking one delivered by hand must record it for the customer."""
    return purchase.kind == "electricity" and purchase.variation_code == "prepaid"


def token_problem(raw: str) -> str | None:
    digits = re.sub(r"[\s-]", "", raw)
    if not digits:
        return "Enter the meter token from the provider's dashboard (the customer needs it to load units)."
    if not digits.isascii() or not digits.isdigit() or not 16 <= len(digits) <= 24:
        return "A meter token is 16 to 24 digits (spaces and dashes are fine)."
    return None


def format_token(raw: str) -> str:
    """'21640539749725474804' -> '2164-0539-7497-2547-4804' (how tokens are printed and read out)."""
    digits = re.sub(r"[\s-]", "", raw)
    return "-".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _detail_url(purchase_id: uuid.UUID) -> str:
    return f"/staff/purchases/{purchase_id}"


# -- the controller -------------------------------------------------------------------------------------
_AUDITED = ("status", "needs_attention", "attention_reason", "token")


async def _audit(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    action: str,
    purchase_id: uuid.UUID,
    before: object,
    after: object,
    *,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Record a staff action on a purchase. The purchase service commits its own transaction (no transaction
    is held while the provider is asked), so the entry is written right after, on the request's session."""
    await audit.record(
        db_session,
        audit.Actor.of(request),
        action,
        target=("purchase", purchase_id),
        before=audit.snapshot(before, *_AUDITED),
        after=audit.snapshot(after, *_AUDITED) | (extra or {}),
        reason=reason,
    )
    await db_session.commit()


class StaffPurchaseController(Controller):
    path = "/staff/purchases"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; actions below declare more
    include_in_schema = False

    @get("/", name="staff:purchases")
    async def index(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        status_filter: str | None = Parameter(query="status", default=None, required=False),
        attention: str | None = Parameter(query="attention", default=None, required=False),
        service: str | None = Parameter(query="service", default=None, required=False),
        search: str | None = Parameter(query="q", default=None, required=False),
        before: str | None = Parameter(query="before", default=None, required=False),
    ) -> Template:
        now = _now()
        filters = q.PurchaseFilter.from_query(
            status=status_filter, attention=attention, service=service, q=search
        )
        page = await q.list_purchases(db_session, filters, before=before, limit=PAGE_SIZE)
        context: dict[str, Any] = {
            **_helpers(now),
            "f": filters,
            "page": page,
            "more_url": self._more_url(filters, page.next_cursor),
            "paged": q.decode_cursor(before) is not None,
            "statuses": STATUSES,
            "services": SERVICES,
        }
        htmx = request.htmx
        if htmx and not htmx.history_restore_request:
            if htmx.target == "more-purchases":  # "load more": just the next rows
                return self._render(ROWS, context)
            if htmx.target == "purchase-results":  # the filter form
                return self._render(RESULTS, context)
        context["counts"] = await q.purchase_counts(db_session, now=now)
        show_open = not filters.active and not context["paged"]
        context["open"] = await q.open_purchases(db_session, now=now) if show_open else None
        return self._render(PAGE, context)

    @get("/counts", name="staff:purchase-counts")
    async def counts(self, db_session: AsyncSession) -> Template:
        now = _now()
        context = {**_helpers(now), "counts": await q.purchase_counts(db_session, now=now)}
        return self._render(COUNTS, context)

    @get("/open", name="staff:purchase-open")
    async def open_list(self, db_session: AsyncSession) -> Template:
        """The "needs action now" list alone (htmx polls it)."""
        now = _now()
        context = {
            **_helpers(now),
            "counts": await q.purchase_counts(db_session, now=now),
            "open": await q.open_purchases(db_session, now=now),
        }
        return self._render(OPEN, context)

    @get("/{purchase_id:uuid}/live", name="staff:purchase-live")
    async def live(self, db_session: AsyncSession, purchase_id: uuid.UUID) -> Template:
        """The detail page's status line and (out of band) its history, while the page polls."""
        row = (
            await db_session.execute(SELECT_PURCHASE.where(purchases_table.c.id == purchase_id))
        ).one_or_none()
        if row is None:
            raise NotFoundException("No such purchase.")
        purchase = PurchaseView.from_row(row)
        context = {**_helpers(_now()), "p": purchase, "history": status_history(purchase), "live": True}
        return self._render(LIVE, context)

    @get("/{purchase_id:uuid}", name="staff:purchase")
    async def detail(self, db_session: AsyncSession, purchase_id: uuid.UUID) -> Template:
        return await self._detail(db_session, purchase_id)

    @post("/{purchase_id:uuid}/requery", status_code=303)
    async def requery(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, purchase_id: uuid.UUID
    ) -> Redirect:
        staff = request.user.email
        # No database transaction stays open while the provider is asked (money invariant 8).
        await db_session.commit()
        purchases = await self._purchases(request)
        before = await self._get(purchases, purchase_id)
        if before.status == REVERSED:
            flash(request, "A reversed purchase is final: there is nothing to check.", category="info")
            return Redirect(_detail_url(purchase_id), status_code=303)
        try:
            after = await purchases.requery(purchase_id, source=f"staff:{staff}"[:80])
        except ProviderError as exc:
            log.error("staff_requery_provider_unavailable", purchase_id=str(purchase_id), error=exc.message)
            flash(request, f"Could not ask the provider: {exc.message}", category="error")
            return Redirect(_detail_url(purchase_id), status_code=303)
        if after is None:
            raise NotFoundException("No such purchase.")
        log.info(
            "staff_requery",
            purchase_id=str(purchase_id),
            staff=staff,
            before=before.status,
            after=after.status,
        )
        await _audit(request, db_session, "purchase.requery", purchase_id, before, after)
        message, category = requery_message(before, after)
        flash(request, message, category=category)
        return Redirect(_detail_url(purchase_id), status_code=303)

    @post("/{purchase_id:uuid}/resolve", status_code=303, opt=needs(OPERATIONS))
    async def resolve(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, purchase_id: uuid.UUID
    ) -> Redirect | Template:
        staff = request.user.email
        form = await request.form()
        values = {
            "decision": str(form.get("decision", "")).strip(),
            "note": str(form.get("note", "")).strip(),
            "confirm": str(form.get("confirm", "")).strip(),
            "token": str(form.get("token", "")).strip()[:64],
            "pins": str(form.get("pins", "")).strip()[:4000],
        }
        await db_session.commit()  # nothing of ours stays open while the service works
        purchases = await self._purchases(request)
        current = await self._get(purchases, purchase_id)
        if current.status != PENDING:
            flash(
                request,
                f"Not changed: this purchase is already {current.status}. Only a pending purchase can be "
                "resolved by hand.",
                category="error",
            )
            return Redirect(_detail_url(purchase_id), status_code=303)
        errors = self._resolve_errors(values)
        problem = token_problem(values["token"]) if needs_token(current) else None
        if values["decision"] == "delivered" and problem:
            errors["token"] = problem
        pins: tuple[ExamPin, ...] = ()
        if values["decision"] == "delivered" and current.kind == ServiceKind.EXAM.value:
            try:  # the customer sees only the PINs entered here: as many as were bought
                pins = staff_pins(values["pins"], current.quantity or 1)
            except ValueError as exc:
                errors["pins"] = str(exc)
        if errors:
            return await self._detail(db_session, purchase_id, form=values, errors=errors, status=400)
        delivered = DECISIONS[values["decision"]]
        token = format_token(values["token"]) if delivered and needs_token(current) else None
        try:
            applied = await purchases.resolve_manually(
                purchase_id, delivered=delivered, staff=staff, note=values["note"], token=token, pins=pins
            )
        except PurchaseError as exc:  # the service's own check of what was checked above
            errors["pins" if pins or current.kind == ServiceKind.EXAM.value else "decision"] = exc.message
            return await self._detail(db_session, purchase_id, form=values, errors=errors, status=400)
        if applied is None:
            raise NotFoundException("No such purchase.")
        await _audit(
            request,
            db_session,
            "purchase.resolve_delivered" if delivered else "purchase.resolve_failed",
            purchase_id,
            current,
            applied.purchase,
            reason=values["note"],
            extra={"applied": applied.changed},
        )
        message, category = resolve_message(applied.purchase, delivered, applied.changed)
        flash(request, message, category=category)
        return Redirect(_detail_url(purchase_id), status_code=303)

    @post("/{purchase_id:uuid}/clear-flag", status_code=303, opt=needs(OPERATIONS))
    async def clear_flag(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, purchase_id: uuid.UUID
    ) -> Redirect | Template:
        """A final purchase's flag (provider alert, conflict) handled: cleared with a note; no money moves."""
        staff = request.user.email
        form = await request.form()
        note = str(form.get("flag_note", "")).strip()
        await db_session.commit()  # nothing of ours stays open while the service works
        purchases = await self._purchases(request)
        current = await self._get(purchases, purchase_id)
        if current.status == PENDING or not current.needs_attention:
            why = (
                "it is still pending (settle it first)" if current.status == PENDING else "it is not flagged"
            )
            flash(request, f"Not changed: {why}.", category="error")
            return Redirect(_detail_url(purchase_id), status_code=303)
        if not note or len(note) > NOTE_MAX:
            problem = (
                "Write what was done about it (kept with the purchase)."
                if not note
                else (f"Keep the note under {NOTE_MAX} characters.")
            )
            return await self._detail(
                db_session, purchase_id, form={"flag_note": note}, errors={"flag_note": problem}, status=400
            )
        cleared = await purchases.clear_flag(purchase_id, staff=staff, note=note)
        if cleared is None:
            flash(request, "Not changed: someone else cleared or changed this flag first.", category="info")
        else:
            await _audit(
                request, db_session, "purchase.clear_flag", purchase_id, current, cleared, reason=note
            )
            flash(request, "Flag cleared. Your note is kept with the purchase.", category="success")
        return Redirect(_detail_url(purchase_id), status_code=303)

    # -- helpers ---------------------------------------------------------------------------------------------
    @staticmethod
    def _render(template: str, context: dict[str, Any], status: int = 200) -> Template:
        return Template(
            template_name=template,
            context=context,
            status_code=status,
            media_type=MediaType.HTML,
            headers=NO_STORE,
        )

    @staticmethod
    def _more_url(filters: q.PurchaseFilter, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        return "/staff/purchases?" + urlencode({**filters.query_args(), "before": cursor})

    @staticmethod
    async def _purchases(request: Request[Any, Any, Any]) -> PurchaseService:
        return (await get_vtu(request.app)).purchases

    @staticmethod
    async def _get(purchases: PurchaseService, purchase_id: uuid.UUID) -> PurchaseView:
        try:
            return await purchases.get(purchase_id)
        except PurchaseNotFound as exc:
            raise NotFoundException("No such purchase.") from exc

    @staticmethod
    def _resolve_errors(values: dict[str, str]) -> dict[str, str]:
        errors = {}
        if values["decision"] not in DECISIONS:
            errors["decision"] = "Choose “Mark delivered” or “Mark failed and refund”."
        if not values["note"]:
            errors["note"] = "Write what you checked with the provider and why (kept with the purchase)."
        elif len(values["note"]) > NOTE_MAX:
            errors["note"] = f"Keep the note under {NOTE_MAX} characters."
        if values["confirm"] not in {"yes", "on", "1"}:
            errors["confirm"] = "Tick the box to confirm you checked with the provider."
        return errors

    async def _detail(
        self,
        db_session: AsyncSession,
        purchase_id: uuid.UUID,
        *,
        form: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        row = (
            await db_session.execute(SELECT_PURCHASE.where(purchases_table.c.id == purchase_id))
        ).one_or_none()
        if row is None:
            raise NotFoundException("No such purchase.")
        purchase = PurchaseView.from_row(row)
        context = {
            **_helpers(_now()),
            "p": purchase,
            "needs_token": needs_token(purchase),
            "needs_pins": purchase.kind == ServiceKind.EXAM.value,
            "owner": await q.purchase_owner(db_session, purchase.user_id),
            "ledger": await q.purchase_ledger(db_session, purchase_id),
            "exchanges": exchange_views(purchase),
            "history": status_history(purchase),
            # Provider attempts (failover, VTpass 019 holds): empty for a purchase sent once.
            "provider_attempts": await failover.attempts_of(db_session, purchase_id),
            "form": form or {},
            "errors": errors or {},
        }
        return self._render(DETAIL, context, status)


__all__ = [
    "StaffPurchaseController",
    "ago",
    "due",
    "exchange_views",
    "pretty",
    "requery_message",
    "resolve_message",
    "status_history",
]
