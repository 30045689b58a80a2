"""The purchase service: the only way to buy (web pages and the reseller API both call it).

Lifecycle (DESIGN.md "Purchase lifecycle"):
1. validate and price (no writes);
2. ONE short DB transaction: insert the purchase (pending, fresh provider request_id) and debit the wallet
   into purchases-in-flight (`purchase:<id>`); commit;
3. only then call the provider (never inside a transaction or under a lock);
4. apply the answer with a guarded update (transitions.py): delivered / failed + refund / still pending,
   in which case requery `attempt` 1 is handed to the SAQ worker. Requeries continue on
   settings.requery_schedule_seconds; after the last one the purchase stays pending, flagged for staff.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from app.config.settings import Settings
from app.core.events import PURCHASE_FINISHED
from app.core.validation import format_naira
from app.ledger import errors as ledger_errors
from app.ledger.queries import wallet_balance
from app.vtu import plans as plan_queries
from app.vtu.config import VtuConfig
from app.vtu.errors import (
    CustomerNotFound,
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidPurchase,
    PurchaseNotFound,
    ServiceUnavailable,
)
from app.vtu.models import FAILED, PENDING, REVERSED, STATUSES
from app.vtu.orders import Order, PurchaseRequest, validate
from app.vtu.postings import PurchaseAccounts, post_debit
from app.vtu.pricing import Price, price_for
from app.vtu.providers import (
    CustomerInfo,
    CustomerVerificationFailed,
    Outcome,
    Provider,
    ProviderError,
    ProviderResult,
    PurchaseOrder,
    callback_request_id,
    new_request_id,
)
from app.vtu.providers.catalog import ServiceKind, get_service
from app.vtu.providers.mapping import redact
from app.vtu.registry import ProviderRegistry
from app.vtu.scheduling import Scheduled, VerificationScheduler
from app.vtu.transitions import (
    Applied,
    append_exchange,
    apply_result,
    exchange_record,
    settled_event,
    utcnow,
)
from app.vtu.views import SELECT_PURCHASE, Executor, PurchaseView, purchases_table

log = structlog.get_logger("app.vtu.service")

SWEEP_GRACE_SECONDS = 15  # a job due this long ago and not run is presumed lost (re-enqueue is harmless)
SWEEP_BATCH = 500


# A check inside the purchase transaction (see PurchaseService.buy); raising aborts the purchase.
BeforeDebit = Callable[[AsyncConnection, PurchaseView], Awaitable[None]]


class Buyer(Protocol):
    """What the service needs to know about the buyer (app.accounts.models.User fits)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def tier(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Quote:
    """A validated, priced request (nothing written): for confirmation pages and API dry runs."""

    order: Order
    price: Price
    provider_slug: str
    product_name: str
    customer: CustomerInfo | None = None

    @property
    def amount_kobo(self) -> int:
        return self.price.selling_kobo


@dataclass(slots=True)
class SweepReport:
    due: int = 0
    enqueued: int = 0
    already_queued: int = 0
    revived: int = 0
    unavailable: int = 0
    requeried: int = 0  # inline sweeps only
    ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.due} pending purchases due for a requery: {self.enqueued} enqueued, "
            f"{self.revived} revived from a lost job, {self.already_queued} already queued, "
            f"{self.unavailable} not enqueued (queue unavailable), {self.requeried} requeried inline"
        )


def request_hash(request: PurchaseRequest) -> str:
    """Fingerprint of what was asked for (same Idempotency-Key + same body -> same purchase)."""
    canonical = json.dumps(request.canonical(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def grace_anchor(purchase: PurchaseView) -> datetime.datetime | None:
    """When /pay was (or was about to be) sent: the latest of paid_at and the logged pay attempt.
    VTpass's 015 'unknown request id' only means failed 30 s after this."""
    anchor = purchase.paid_at
    for record in purchase.exchanges or ():
        if record.get("kind") == "pay" and record.get("at"):
            sent = datetime.datetime.fromisoformat(record["at"])
            anchor = sent if anchor is None or sent > anchor else anchor
    return anchor


class PurchaseService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        config: VtuConfig,
        providers: ProviderRegistry,
        scheduler: VerificationScheduler,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.config = config
        self.providers = providers
        self.scheduler = scheduler
        self._background: set[asyncio.Task[Any]] = set()
        # The purchase path runs Core statements on a plain connection (no ORM session bookkeeping).
        engine = sessionmaker.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("PurchaseService needs a sessionmaker bound to an AsyncEngine")
        self._engine = engine

    @property
    def schedule(self) -> Sequence[int]:
        return self.settings.requery_schedule_seconds

    # -- before buying --------------------------------------------------------------------------------
    async def verify_customer(
        self, service_id: str, customer_number: str, type: str | None = None
    ) -> CustomerInfo:
        """Merchant-verify a meter (type prepaid|postpaid) or smartcard before selling to it.

        Raises CustomerNotFound (the number was rejected) or ServiceUnavailable (the provider did not answer).
        """
        service = get_service(service_id)
        if service is None or service.kind not in (ServiceKind.ELECTRICITY, ServiceKind.CABLE):
            raise InvalidPurchase({"service_id": "Only electricity and cable customers can be verified."})
        field_name = "meter_number" if service.kind is ServiceKind.ELECTRICITY else "smartcard_number"
        provider = self._provider_for(service_id)
        try:
            return await provider.verify_customer(service_id, customer_number.strip(), type)
        except CustomerVerificationFailed as exc:
            raise CustomerNotFound(field_name, exc.message) from exc
        except ProviderError as exc:
            if exc.staff_alert:
                log.error("provider_staff_alert", provider=provider.slug, alert=exc.staff_alert)
            raise ServiceUnavailable(
                f"We could not check this {field_name.split('_')[0]} right now."
            ) from exc

    async def quote(self, buyer: Buyer, request: PurchaseRequest) -> Quote:
        """Validate and price a request for `buyer` (verifying meters / smartcards). Writes nothing."""
        order = validate(request, self.config, allow_sandbox=not self.settings.is_prod)
        customer = await self._verify_for(order)
        async with self.sessionmaker() as session:
            return await self._price(session, buyer, order, customer)

    async def _verify_for(self, order: Order) -> CustomerInfo | None:
        if order.kind is ServiceKind.ELECTRICITY:
            info = await self.verify_customer(order.service.service_id, order.recipient, order.variation_code)
            low = max(self.config.electricity_min_kobo, info.minimum_amount_kobo or 0)
            if info.can_vend is False:
                raise CustomerNotFound("meter_number", "This meter cannot be vended at the moment.")
            if order.amount_kobo is not None and order.amount_kobo < low:
                raise InvalidPurchase({"amount_kobo": f"The minimum for this meter is {format_naira(low)}."})
            return info
        if order.kind is ServiceKind.CABLE:
            return await self.verify_customer(order.service.service_id, order.recipient, None)
        return None

    async def _price(
        self, session: Executor, buyer: Buyer, order: Order, customer: CustomerInfo | None
    ) -> Quote:
        slug = self._provider_for(order.service.service_id).slug
        kind, name = order.kind, order.service.name
        face: int | None = order.amount_kobo
        if kind in (ServiceKind.DATA, ServiceKind.CABLE) and order.variation_code:
            plan = await plan_queries.active_plan(
                session, slug, order.service.service_id, order.variation_code
            )
            if plan is None and order.subscription_type != "renew":
                raise InvalidPurchase({"variation_code": "Unknown or unavailable plan."})
            if plan is not None:
                face, name = plan
        if kind is ServiceKind.CABLE and order.subscription_type == "renew":
            # Renewals are priced by the provider's Renewal_Amount for this smartcard.
            renewal = customer.renewal_amount_kobo if customer else None
            face = renewal or face
            name = f"{order.service.brand} renewal" + (
                f" ({customer.details.get('Current_Bouquet')})"
                if customer and customer.details.get("Current_Bouquet")
                else ""
            )
        if face is None or face <= 0:
            raise InvalidPurchase({"variation_code": "This product has no price; choose another plan."})
        if kind in (ServiceKind.AIRTIME, ServiceKind.ELECTRICITY):
            extra = f" {order.variation_code}" if kind is ServiceKind.ELECTRICITY else ""
            name = f"{order.service.name}{extra} {format_naira(face)}"
        price = await price_for(
            session,
            tier=buyer.tier,
            service_id=order.service.service_id,
            kind=kind,
            face_kobo=face,
            variation_code=order.variation_code if kind in (ServiceKind.DATA, ServiceKind.CABLE) else None,
            config=self.config,
        )
        return Quote(order, price, slug, name[:200], customer)

    # -- buying ----------------------------------------------------------------------------------------
    async def buy(
        self,
        buyer: Buyer,
        request: PurchaseRequest,
        *,
        channel: str = "web",
        api_key_id: uuid.UUID | None = None,
        idempotency_key: str | None = None,
        before_debit: BeforeDebit | None = None,
    ) -> PurchaseView:
        """Sell `request` to `buyer`; returns the purchase (successful, failed or pending).

        Raises InvalidPurchase, CustomerNotFound, ServiceUnavailable, InsufficientFunds or
        IdempotencyMismatch, all before anything is written. With an idempotency key, a repeat of the same
        request (also a concurrent one) returns the original purchase without a second debit.

        `before_debit(conn, purchase)` runs inside the purchase transaction, after the purchase row is
        inserted (so a concurrent twin with the same idempotency key has already become a replay) and
        before the debit; whatever it raises rolls the whole purchase back (e.g. the API's daily spend
        limit, which locks and sums in this transaction).
        """
        if channel not in ("web", "api"):
            raise ValueError(f"unknown channel {channel!r}")
        fingerprint = request_hash(request) if idempotency_key else None
        if idempotency_key:
            if len(idempotency_key) > 255 or not idempotency_key.strip():
                raise InvalidPurchase({"idempotency_key": "Use 1 to 255 characters."})
            existing = await self._by_idempotency_key(buyer.id, idempotency_key)
            if existing is not None:
                return self._replay(existing, idempotency_key, fingerprint)
        order = validate(request, self.config, allow_sandbox=not self.settings.is_prod)
        provider = self._provider_for(order.service.service_id)  # before any write: fail fast if unusable
        customer = await self._verify_for(order)
        purchase_id = uuid7()
        now = utcnow()
        try:
            async with self._engine.begin() as conn:
                quote = await self._price(conn, buyer, order, customer)
                purchase = await self._insert(
                    conn,
                    purchase_id,
                    buyer,
                    quote,
                    now,
                    channel,
                    api_key_id,
                    idempotency_key,
                    fingerprint,
                )
                if purchase is None:  # a concurrent request with this key won the insert
                    raise _LostIdempotencyRace
                if before_debit is not None:
                    await before_debit(conn, purchase)
                accounts = await post_debit(
                    conn,
                    purchase_id=purchase_id,
                    user_id=buyer.id,
                    amount_kobo=quote.price.selling_kobo,
                    provider_slug=quote.provider_slug,
                    actor=f"user:{buyer.id}",
                )
        except ledger_errors.InsufficientFunds as exc:
            raise InsufficientFunds(price_kobo=quote.price.selling_kobo, balance_kobo=exc.balance) from exc
        except _LostIdempotencyRace:
            winner = await self._by_idempotency_key(buyer.id, idempotency_key or "")
            if winner is None:  # the winner rolled back after all: our insert would have gone in
                raise ServiceUnavailable("Please retry this purchase.") from None
            return self._replay(winner, idempotency_key or "", fingerprint)
        log.info("purchase_created", purchase_id=str(purchase_id), service_id=purchase.service_id,
                 amount_kobo=purchase.amount_kobo, channel=channel)  # fmt: skip
        # Past this point money has moved and the order may reach the provider: finish the bookkeeping even
        # if the caller goes away (a disconnected browser must not leave the /pay answer unrecorded).
        task = asyncio.ensure_future(self._fulfil(purchase, provider, channel, accounts))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return await asyncio.shield(task)

    async def _insert(
        self,
        session: Executor,
        purchase_id: uuid.UUID,
        buyer: Buyer,
        quote: Quote,
        now: datetime.datetime,
        channel: str,
        api_key_id: uuid.UUID | None,
        idempotency_key: str | None,
        fingerprint: str | None,
    ) -> PurchaseView | None:
        order, price = quote.order, quote.price
        values = {
            "id": purchase_id,
            "user_id": buyer.id,
            "channel": channel,
            "service_id": order.service.service_id,
            "kind": order.kind.value,
            "recipient": order.recipient,
            "phone": order.phone,
            "variation_code": order.variation_code,
            "subscription_type": order.subscription_type,
            "product_name": quote.product_name,
            "customer_name": quote.customer.name[:200] if quote.customer else None,
            "amount_kobo": price.selling_kobo,
            "face_amount_kobo": price.face_kobo,
            "cost_kobo": price.cost_kobo,
            "status": PENDING,
            "needs_attention": False,
            "attention_reason": None,
            "provider_slug": quote.provider_slug,
            "provider_reference": None,
            "provider_code": None,
            "provider_message": None,
            "token": None,
            "units": None,
            "completed_at": None,
            "request_id": new_request_id(now),
            # /pay is sent right after this commits; if we die first, the sweep requeries from here.
            "paid_at": now,
            "next_requery_at": now + datetime.timedelta(seconds=self.schedule[0]),
            "attempts": 0,
            "exchanges": [],
            "api_key_id": api_key_id,
            "idempotency_key": idempotency_key,
            "request_hash": fingerprint,
            "created_at": now,
            "updated_at": now,
        }
        if idempotency_key:
            if (await session.execute(_INSERT_ONCE_PER_KEY, values)).first() is None:
                return None  # a concurrent request with this key won the insert
        else:
            await session.execute(_INSERT, values)
        return PurchaseView.from_mapping(values)

    async def _by_idempotency_key(self, user_id: uuid.UUID, key: str) -> PurchaseView | None:
        query = SELECT_PURCHASE.where(_c.user_id == user_id, _c.idempotency_key == key)
        return await self._one(query)

    async def _one(self, query: Any) -> PurchaseView | None:
        async with self.sessionmaker() as session:
            row = (await session.execute(query)).one_or_none()
        return PurchaseView.from_row(row) if row is not None else None

    @staticmethod
    def _replay(existing: PurchaseView, key: str, fingerprint: str | None) -> PurchaseView:
        if existing.request_hash != fingerprint:
            raise IdempotencyMismatch(key)
        return existing

    def _provider_for(self, service_id: str) -> Provider:
        try:
            return self.providers.for_service(service_id)
        except ProviderError as exc:  # e.g. VTU_PROVIDER=vtpass without credentials
            log.error("provider_unavailable", service_id=service_id, error=exc.message, alert=exc.staff_alert)
            raise ServiceUnavailable("This service is not available right now.") from exc

    async def _fulfil(
        self, purchase: PurchaseView, provider: Provider, channel: str, accounts: PurchaseAccounts
    ) -> PurchaseView:
        order = PurchaseOrder(
            request_id=purchase.request_id,
            service_id=purchase.service_id,
            amount_kobo=purchase.face_amount_kobo,
            phone=purchase.phone,
            billers_code=purchase.recipient if purchase.kind != ServiceKind.AIRTIME else None,
            variation_code=purchase.variation_code,
            subscription_type=purchase.subscription_type,
        )
        started = utcnow()
        result = await _safe_call(provider, order)
        record = exchange_record("pay", channel, started, result)
        try:
            applied = await self._apply(purchase.id, result, record, attempt=None, accounts=accounts)
        except Exception:  # the debit is committed and the purchase pending: the sweep will requery it
            log.exception(
                "purchase_answer_not_recorded", purchase_id=str(purchase.id), outcome=result.outcome
            )
            return purchase
        current = applied.purchase if applied else purchase
        if current.status == PENDING and current.attempts == 0 and current.next_requery_at is not None:
            await self.scheduler.schedule(current.id, 1, current.next_requery_at)
        return current

    async def _apply(
        self,
        purchase_id: uuid.UUID,
        result: ProviderResult,
        record: dict[str, Any],
        *,
        attempt: int | None,
        accounts: PurchaseAccounts | None = None,
    ) -> Applied | None:
        if result.staff_alert:
            log.error(
                "provider_staff_alert",
                purchase_id=str(purchase_id),
                code=result.code,
                alert=result.staff_alert,
            )
        async with self._engine.begin() as conn:
            applied = await apply_result(
                conn, purchase_id, result, record, attempt=attempt, schedule=self.schedule, accounts=accounts
            )
        if applied is not None and applied.changed:
            # Committed: listeners hand follow-up work to the worker (e.g. a reseller's completion callback).
            previous = applied.previous_status or PENDING
            await PURCHASE_FINISHED.emit(self, settled_event(applied.purchase, previous=previous))
        return applied

    # -- after buying: requery, callbacks, sweep ------------------------------------------------------
    async def requery(
        self, purchase_id: uuid.UUID, *, source: str, attempt: int | None = None
    ) -> PurchaseView | None:
        """Ask the provider about a purchase and apply the answer.

        `attempt` is the scheduled requery number (worker jobs): it is skipped when already done or when
        the purchase is final, and the next one is scheduled while it stays pending. Without it (callback,
        staff "check now"), successful purchases are requeried too, so a reversal is noticed.
        """
        purchase = await self._one(SELECT_PURCHASE.where(_c.id == purchase_id))
        if purchase is None:
            return None
        if purchase.status in (FAILED, REVERSED):
            if attempt is not None or purchase.status == REVERSED:
                return purchase
        elif attempt is not None and (purchase.status != PENDING or purchase.attempts >= attempt):
            return purchase  # a duplicate or late job: this requery already happened
        provider = self.providers.get(purchase.provider_slug)
        started = utcnow()
        try:
            result = await provider.requery(purchase.request_id, paid_at=grace_anchor(purchase))
        except Exception as exc:  # the adapters return PENDING for network trouble; this is a bug or misuse
            log.exception("provider_requery_raised", purchase_id=str(purchase_id))
            result = ProviderResult(
                Outcome.PENDING, None, f"Requery raised {type(exc).__name__}: requery later"
            )
        record = exchange_record("requery", source, started, result, attempt=attempt)
        applied = await self._apply(purchase_id, result, record, attempt=attempt)
        current = applied.purchase if applied else purchase
        if (
            attempt is not None
            and current.status == PENDING
            and current.attempts == attempt
            and current.next_requery_at is not None
        ):
            await self.scheduler.schedule(current.id, attempt + 1, current.next_requery_at)
        return current

    async def resolve_manually(
        self, purchase_id: uuid.UUID, *, delivered: bool, staff: str, note: str
    ) -> Applied | None:
        """A staff decision on a purchase the provider cannot settle (after checking with the provider):
        delivered -> successful (settles the money), otherwise failed + refund. Only a pending purchase
        moves, through the same guarded transition as the worker and callbacks; `changed` says whether
        this decision was the one applied. None if there is no such purchase."""
        outcome = Outcome.DELIVERED if delivered else Outcome.FAILED
        result = ProviderResult(outcome, None, f"Resolved by staff ({staff}): {note}"[:2000])
        record = exchange_record("staff", staff[:64], utcnow(), result, note=note[:500])
        log.warning(
            "purchase_resolved_by_staff", purchase_id=str(purchase_id), delivered=delivered, staff=staff
        )
        return await self._apply(purchase_id, result, record, attempt=None)

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
        async with self.sessionmaker() as session:
            purchase_id = (
                await session.execute(select(_c.id).where(_c.request_id == request_id[:40]))
            ).scalar_one_or_none()
            if purchase_id is None:
                log.warning("vtpass_callback_unknown_request_id", request_id=request_id[:40])
                return "unknown"
            # Log what the callback claimed; only the requery below can change anything.
            note = exchange_record("callback", source, utcnow(), body=redact(payload))
            await append_exchange(session, purchase_id, note)
            await session.commit()
        purchase = await self.requery(purchase_id, source=source)
        return purchase.status if purchase else "unknown"

    async def sweep(
        self, *, grace_seconds: int = SWEEP_GRACE_SECONDS, limit: int = SWEEP_BATCH, inline: bool = False
    ) -> SweepReport:
        """Find pending purchases whose requery is overdue (its job was lost: worker killed, Redis flushed,
        enqueue failed) and hand them to the worker again, or requery them here with `inline`."""
        cutoff = utcnow() - datetime.timedelta(seconds=grace_seconds)
        async with self.sessionmaker() as session:
            due = (
                await session.execute(
                    select(_c.id, _c.attempts)
                    .where(_c.status == PENDING, _c.next_requery_at <= cutoff)
                    .order_by(_c.next_requery_at)
                    .limit(limit)
                )
            ).all()
        report = SweepReport(due=len(due))
        now = utcnow()
        for purchase_id, attempts in due:
            report.ids.append(str(purchase_id))
            if inline:
                try:
                    await self.requery(purchase_id, source="sweep", attempt=attempts + 1)
                    report.requeried += 1
                except Exception:  # one broken purchase must not stop the sweep of the others
                    log.exception("purchase_sweep_requery_failed", purchase_id=str(purchase_id))
                continue
            outcome: Scheduled = await self.scheduler.schedule(
                purchase_id, attempts + 1, now, revive_stuck=True
            )
            setattr(report, outcome, getattr(report, outcome) + 1)
        if report.due:
            log.info("purchase_sweep", **{k: v for k, v in vars_of(report).items() if k != "ids"})
        return report

    # -- reading ---------------------------------------------------------------------------------------
    async def get(self, purchase_id: uuid.UUID, *, user_id: uuid.UUID | None = None) -> PurchaseView:
        """A purchase; with `user_id`, only that user's (PurchaseNotFound otherwise, also for others')."""
        purchase = await self._one(SELECT_PURCHASE.where(_c.id == purchase_id))
        if purchase is None or (user_id is not None and purchase.user_id != user_id):
            raise PurchaseNotFound("No such purchase.")
        return purchase

    async def list_for_user(
        self,
        user_id: uuid.UUID,
        *,
        status: str | None = None,
        limit: int = 50,
        before: datetime.datetime | None = None,
    ) -> list[PurchaseView]:
        """The user's purchases, newest first (keyset on created_at with `before`)."""
        if status is not None and status not in STATUSES:
            raise InvalidPurchase({"status": f"Use one of {', '.join(STATUSES)}."})
        stmt = SELECT_PURCHASE.where(_c.user_id == user_id)
        if status:
            stmt = stmt.where(_c.status == status)
        if before is not None:
            stmt = stmt.where(_c.created_at < before)
        stmt = stmt.order_by(_c.created_at.desc()).limit(max(1, min(limit, 200)))
        async with self.sessionmaker() as session:
            return [PurchaseView.from_row(row) for row in await session.execute(stmt)]

    async def balance(self, user_id: uuid.UUID) -> int:
        async with self.sessionmaker() as session:
            return await wallet_balance(session, user_id)


_c = purchases_table.c
# Built once (this is the hot path). With an idempotency key, a concurrent twin waits for the winner's
# commit on the unique index and then inserts nothing.
_INSERT = insert(purchases_table)
_INSERT_ONCE_PER_KEY = (
    insert(purchases_table)
    .on_conflict_do_nothing(
        index_elements=["user_id", "idempotency_key"], index_where=text("idempotency_key IS NOT NULL")
    )
    .returning(_c.id)
)


class _LostIdempotencyRace(Exception):
    pass


async def _safe_call(provider: Provider, order: PurchaseOrder) -> ProviderResult:
    """/pay once. Whatever goes wrong here, the order may have left: the answer is PENDING, never failed."""
    try:
        return await provider.purchase(order)
    except Exception as exc:
        log.exception("provider_purchase_raised", request_id=order.request_id)
        return ProviderResult(
            Outcome.PENDING, None, f"Provider call raised {type(exc).__name__}: requery later"
        )


def vars_of(report: SweepReport) -> dict[str, Any]:
    return {k: getattr(report, k) for k in report.__dataclass_fields__}


__all__ = [
    "Applied",
    "BeforeDebit",
    "Buyer",
    "PurchaseService",
    "Quote",
    "SweepReport",
    "grace_anchor",
    "request_hash",
]
