"""Settling a purchase: send /pay once, then apply every answer about it (the /pay answer, scheduled
requeries, staff "check now" and decisions, VTpass callbacks) through the guarded transitions of
transitions.py (docs/architecture.md, purchase steps 3 to 6). Nothing here holds a transaction or a lock
across a provider call: the answer is in hand before any statement is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import uuid
from collections.abc import Mapping
from typing import Any

import structlog

from app.core.db import driver_connection
from app.core.encryption import cipher_for
from app.core.events import PURCHASE_FINISHED, PURCHASE_SETTLED
from app.core.request_context import purchase_context
from app.vtu import failover, reads
from app.vtu.context import PurchaseContext
from app.vtu.errors import PurchaseError, PurchaseNotFound
from app.vtu.exam import seal, settle_answer
from app.vtu.models import FAILED, PENDING, REVERSED, SUCCESSFUL
from app.vtu.opening import sells
from app.vtu.postings import PurchaseAccounts
from app.vtu.providers import (
    Outcome,
    Provider,
    ProviderError,
    ProviderResult,
    PurchaseOrder,
    callback_request_id,
    new_request_id,
)
from app.vtu.providers.base import ExamPin
from app.vtu.providers.catalog import ServiceKind, service_kind
from app.vtu.providers.mapping import redact
from app.vtu.transitions import (
    Applied,
    append_exchange,
    apply_result,
    clear_attention,
    deliver_alone,
    exchange_record,
    log_transition,
    settled_event,
    utcnow,
)
from app.vtu.views import PurchaseView

log = structlog.get_logger("app.vtu.settlement")


# -- when /pay may still be on its way ------------------------------------------------------------------
# paid_at is set when the purchase is opened. /pay then leaves within PAY_START_LIMIT (else it is not sent
# at all and the purchase fails, refunded) and is cut off after the provider's max_pay_seconds. Until a
# /pay exchange is logged, and for at most that long, the purchase may be on the wire: scheduled requeries
# and the sweep leave it alone, and VTpass's 015 "unknown request id" cannot be final yet.
PAY_START_LIMIT = datetime.timedelta(seconds=10)
# A requery job that finds its purchase's next attempt due within this long waits for it (SAQ schedules in
# whole seconds); further off, it leaves it to the job scheduled for it or the sweep.
SEND_EARLY_SECONDS = 2.0


def max_pay(provider: Provider) -> datetime.timedelta:
    """The longest the provider's /pay can take (cut off there by `_send_pay`)."""
    return datetime.timedelta(seconds=provider.max_pay_seconds)


def pay_record(purchase: PurchaseView) -> dict[str, Any] | None:
    """The logged /pay exchange of the current attempt (its answer or error), None while there is none.
    Records name their request id (a purchase may have had several attempts); one without a name was
    logged before failover existed, so it is the first and only attempt's."""
    return next(
        (
            r
            for r in reversed(purchase.exchanges or ())
            if r.get("kind") == "pay" and r.get("request_id", purchase.request_id) == purchase.request_id
        ),
        None,
    )


def pay_deadline(purchase: PurchaseView, longest: datetime.timedelta) -> datetime.datetime | None:
    """The latest moment /pay can still be on its way: paid_at + PAY_START_LIMIT + `longest` (max_pay)."""
    return purchase.paid_at + PAY_START_LIMIT + longest if purchase.paid_at is not None else None


def pay_in_flight(purchase: PurchaseView, longest: datetime.timedelta, now: datetime.datetime) -> bool:
    """A pending purchase whose /pay may still be on its way: none logged, and not past its deadline."""
    if purchase.status != PENDING or pay_record(purchase) is not None:
        return False
    deadline = pay_deadline(purchase, longest)
    return deadline is not None and now < deadline


def needs_token(purchase: PurchaseView) -> bool:
    """A prepaid electricity sale is delivered only with its token (see Provider.requery)."""
    return (
        service_kind(purchase.service_id) is ServiceKind.ELECTRICITY and purchase.variation_code == "prepaid"
    )


def unknown_request_anchor(purchase: PurchaseView, longest: datetime.timedelta) -> datetime.datetime | None:
    """When VTpass's 30 s grace for a 015 "unknown request id" starts: once /pay is over. That is when its
    answer or error came back (`finished_at` of the logged exchange); with nothing logged (still on its way,
    or the process died), the latest it can end. A 015 is final only 30 s after this."""
    record = pay_record(purchase)
    if record is None:
        return pay_deadline(purchase, longest)
    if record.get("finished_at"):
        return datetime.datetime.fromisoformat(record["finished_at"])
    # Logged before finished_at was: "at" is when it started; it finished within `longest`.
    return datetime.datetime.fromisoformat(record["at"]) + longest


async def _send_pay(provider: Provider, order: PurchaseOrder) -> ProviderResult:
    """/pay once, cut off after the provider's max_pay_seconds. Whatever goes wrong here, the order may have
    left: the answer is PENDING, never failed."""
    limit = provider.max_pay_seconds
    try:
        async with asyncio.timeout(limit):
            return await provider.purchase(order)
    except TimeoutError:
        log.warning("provider_purchase_cut_off", request_id=order.request_id, seconds=limit)
        return ProviderResult(Outcome.PENDING, None, f"No answer within {limit:g} s: requery later")
    except Exception as exc:
        log.exception("provider_purchase_raised", request_id=order.request_id)
        return ProviderResult(
            Outcome.PENDING, None, f"Provider call raised {type(exc).__name__}: requery later"
        )


class PurchaseSettlement:
    def __init__(self, ctx: PurchaseContext) -> None:
        self.ctx = ctx

    async def fulfil(
        self,
        purchase: PurchaseView,
        provider: Provider,
        channel: str,
        accounts: PurchaseAccounts | None,
        *,
        quantity: int | None = None,
    ) -> PurchaseView:
        """Send /pay for a purchase just opened and apply its answer; while it stays pending, requery 1 is
        handed to the worker. `quantity`: exam PINs to buy."""
        order = PurchaseOrder(
            request_id=purchase.request_id,
            service_id=purchase.service_id,
            amount_kobo=purchase.face_amount_kobo,
            phone=purchase.phone,
            billers_code=purchase.recipient if purchase.kind != ServiceKind.AIRTIME else None,
            variation_code=purchase.variation_code,
            subscription_type=purchase.subscription_type,
            # a later attempt (failover, 019 hold) sends the quantity the purchase was opened with
            quantity=quantity if quantity is not None else purchase.quantity,
        )
        started = utcnow()
        if purchase.paid_at is not None and started - purchase.paid_at > PAY_START_LIMIT:
            # Recording it took too long (a database under strain): sending now could outlast the window
            # in which others treat /pay as in flight. Nothing left this process, so it fails and refunds.
            log.warning(
                "purchase_pay_not_sent", purchase_id=str(purchase.id), late=str(started - purchase.paid_at)
            )
            result = ProviderResult(
                Outcome.FAILED,
                None,
                "Not sent to the provider: the purchase took too long to record",
                nothing_placed=True,
            )
        else:
            result = await _send_pay(provider, order)
        result = settle_answer(purchase.kind, result, cipher_for(self.ctx.settings))
        sent_at = result.request_log.get("sent_at")
        record = exchange_record(
            "pay",
            channel,
            started,
            result,
            finished_at=utcnow().isoformat(),
            request_id=order.request_id,
            provider=provider.slug,
            **({"sent_at": sent_at} if sent_at else {}),
        )
        try:
            applied = await self.apply(
                purchase.id,
                result,
                record,
                attempt=None,
                accounts=accounts,
                pending=purchase if purchase.attempt_no == 1 else None,
                request_id=order.request_id,
            )
        except Exception:  # the debit is committed and the purchase pending: the sweep will requery it
            log.exception(
                "purchase_answer_not_recorded", purchase_id=str(purchase.id), outcome=result.outcome
            )
            return purchase
        current = applied.purchase if applied else purchase
        if (
            current.status == PENDING
            and current.request_id == order.request_id  # not moved on to another attempt meanwhile
            and current.send_at is None
            and current.attempts == current.requery_base  # no requery of this attempt yet
            and current.next_requery_at is not None
        ):
            await self.ctx.scheduler.schedule(current.id, current.attempts + 1, current.next_requery_at)
        return current

    async def apply(
        self,
        purchase_id: uuid.UUID,
        result: ProviderResult,
        record: dict[str, Any],
        *,
        attempt: int | None,
        accounts: PurchaseAccounts | None = None,
        pending: PurchaseView | None = None,
        request_id: str | None = None,
    ) -> Applied | None:
        """Apply one answer (guarded: only one of racing answers moves the purchase and its money), then
        tell after-commit listeners when it did. `request_id`: the attempt the answer is about (None for a
        staff decision). A "nothing placed" failure moves the purchase to its next attempt when there is
        one (`_next_attempt`) instead of failing it."""
        if result.staff_alert:
            log.error(
                "provider_staff_alert",
                purchase_id=str(purchase_id),
                code=result.code,
                alert=result.staff_alert,
            )
        if request_id is not None and result.outcome is Outcome.FAILED and result.nothing_placed:
            moved = await self._next_attempt(
                purchase_id, result, record, request_id=request_id, attempt=attempt
            )
            if moved is not None:
                return moved
        applied = None
        if pending is not None and accounts is not None and result.outcome is Outcome.DELIVERED:
            applied = await self._deliver_alone(pending, result, record, accounts)
        if applied is None:
            async with self.ctx.engine.begin() as conn:
                applied = await apply_result(
                    conn,
                    purchase_id,
                    result,
                    record,
                    attempt=attempt,
                    schedule=self.ctx.schedule,
                    accounts=accounts,
                    request_id=request_id,
                )
        if applied is not None and applied.changed:
            # Committed: listeners hand follow-up work to the worker (e.g. a reseller's completion callback).
            # Their context is the PurchaseContext: the same sessionmaker / scheduler / providers attributes
            # as the PurchaseService facade.
            previous = applied.previous_status or PENDING
            await PURCHASE_FINISHED.emit(self.ctx, settled_event(applied.purchase, previous=previous))
        return applied

    async def _deliver_alone(
        self,
        pending: PurchaseView,
        result: ProviderResult,
        record: dict[str, Any],
        accounts: PurchaseAccounts,
    ) -> Applied | None:
        """The /pay answer "delivered" for a purchase we just opened: when no in-transaction listener wants
        the settlement (e.g. no referral share is due), purchase_deliver is the whole transaction, sent on
        its own (no BEGIN / COMMIT). None when it did not apply (another answer got there first, or a
        listener is interested): the caller then runs the general path in a transaction."""
        preview = settled_event(dataclasses.replace(pending, status=SUCCESSFUL), previous=PENDING)
        if PURCHASE_SETTLED.wanted(preview):
            return None
        async with driver_connection(self.ctx.engine) as driver:
            purchase = await deliver_alone(driver, pending.id, result, record, accounts)
        if purchase is None:
            return None
        log_transition(purchase, result, record)
        return Applied(purchase, changed=True, previous_status=PENDING)

    async def requery(
        self, purchase_id: uuid.UUID, *, source: str, attempt: int | None = None
    ) -> PurchaseView | None:
        """Ask the provider about a purchase and apply the answer.

        `attempt` is the scheduled requery number (worker jobs): it is skipped when already done or when
        the purchase is final, and the next one is scheduled while it stays pending. Without it (callback,
        staff "check now"), successful purchases are requeried too, so a reversal is noticed.
        """
        purchase = await reads.find(self.ctx.sessionmaker, purchase_id)
        if purchase is None:
            return None
        with purchase_context(purchase.id, purchase.request_id):  # on every line logged about it
            return await self._requery(purchase, source=source, attempt=attempt)

    async def _requery(self, purchase: PurchaseView, *, source: str, attempt: int | None) -> PurchaseView:
        purchase_id = purchase.id
        if purchase.status in (FAILED, REVERSED):
            if attempt is not None or purchase.status == REVERSED:
                return purchase
        elif attempt is not None and (purchase.status != PENDING or purchase.attempts >= attempt):
            return purchase  # a duplicate or late job: this requery already happened
        if purchase.status == PENDING and purchase.send_at is not None:
            # The current attempt is decided but not sent (a failover or a 019 hold): there is nothing to
            # ask the provider yet. When it is due, whoever gets here first sends it.
            wait = (purchase.send_at - utcnow()).total_seconds()
            if 0 < wait <= SEND_EARLY_SECONDS:  # a job scheduled in whole seconds may fire a moment early
                await asyncio.sleep(wait)
            if purchase.send_at <= utcnow():
                return await self.send_attempt(purchase.id, source=source, attempt=attempt) or purchase
            return purchase  # not due: the sweep hands it on once it is
        provider = self.ctx.providers.get(purchase.provider_slug)
        longest = max_pay(provider)
        started = utcnow()
        if attempt is not None and pay_in_flight(purchase, longest, started):
            # The /pay answer will settle it or schedule requery 1; if this process died, the sweep
            # finds it once /pay cannot be on its way any more.
            log.info("purchase_requery_skipped_pay_in_flight", purchase_id=str(purchase_id), attempt=attempt)
            return purchase
        try:
            anchor = unknown_request_anchor(purchase, longest)
            result = await provider.requery(
                purchase.request_id, paid_at=anchor, needs_token=needs_token(purchase)
            )
        except Exception as exc:  # the adapters return PENDING for network trouble; this is a bug or misuse
            log.exception("provider_requery_raised", purchase_id=str(purchase_id))
            result = ProviderResult(
                Outcome.PENDING, None, f"Requery raised {type(exc).__name__}: requery later"
            )
        result = settle_answer(purchase.kind, result, cipher_for(self.ctx.settings))
        record = exchange_record(
            "requery",
            source,
            started,
            result,
            attempt=attempt,
            request_id=purchase.request_id,
            provider=purchase.provider_slug,
        )
        applied = await self.apply(
            purchase_id, result, record, attempt=attempt, request_id=purchase.request_id
        )
        current = applied.purchase if applied else purchase
        if (
            attempt is not None
            and current.status == PENDING
            and current.request_id == purchase.request_id  # the same attempt (a new one schedules itself)
            and current.attempts == attempt
            and current.next_requery_at is not None
        ):
            await self.ctx.scheduler.schedule(current.id, attempt + 1, current.next_requery_at)
        return current

    # -- failover (docs/architecture.md, "Provider failover") ---------------------------------------------
    async def _next_attempt(
        self,
        purchase_id: uuid.UUID,
        result: ProviderResult,
        record: dict[str, Any],
        *,
        request_id: str,
        attempt: int | None,
    ) -> Applied | None:
        """The provider of attempt `request_id` definitely placed no order: start the next attempt, on the
        next usable provider not tried yet, or (VTpass 019, "retry later") on the same provider once the
        duplicate window has passed. Sent here and now when it is due now. None when there is no next
        attempt (the caller fails the purchase and refunds it) or this answer is not about the current
        attempt any more (the caller logs it as not applied)."""
        purchase = await reads.find(self.ctx.sessionmaker, purchase_id)
        if purchase is None or purchase.status != PENDING or purchase.request_id != request_id:
            return None
        if purchase.attempt_no >= self.ctx.config.max_provider_attempts:
            log.warning(
                "purchase_attempts_exhausted", purchase_id=str(purchase_id), attempts=purchase.attempt_no
            )
            return None
        slug = await self._next_provider(purchase)
        now = utcnow()
        send_at = now
        if slug is None:
            if not result.retry_later:
                return None
            slug = purchase.provider_slug
            send_at = now + datetime.timedelta(seconds=self.ctx.config.duplicate_hold_seconds)
        new_id = new_request_id(send_at)  # VTpass checks the Lagos-time prefix against when it arrives
        async with self.ctx.engine.begin() as conn:
            switched = await failover.switch(
                conn,
                purchase,
                result,
                record,
                slug=slug,
                new_request_id=new_id,
                send_at=send_at,
                attempt=attempt,
                held=result.retry_later and slug == purchase.provider_slug,
            )
        if switched is None:
            return None
        log.warning(
            "purchase_failover",
            purchase_id=str(purchase_id),
            code=result.code,
            from_provider=purchase.provider_slug,
            to_provider=slug,
            request_id=new_id,
            send_at=send_at.isoformat(),
            attempt_no=switched.attempt_no,
        )
        if send_at > now:
            await self.ctx.scheduler.schedule(switched.id, switched.attempts + 1, send_at)
            return Applied(switched, changed=False)
        sent = await self.send_attempt(purchase_id, source=str(record.get("source") or "failover"))
        return Applied(sent or switched, changed=False)

    async def _next_provider(self, purchase: PurchaseView) -> str | None:
        """The next usable provider for this purchase that it has not tried and that can take it."""
        async with self.ctx.sessionmaker() as session:
            tried = await failover.tried_slugs(session, purchase)

            async def can_take(slug: str) -> bool:
                return self.ctx.providers.usable_slug(slug) and await sells(
                    session,
                    slug,
                    purchase.kind,
                    purchase.service_id,
                    purchase.variation_code,
                    purchase.subscription_type,
                )

            return await self.ctx.router.choose(
                purchase.service_id,
                purchase.face_amount_kobo,
                can_take=can_take,
                exclude=tried,
                executor=session,
            )

    async def send_attempt(
        self, purchase_id: uuid.UUID, *, source: str, attempt: int | None = None
    ) -> PurchaseView | None:
        """Send the current attempt's /pay if it is due and nobody has taken it (a compare-and-set, so it
        goes out once), then apply its answer like any /pay answer. None when there was nothing to send."""
        async with self.ctx.engine.begin() as conn:
            claimed = await failover.claim(conn, purchase_id, self.ctx.schedule, attempt=attempt)
        if claimed is None:
            return None
        try:
            provider = self.ctx.providers.get(claimed.provider_slug)
        except ProviderError as exc:  # cannot be built here any more (e.g. credentials removed)
            log.error(
                "purchase_attempt_provider_unavailable", purchase_id=str(purchase_id), error=exc.message
            )
            result = ProviderResult(
                Outcome.FAILED,
                None,
                f"Not sent to {claimed.provider_slug}: {exc.message}",
                nothing_placed=True,
            )
            record = exchange_record(
                "pay",
                source,
                utcnow(),
                result,
                request_id=claimed.request_id,
                finished_at=utcnow().isoformat(),
            )
            applied = await self.apply(
                purchase_id, result, record, attempt=None, request_id=claimed.request_id
            )
            return applied.purchase if applied else claimed
        with purchase_context(claimed.id, claimed.request_id):
            return await self.fulfil(claimed, provider, source, None)

    async def resolve_manually(
        self,
        purchase_id: uuid.UUID,
        *,
        delivered: bool,
        staff: str,
        note: str,
        token: str | None = None,
        pins: tuple[ExamPin, ...] = (),
    ) -> Applied | None:
        """A staff decision on a purchase the provider cannot settle: see PurchaseService.resolve_manually."""
        outcome = Outcome.DELIVERED if delivered else Outcome.FAILED
        # A prepaid meter's token, read off the provider's dashboard, so the customer's receipt shows it.
        token = (token or "").strip() or None if delivered else None
        result = ProviderResult(outcome, None, f"Resolved by staff ({staff}): {note}"[:2000], token=token)
        if delivered:
            try:
                purchase = await reads.get(self.ctx.sessionmaker, purchase_id)
            except PurchaseNotFound:
                return None
            if purchase.kind == ServiceKind.EXAM.value:
                # The customer paid for `quantity` PINs and sees only these: never delivered with fewer.
                wanted = purchase.quantity or 1
                if len(pins) != wanted:
                    raise PurchaseError(f"An exam purchase is delivered with its {wanted} PIN(s) entered.")
                result = dataclasses.replace(result, sealed_pins=seal(pins, cipher_for(self.ctx.settings)))
        record = exchange_record("staff", staff[:64], utcnow(), result, note=note[:500])
        with purchase_context(purchase_id):
            log.warning("purchase_resolved_by_staff", delivered=delivered, staff=staff)
            return await self.apply(purchase_id, result, record, attempt=None)

    async def clear_flag(self, purchase_id: uuid.UUID, *, staff: str, note: str) -> PurchaseView | None:
        """Staff mark a final purchase's flag handled: see PurchaseService.clear_flag."""
        record = exchange_record("staff", staff[:64], utcnow(), note=note[:500], action="clear_flag")
        async with self.ctx.engine.begin() as conn:
            cleared = await clear_attention(conn, purchase_id, record)
        if cleared is not None:
            log.info("purchase_flag_cleared", purchase_id=str(purchase_id), staff=staff)
        return cleared

    async def handle_callback(self, payload: Any, *, source: str = "callback") -> str:
        """A VTpass callback: never trusted on its own. `transaction-update` makes us requery the purchase
        and apply THAT answer. Returns what happened (for logs); unknown ids and other types are ignored."""
        kind = payload.get("type") if isinstance(payload, Mapping) else None
        if kind != "transaction-update":
            log.info("vtpass_callback_ignored", type=str(kind)[:40])
            return "ignored"
        request_id = callback_request_id(payload)
        if not request_id:
            log.warning("vtpass_callback_without_request_id")
            return "ignored"
        return await self.handle_hint(request_id, payload, source=source)

    async def handle_hint(self, request_id: str, payload: Any, *, source: str = "callback") -> str:
        """A provider said something about `request_id` (a VTpass or ClubKonnect callback): log what it
        claimed on the purchase, then requery its own provider and apply THAT answer."""
        async with self.ctx.sessionmaker() as session:
            purchase_id = await reads.by_request_id(session, request_id)
            if purchase_id is None:
                log.warning("provider_callback_unknown_request_id", request_id=request_id[:40])
                return "unknown"
            # Log what the callback claimed; only the requery below can change anything.
            note = exchange_record("callback", source, utcnow(), body=redact(payload))
            await append_exchange(session, purchase_id, note)
            await session.commit()
        purchase = await self.requery(purchase_id, source=source)
        return purchase.status if purchase else "unknown"


__all__ = [
    "PAY_START_LIMIT",
    "PurchaseSettlement",
    "max_pay",
    "pay_deadline",
    "pay_in_flight",
    "pay_record",
    "unknown_request_anchor",
]
