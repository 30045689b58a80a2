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
import dataclasses
import datetime
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import structlog
from sqlalchemy import literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from app.config.settings import Settings
from app.core.db import driver_connection
from app.core.events import PURCHASE_FINISHED, PURCHASE_SETTLED
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
    SpendLimitExceeded,
)
from app.vtu.models import FAILED, PENDING, REVERSED, STATUSES, SUCCESSFUL
from app.vtu.orders import Order, PurchaseRequest, validate
from app.vtu.postings import PurchaseAccounts, purchase_accounts
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
    clear_attention,
    deliver_alone,
    exchange_record,
    log_transition,
    settled_event,
    utcnow,
)
from app.vtu.views import SELECT_PURCHASE, Executor, PurchaseView, purchases_table

log = structlog.get_logger("app.vtu.service")

SWEEP_GRACE_SECONDS = 15  # a job due this long ago and not run is presumed lost (re-enqueue is harmless)
SWEEP_BATCH = 500


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
        self,
        session: Executor,
        buyer: Buyer,
        order: Order,
        customer: CustomerInfo | None,
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
        renewal_priced = False
        if kind is ServiceKind.CABLE and order.subscription_type == "renew":
            # Renewals are priced by the provider's Renewal_Amount for this smartcard.
            renewal = customer.renewal_amount_kobo if customer else None
            renewal_priced = bool(renewal)
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
        # A renewal's face is the card's own renewal amount, whatever bouquet code came with the request: a
        # plan's rule (e.g. a fixed price for a cheaper bouquet) must not price it, nor any fixed price.
        by_plan = kind in (ServiceKind.DATA, ServiceKind.CABLE) and not renewal_priced
        price = await price_for(
            session,
            tier=buyer.tier,
            service_id=order.service.service_id,
            kind=kind,
            face_kobo=face,
            variation_code=order.variation_code if by_plan else None,
            config=self.config,
            fixed_price_allowed=not renewal_priced,
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
        spend_limit: SpendLimit | None = None,
    ) -> PurchaseView:
        """Sell `request` to `buyer`; returns the purchase (successful, failed or pending).

        Raises InvalidPurchase, CustomerNotFound, ServiceUnavailable, InsufficientFunds, SpendLimitExceeded
        or IdempotencyMismatch, all before anything is written. With an idempotency key, a repeat of the
        same request (also a concurrent one, and also one that would now be refused) returns the original
        purchase without a second debit.

        `spend_limit`: the buyer's purchases through `channel` since `spend_limit.since` (this one included,
        failed and reversed ones not) may not exceed `spend_limit.limit_kobo`; checked under a per-user lock
        in the purchase's own transaction, so racing requests cannot overshoot it.
        """
        if channel not in ("web", "api"):
            raise ValueError(f"unknown channel {channel!r}")
        fingerprint = request_hash(request) if idempotency_key else None
        if idempotency_key is not None and (len(idempotency_key) > 255 or not idempotency_key.strip()):
            raise InvalidPurchase({"idempotency_key": "Use 1 to 255 characters."})
        try:
            order = validate(request, self.config, allow_sandbox=not self.settings.is_prod)
            provider = self._provider_for(order.service.service_id)  # before any write: fail fast
            if idempotency_key and order.kind in _VERIFIED_KINDS:
                # A retry must not make the provider verify the meter / smartcard again.
                existing = await self._by_idempotency_key(buyer.id, idempotency_key)
                if existing is not None:
                    return self._replay(existing, idempotency_key, fingerprint)
            customer = await self._verify_for(order)
            purchase, accounts = await self._open(
                buyer, order, customer, channel, api_key_id, idempotency_key, fingerprint, spend_limit
            )
        except (InvalidPurchase, CustomerNotFound, ServiceUnavailable):
            # Refused now, but this key may already hold the very same purchase (a retry after a price or
            # plan change): that one is the answer.
            if idempotency_key:
                existing = await self._by_idempotency_key(buyer.id, idempotency_key)
                if existing is not None:
                    return self._replay(existing, idempotency_key, fingerprint)
            raise
        if purchase is None:  # a concurrent request with this key won the insert
            winner = await self._by_idempotency_key(buyer.id, idempotency_key or "")
            if winner is None:  # the winner rolled back after all: our insert would have gone in
                raise ServiceUnavailable("Please retry this purchase.")
            return self._replay(winner, idempotency_key or "", fingerprint)
        log.info("purchase_created", purchase_id=str(purchase.id), service_id=purchase.service_id,
                 amount_kobo=purchase.amount_kobo, channel=channel)  # fmt: skip
        # Past this point money has moved and the order may reach the provider: finish the bookkeeping even
        # if the caller goes away (a disconnected browser must not leave the /pay answer unrecorded).
        task = asyncio.ensure_future(self._fulfil(purchase, provider, channel, accounts))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return await asyncio.shield(task)

    async def _open(
        self,
        buyer: Buyer,
        order: Order,
        customer: CustomerInfo | None,
        channel: str,
        api_key_id: uuid.UUID | None,
        idempotency_key: str | None,
        fingerprint: str | None,
        spend_limit: SpendLimit | None,
    ) -> tuple[PurchaseView | None, PurchaseAccounts | None]:
        """Price the order, then record it and debit the wallet in ONE statement (`purchase_open`, see the
        0009 migration) that is its own transaction. (None, None) when a twin with this idempotency key
        was recorded first."""
        purchase_id = uuid7()
        now = utcnow()
        async with self._engine.connect() as conn:
            # No BEGIN / COMMIT: the price lookup is a plain read and purchase_open commits by itself.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None  # a checked-out connection always has one
            quote = await self._price(conn, buyer, order, customer)
            values = self._values(
                purchase_id, buyer, quote, now, channel, api_key_id, idempotency_key, fingerprint
            )
            params = (
                *(values[name] for name in _OPEN_COLUMNS),
                spend_limit.limit_kobo if spend_limit else 0,
                spend_limit.since if spend_limit else None,
                f"user:{buyer.id}",
            )
            for attempt in (1, 2):
                try:
                    row = await driver.fetchrow(_OPEN, *params)
                    break
                except asyncpg.PostgresError as exc:
                    if exc.sqlstate == SQLSTATE_SPEND_LIMIT and spend_limit is not None:
                        raise SpendLimitExceeded(spend_limit.limit_kobo) from exc
                    error = ledger_errors.translate(exc)
                    if isinstance(error, ledger_errors.InsufficientFunds):
                        price = quote.price.selling_kobo
                        raise InsufficientFunds(price_kobo=price, balance_kobo=error.balance) from exc
                    if isinstance(error, ledger_errors.UnknownAccount) and attempt == 1:
                        # The wallet or a system account is not open yet: open them (each statement commits
                        # by itself on this connection; opening is race-safe), then try once more.
                        await purchase_accounts(conn, buyer.id, quote.provider_slug)
                        continue
                    if error is not None:
                        raise error from exc
                    raise
        if not row["created"]:
            return None, None
        accounts = None
        if row["provider_float_id"] is not None:
            accounts = PurchaseAccounts(
                row["wallet_id"], row["in_flight_id"], row["provider_float_id"], row["revenue_id"]
            )
        return PurchaseView.from_mapping(values), accounts

    def _values(
        self,
        purchase_id: uuid.UUID,
        buyer: Buyer,
        quote: Quote,
        now: datetime.datetime,
        channel: str,
        api_key_id: uuid.UUID | None,
        idempotency_key: str | None,
        fingerprint: str | None,
    ) -> dict[str, Any]:
        """The new purchase's row (what purchase_open writes, and what the caller sees of it)."""
        order, price = quote.order, quote.price
        return {
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
        self, purchase: PurchaseView, provider: Provider, channel: str, accounts: PurchaseAccounts | None
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
            applied = await self._apply(
                purchase.id, result, record, attempt=None, accounts=accounts, pending=purchase
            )
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
        pending: PurchaseView | None = None,
    ) -> Applied | None:
        if result.staff_alert:
            log.error(
                "provider_staff_alert",
                purchase_id=str(purchase_id),
                code=result.code,
                alert=result.staff_alert,
            )
        applied = None
        if pending is not None and accounts is not None and result.outcome is Outcome.DELIVERED:
            applied = await self._deliver_alone(pending, result, record, accounts)
        if applied is None:
            async with self._engine.begin() as conn:
                applied = await apply_result(
                    conn,
                    purchase_id,
                    result,
                    record,
                    attempt=attempt,
                    schedule=self.schedule,
                    accounts=accounts,
                )
        if applied is not None and applied.changed:
            # Committed: listeners hand follow-up work to the worker (e.g. a reseller's completion callback).
            previous = applied.previous_status or PENDING
            await PURCHASE_FINISHED.emit(self, settled_event(applied.purchase, previous=previous))
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
        async with driver_connection(self._engine) as driver:
            purchase = await deliver_alone(driver, pending.id, result, record, accounts)
        if purchase is None:
            return None
        log_transition(purchase, result, record)
        return Applied(purchase, changed=True, previous_status=PENDING)

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
        self, purchase_id: uuid.UUID, *, delivered: bool, staff: str, note: str, token: str | None = None
    ) -> Applied | None:
        """A staff decision on a purchase the provider cannot settle (after checking with the provider):
        delivered -> successful (settles the money), otherwise failed + refund. Only a pending purchase
        moves, through the same guarded transition as the worker and callbacks; `changed` says whether
        this decision was the one applied. None if there is no such purchase. `token`: a prepaid meter's
        token when staff mark it delivered (kept like the provider's own)."""
        outcome = Outcome.DELIVERED if delivered else Outcome.FAILED
        # A prepaid meter's token, read off the provider's dashboard, so the customer's receipt shows it.
        token = (token or "").strip() or None if delivered else None
        result = ProviderResult(outcome, None, f"Resolved by staff ({staff}): {note}"[:2000], token=token)
        record = exchange_record("staff", staff[:64], utcnow(), result, note=note[:500])
        log.warning(
            "purchase_resolved_by_staff", purchase_id=str(purchase_id), delivered=delivered, staff=staff
        )
        return await self._apply(purchase_id, result, record, attempt=None)

    async def clear_flag(self, purchase_id: uuid.UUID, *, staff: str, note: str) -> PurchaseView | None:
        """Staff mark a final purchase's flag (a provider alert, a conflict, a claw-back shortfall) as
        handled, with a note kept in its exchange log. Moves no money. None when the purchase is not
        flagged or is still pending (a pending purchase is un-flagged only by settling it)."""
        record = exchange_record("staff", staff[:64], utcnow(), note=note[:500], action="clear_flag")
        async with self._engine.begin() as conn:
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
        before_id: uuid.UUID | None = None,
    ) -> list[PurchaseView]:
        """The user's purchases, newest first. Keyset paging: `before` (+ `before_id`) is the last row of
        the previous page; with its id, purchases made in the same microsecond are neither skipped nor
        repeated."""
        if status is not None and status not in STATUSES:
            raise InvalidPurchase({"status": f"Use one of {', '.join(STATUSES)}."})
        stmt = SELECT_PURCHASE.where(_c.user_id == user_id)
        if status:
            stmt = stmt.where(_c.status == status)
        if before is not None and before_id is not None:
            cursor = tuple_(literal(before, _c.created_at.type), literal(before_id, _c.id.type))
            stmt = stmt.where(tuple_(_c.created_at, _c.id) < cursor)
        elif before is not None:
            stmt = stmt.where(_c.created_at < before)
        stmt = stmt.order_by(_c.created_at.desc(), _c.id.desc()).limit(max(1, min(limit, 200)))
        async with self.sessionmaker() as session:
            return [PurchaseView.from_row(row) for row in await session.execute(stmt)]

    async def balance(self, user_id: uuid.UUID) -> int:
        async with self.sessionmaker() as session:
            return await wallet_balance(session, user_id)


_c = purchases_table.c
_VERIFIED_KINDS = (ServiceKind.ELECTRICITY, ServiceKind.CABLE)
SQLSTATE_SPEND_LIMIT = "VT001"  # raised by purchase_open
# purchase_open's parameters, in order: these row values, then the spend limit, its start, and the actor.
_OPEN_COLUMNS = (
    "id", "user_id", "channel", "service_id", "kind", "recipient", "phone", "variation_code",
    "subscription_type", "product_name", "customer_name", "amount_kobo", "face_amount_kobo", "cost_kobo",
    "provider_slug", "request_id", "created_at", "next_requery_at", "api_key_id", "idempotency_key",
    "request_hash",
)  # fmt: skip
# purchase_open($1..$24): the 21 _OPEN_COLUMNS values, then the spend limit, its start, and the actor
_OPEN = (
    "SELECT created, wallet_id, in_flight_id, provider_float_id, revenue_id FROM purchase_open("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
    "$13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
)


@dataclass(frozen=True, slots=True)
class SpendLimit:
    """At most `limit_kobo` through the purchase's channel since `since` (e.g. Lagos midnight)."""

    limit_kobo: int
    since: datetime.datetime


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
    "Buyer",
    "PurchaseService",
    "Quote",
    "SpendLimit",
    "SweepReport",
    "grace_anchor",
    "request_hash",
]
