"""The purchase service: the only way to buy (web pages and the reseller API both call it), and the one door
to everything else about purchases (staff console, worker jobs, callbacks, reads).

A thin facade; the work is done by the parts that change together (docs/architecture.md, "Purchase
lifecycle"):
- opening.py     validate, verify the customer, price, and `purchase_open` (record + debit, one statement);
- settlement.py  /pay once, then every answer (requery, callback, staff) through transitions.py;
- sweep.py       re-enqueue pending purchases whose requery job was lost;
- reads.py       purchases and balances.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config.settings import Settings
from app.core.keyset import Cursor
from app.core.metrics import purchase_opened
from app.core.request_context import purchase_context
from app.vtu import reads
from app.vtu.config import VtuConfig
from app.vtu.context import PurchaseContext
from app.vtu.errors import (
    CustomerNotFound,
    IdempotencyMismatch,
    InvalidPurchase,
    ServiceUnavailable,
)
from app.vtu.opening import (
    VERIFIED_KINDS,
    Buyer,
    KycLimits,
    PurchaseOpening,
    Quote,
    SpendLimit,
    request_hash,
)
from app.vtu.orders import PurchaseRequest, validate, validate_price_inputs
from app.vtu.providers import CustomerInfo
from app.vtu.providers.base import ExamPin
from app.vtu.providers.catalog import PROFILE_VERIFIED
from app.vtu.registry import ProviderRegistry
from app.vtu.routing import RouteHealth
from app.vtu.scheduling import VerificationScheduler
from app.vtu.settlement import PurchaseSettlement
from app.vtu.sweep import SWEEP_BATCH, SWEEP_GRACE_SECONDS, SweepReport, sweep
from app.vtu.transitions import Applied
from app.vtu.views import PurchaseView

log = structlog.get_logger("app.vtu.service")


class PurchaseService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        config: VtuConfig,
        providers: ProviderRegistry,
        scheduler: VerificationScheduler,
        route_health: RouteHealth | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.config = config
        self.providers = providers
        self.scheduler = scheduler
        self._ctx = PurchaseContext.build(
            sessionmaker=sessionmaker,
            settings=settings,
            config=config,
            providers=providers,
            scheduler=scheduler,
            route_health=route_health,
        )
        self._opening = PurchaseOpening(self._ctx)
        self._settlement = PurchaseSettlement(self._ctx)
        self._background: set[asyncio.Task[Any]] = set()
        limits = settings.kyc_limits  # KYC_LIMITS (app/accounts/kyc_config.py); () = none
        self._kyc_limits = (
            KycLimits(tuple(x.single_kobo for x in limits), tuple(x.daily_kobo for x in limits))
            if limits
            else None
        )

    @property
    def schedule(self) -> Sequence[int]:
        return self._ctx.schedule

    # -- before buying --------------------------------------------------------------------------------
    async def verify_customer(
        self, service_id: str, customer_number: str, type: str | None = None
    ) -> CustomerInfo:
        """Merchant-verify a meter (type prepaid|postpaid) or smartcard before selling to it.

        Raises CustomerNotFound (the number was rejected) or ServiceUnavailable (the provider did not answer).
        """
        return await self._opening.verify_customer(service_id, customer_number, type)

    async def quote(self, buyer: Buyer, request: PurchaseRequest) -> Quote:
        """Validate and price a request for `buyer` (verifying meters / smartcards). Writes nothing."""
        order = validate(request, self.config, allow_sandbox=not self.settings.is_prod)
        customer = await self._opening.verify_for(order)
        async with self.sessionmaker() as session:
            return await self._opening.price(session, buyer, order, customer)

    async def price_preview(
        self, buyer: Buyer, request: PurchaseRequest, *, customer: CustomerInfo | None = None
    ) -> Quote:
        """What `buyer` would pay for `request` while its form is filled in: the same rules and pricing as
        `quote`, but the recipient is neither checked nor verified (no provider call; a cable renewal is
        priced from `customer` when given, e.g. a smartcard verified a moment ago). Writes nothing; raises
        InvalidPurchase when the price is not known yet (no amount, no plan, ...)."""
        order = validate_price_inputs(request, self.config)
        async with self.sessionmaker() as session:
            return await self._opening.price(session, buyer, order, customer)

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

        Raises InvalidPurchase, CustomerNotFound, ServiceUnavailable, InsufficientFunds, SpendLimitExceeded,
        KycLimitExceeded (KYC_LIMITS for the buyer's KYC level, every channel) or IdempotencyMismatch, all
        before anything is written. With an idempotency key, a repeat of the
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
            provider = self._ctx.provider_for(order.service.service_id)  # before any write: fail fast
            if idempotency_key and (
                order.kind in VERIFIED_KINDS or order.service.service_id in PROFILE_VERIFIED
            ):
                # A retry must not make the provider verify the meter / smartcard / profile again.
                existing = await reads.by_idempotency_key(self.sessionmaker, buyer.id, idempotency_key)
                if existing is not None:
                    return _replay(existing, idempotency_key, fingerprint)
            customer = await self._opening.verify_for(order)
            opened = await self._opening.open(
                buyer, order, customer, channel=channel, api_key_id=api_key_id,
                idempotency_key=idempotency_key, fingerprint=fingerprint, spend_limit=spend_limit,
                kyc_limits=self._kyc_limits,
            )  # fmt: skip
        except (InvalidPurchase, CustomerNotFound, ServiceUnavailable):
            # Refused now, but this key may already hold the very same purchase (a retry after a price or
            # plan change): that one is the answer.
            if idempotency_key:
                existing = await reads.by_idempotency_key(self.sessionmaker, buyer.id, idempotency_key)
                if existing is not None:
                    return _replay(existing, idempotency_key, fingerprint)
            raise
        if opened is None:  # a concurrent request with this key won the insert
            winner = await reads.by_idempotency_key(self.sessionmaker, buyer.id, idempotency_key or "")
            if winner is None:  # the winner rolled back after all: our insert would have gone in
                raise ServiceUnavailable("Please retry this purchase.")
            return _replay(winner, idempotency_key or "", fingerprint)
        purchase = opened.purchase
        purchase_opened(purchase.provider_slug, purchase.service_id)
        # Every line logged about it from here on (the /pay task copies this context) names the purchase.
        with purchase_context(purchase.id, purchase.request_id):
            log.info("purchase_created", service_id=purchase.service_id, amount_kobo=purchase.amount_kobo,
                     channel=channel)  # fmt: skip
            # Past this point money has moved and the order may reach the provider: finish the bookkeeping
            # even if the caller goes away (a disconnected browser must not leave the /pay answer unrecorded).
            if purchase.provider_slug != provider.slug:  # the router chose another than the configured first
                provider = self.providers.get(purchase.provider_slug)
            task = asyncio.ensure_future(
                self._settlement.fulfil(purchase, provider, channel, opened.accounts, quantity=order.quantity)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return await asyncio.shield(task)

    # -- after buying: requery, staff, callbacks, sweep -----------------------------------------------
    async def requery(
        self, purchase_id: uuid.UUID, *, source: str, attempt: int | None = None
    ) -> PurchaseView | None:
        """Ask the provider about a purchase and apply the answer.

        `attempt` is the scheduled requery number (worker jobs): it is skipped when already done or when
        the purchase is final, and the next one is scheduled while it stays pending. Without it (callback,
        staff "check now"), successful purchases are requeried too, so a reversal is noticed.
        """
        return await self._settlement.requery(purchase_id, source=source, attempt=attempt)

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
        """A staff decision on a purchase the provider cannot settle (after checking with the provider):
        delivered -> successful (settles the money), otherwise failed + refund. Only a pending purchase
        moves, through the same guarded transition as the worker and callbacks; `changed` says whether
        this decision was the one applied. None if there is no such purchase. `token`: a prepaid meter's
        token when staff mark it delivered (kept like the provider's own). `pins`: an exam purchase is
        marked delivered only with as many PINs as were bought (`exam.staff_pins`), stored encrypted;
        PurchaseError otherwise, with nothing changed."""
        return await self._settlement.resolve_manually(
            purchase_id, delivered=delivered, staff=staff, note=note, token=token, pins=pins
        )

    async def clear_flag(self, purchase_id: uuid.UUID, *, staff: str, note: str) -> PurchaseView | None:
        """Staff mark a final purchase's flag (a provider alert, a conflict, a claw-back shortfall) as
        handled, with a note kept in its exchange log. Moves no money. None when the purchase is not
        flagged or is still pending (a pending purchase is un-flagged only by settling it)."""
        return await self._settlement.clear_flag(purchase_id, staff=staff, note=note)

    async def handle_callback(self, payload: Any, *, source: str = "callback") -> str:
        """A VTpass callback: never trusted on its own. `transaction-update` makes us requery the purchase
        and apply THAT answer. Returns what happened (for logs); unknown ids and other types are ignored."""
        return await self._settlement.handle_callback(payload, source=source)

    async def handle_clubkonnect_callback(self, request_id: str, params: dict[str, str]) -> str:
        """A ClubKonnect callback (GET, unsigned): only a hint; the purchase is requeried."""
        return await self._settlement.handle_hint(request_id, params)

    async def sweep(
        self, *, grace_seconds: int = SWEEP_GRACE_SECONDS, limit: int = SWEEP_BATCH, inline: bool = False
    ) -> SweepReport:
        """Find pending purchases whose requery is overdue (its job was lost: worker killed, Redis flushed,
        enqueue failed) and hand them to the worker again, or requery them here with `inline`."""
        return await sweep(
            self._ctx, self._settlement, grace_seconds=grace_seconds, limit=limit, inline=inline
        )

    # -- reading ---------------------------------------------------------------------------------------
    async def get(self, purchase_id: uuid.UUID, *, user_id: uuid.UUID | None = None) -> PurchaseView:
        """A purchase; with `user_id`, only that user's (PurchaseNotFound otherwise, also for others')."""
        return await reads.get(self.sessionmaker, purchase_id, user_id=user_id)

    async def list_for_user(
        self,
        user_id: uuid.UUID,
        *,
        status: str | None = None,
        limit: int = 50,
        before: Cursor | None = None,
    ) -> list[PurchaseView]:
        """The user's purchases, newest first (keyset paging on created_at, id: `app.core.keyset`)."""
        return await reads.list_for_user(
            self.sessionmaker, user_id, status=status, limit=limit, before=before
        )

    async def balance(self, user_id: uuid.UUID) -> int:
        return await reads.balance(self.sessionmaker, user_id)


def _replay(existing: PurchaseView, key: str, fingerprint: str | None) -> PurchaseView:
    if existing.request_hash != fingerprint:
        raise IdempotencyMismatch(key)
    return existing


__all__ = [
    "Applied",
    "Buyer",
    "PurchaseService",
    "Quote",
    "SpendLimit",
    "SweepReport",
    "request_hash",
]
