"""Opening a purchase: verify the customer (meters, smartcards), price the order for the buyer's tier, then
record it and debit the wallet in ONE statement, the SQL function `purchase_open` (0009 migration), which is
its own transaction (docs/architecture.md, purchase step 2). Nothing here calls /pay: settlement does that,
after this has committed.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from uuid_utils.compat import uuid7

from app.core.db import pgbouncer_transaction
from app.core.naira import format_naira
from app.ledger import errors as ledger_errors
from app.vtu import plans as plan_queries
from app.vtu.context import PurchaseContext
from app.vtu.errors import CustomerNotFound, InvalidPurchase, ServiceUnavailable, database_errors
from app.vtu.models import PENDING
from app.vtu.orders import Order, PurchaseRequest, meter_minimum_kobo
from app.vtu.postings import PurchaseAccounts, purchase_accounts
from app.vtu.pricing import CUSTOMER, Price, RuleTerms, price_for, price_with
from app.vtu.providers import CustomerInfo, CustomerVerificationFailed, ProviderError, new_request_id
from app.vtu.providers.catalog import PRICE_CAPPED, PROFILE_VERIFIED, ServiceKind, get_service
from app.vtu.sqlcall import SqlFunction
from app.vtu.transitions import utcnow
from app.vtu.views import Executor, PurchaseView

log = structlog.get_logger("app.vtu.opening")

VERIFIED_KINDS = (ServiceKind.ELECTRICITY, ServiceKind.CABLE)
NO_RENEWAL_AMOUNT = (
    "We could not get this smartcard's renewal amount from the provider. Verify the smartcard again, or "
    "choose Change bouquet and pick your bouquet."
)

# purchase_open(...) (0009 migration): each SQL argument and the key of its value, either a column of the
# new purchase row (`PurchaseOpening.values`) or the spend limit, its start, the actor and the KYC limits of
# each level (index = level; the function applies the buyer's own level, read with the user row).
PURCHASE_OPEN = SqlFunction(
    "purchase_open",
    "created, wallet_id, in_flight_id, provider_float_id, revenue_id",
    (
        ("p_id", "id"), ("p_user_id", "user_id"), ("p_channel", "channel"), ("p_service_id", "service_id"),
        ("p_kind", "kind"), ("p_recipient", "recipient"), ("p_phone", "phone"),
        ("p_variation_code", "variation_code"), ("p_subscription_type", "subscription_type"),
        ("p_product_name", "product_name"), ("p_customer_name", "customer_name"),
        ("p_amount", "amount_kobo"), ("p_face", "face_amount_kobo"), ("p_cost", "cost_kobo"),
        ("p_provider_slug", "provider_slug"), ("p_request_id", "request_id"), ("p_now", "created_at"),
        ("p_next_requery_at", "next_requery_at"), ("p_api_key_id", "api_key_id"),
        ("p_idempotency_key", "idempotency_key"), ("p_request_hash", "request_hash"),
        ("p_spend_limit", "spend_limit"), ("p_spend_since", "spend_since"), ("p_actor", "actor"),
        ("p_kyc_single", "kyc_single"), ("p_kyc_daily", "kyc_daily"), ("p_quantity", "quantity"),
    ),
)  # fmt: skip


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


@dataclass(frozen=True, slots=True)
class SpendLimit:
    """At most `limit_kobo` through the purchase's channel since `since` (e.g. Lagos midnight)."""

    limit_kobo: int
    since: datetime.datetime


@dataclass(frozen=True, slots=True)
class KycLimits:
    """KYC_LIMITS for purchase_open: element i is level i's limit in kobo (0 = none). The function reads
    the buyer's level with the user row, so a level raised a moment ago applies at once."""

    single_kobo: tuple[int, ...]
    daily_kobo: tuple[int, ...]


def request_hash(request: PurchaseRequest) -> str:
    """Fingerprint of what was asked for (same Idempotency-Key + same body -> same purchase)."""
    canonical = json.dumps(request.canonical(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Opened:
    """A purchase `purchase_open` recorded (pending, wallet debited) and its ledger accounts, when known."""

    purchase: PurchaseView
    accounts: PurchaseAccounts | None


async def sells(
    session: Executor,
    slug: str,
    kind: ServiceKind | str,
    service_id: str,
    variation_code: str | None,
    subscription_type: str | None,
) -> bool:
    """Whether provider `slug` can take this order as it stands: airtime and electricity always; a data or
    cable plan only when that provider lists the same plan code (plan ids are per provider); a cable
    renewal (priced from the first provider's smartcard check) never elsewhere."""
    kind = ServiceKind(kind)
    if kind not in (ServiceKind.DATA, ServiceKind.CABLE):
        return True
    if subscription_type == "renew" or not variation_code:
        return False
    return await plan_queries.active_plan(session, slug, service_id, variation_code) is not None


class PurchaseOpening:
    def __init__(self, ctx: PurchaseContext) -> None:
        self.ctx = ctx

    async def verify_customer(
        self, service_id: str, customer_number: str, type: str | None = None
    ) -> CustomerInfo:
        """Merchant-verify a meter (type prepaid|postpaid) or smartcard before selling to it.

        Raises CustomerNotFound (the number was rejected) or ServiceUnavailable (the provider did not answer).
        """
        service = get_service(service_id)
        jamb = service is not None and service.service_id in PROFILE_VERIFIED
        if service is None or (service.kind not in (ServiceKind.ELECTRICITY, ServiceKind.CABLE) and not jamb):
            raise InvalidPurchase(
                {"service_id": "Only electricity and cable customers and JAMB candidates can be verified."}
            )
        field_name = {ServiceKind.ELECTRICITY: "meter_number", ServiceKind.CABLE: "smartcard_number"}.get(
            service.kind, "profile_id"
        )
        provider = self.ctx.provider_for(service_id)
        try:
            return await provider.verify_customer(service_id, customer_number.strip(), type)
        except CustomerVerificationFailed as exc:
            raise CustomerNotFound(field_name, exc.message) from exc
        except ProviderError as exc:
            if exc.staff_alert:
                log.error("provider_staff_alert", provider=provider.slug, alert=exc.staff_alert)
            what = "profile id" if field_name == "profile_id" else field_name.split("_")[0]
            raise ServiceUnavailable(f"We could not check this {what} right now.") from exc

    async def verify_for(self, order: Order) -> CustomerInfo | None:
        """The meter / smartcard check an order needs before it is priced (None for other products)."""
        if order.kind is ServiceKind.ELECTRICITY:
            info = await self.verify_customer(order.service.service_id, order.recipient, order.variation_code)
            low = meter_minimum_kobo(self.ctx.config, info.minimum_amount_kobo)
            if info.can_vend is False:
                raise CustomerNotFound("meter_number", "This meter cannot be vended at the moment.")
            if order.amount_kobo is not None and order.amount_kobo < low:
                raise InvalidPurchase({"amount_kobo": f"The minimum for this meter is {format_naira(low)}."})
            return info
        if order.kind is ServiceKind.CABLE:
            return await self.verify_customer(order.service.service_id, order.recipient, None)
        if order.service.service_id in PROFILE_VERIFIED:  # JAMB: the profile id, for this PIN type
            return await self.verify_customer(order.service.service_id, order.recipient, order.variation_code)
        return None

    async def price(
        self, session: Executor, buyer: Buyer, order: Order, customer: CustomerInfo | None
    ) -> Quote:
        """Price a validated (and verified) order for `buyer`'s tier. Writes nothing. Sold through the
        router's first usable provider (app/vtu/routing.py)."""
        slug = await self.route(session, order)
        kind, name = order.kind, order.service.name
        face: int | None = order.amount_kobo
        if kind in (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM) and order.variation_code:
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
            if face is None:  # no renewal amount from the provider, and no bouquet to price it by
                raise InvalidPurchase({"subscription_type": NO_RENEWAL_AMOUNT})
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
        by_plan = kind in (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM) and not renewal_priced
        if kind is ServiceKind.EXAM:
            price = await self._exam_price(session, buyer, order, face)
            count = order.quantity or 1
            name = name if count == 1 else f"{name} x {count}"
            return Quote(order, price, slug, name[:200], customer)
        price = await price_for(
            session,
            tier=buyer.tier,
            service_id=order.service.service_id,
            kind=kind,
            face_kobo=face,
            variation_code=order.variation_code if by_plan else None,
            config=self.ctx.config,
            fixed_price_allowed=not renewal_priced,
        )
        return Quote(order, price, slug, name[:200], customer)

    async def route(self, session: Executor, order: Order) -> str:
        """The provider a new purchase of `order` is sent to first: the router's first candidate that this
        process can build and that sells the order's plan (plan codes are per provider); the configured
        first when the router offers none."""
        service_id = order.service.service_id
        configured = self.ctx.provider_for(service_id).slug  # ServiceUnavailable when it cannot be built

        async def can_take(slug: str) -> bool:
            if slug == configured:
                return True
            return self.ctx.providers.usable_slug(slug) and await sells(
                session, slug, order.kind, service_id, order.variation_code, order.subscription_type
            )

        chosen = await self.ctx.router.choose(
            service_id, order.amount_kobo or 0, can_take=can_take, executor=session
        )
        return chosen or configured

    async def _exam_price(self, session: Executor, buyer: Buyer, order: Order, unit_face: int) -> Price:
        """Exam PINs: the plan price per PIN at the buyer's tier rules, times the quantity. Never below the
        provider's cost for customers; JAMB's PINs always at the plan price (JAMB forbids selling above its
        approved price, and a rule must not sell them below it either)."""
        service_id, config = order.service.service_id, self.ctx.config
        if service_id in PRICE_CAPPED:
            unit = price_with(RuleTerms(source="approved price"), unit_face, ServiceKind.EXAM, config)
        else:
            unit = await price_for(
                session, tier=buyer.tier, service_id=service_id, kind=ServiceKind.EXAM, face_kobo=unit_face,
                variation_code=order.variation_code, config=config,
            )  # fmt: skip
            if buyer.tier == CUSTOMER and unit.selling_kobo < unit.cost_kobo:
                unit = dataclasses.replace(unit, selling_kobo=unit.cost_kobo)  # never below cost
        n = order.quantity or 1
        return Price(unit.face_kobo * n, unit.selling_kobo * n, unit.cost_kobo * n, unit.source)

    async def open(
        self,
        buyer: Buyer,
        order: Order,
        customer: CustomerInfo | None,
        *,
        channel: str,
        api_key_id: uuid.UUID | None,
        idempotency_key: str | None,
        fingerprint: str | None,
        spend_limit: SpendLimit | None,
        kyc_limits: KycLimits | None = None,
    ) -> Opened | None:
        """Price the order, then record it and debit the wallet in ONE statement (`purchase_open`) that is its
        own transaction. None when a twin with this idempotency key was recorded first. Raises
        InsufficientFunds, SpendLimitExceeded or KycLimitExceeded with nothing written."""
        purchase_id = uuid7()
        async with self.ctx.engine.connect() as conn:
            now = utcnow()  # paid_at: taken once a connection is in hand, so /pay follows it closely
            # No BEGIN / COMMIT: the price lookup is a plain read and purchase_open commits by itself.
            # (Through PgBouncer each step is put in a transaction of its own: `pgbouncer_transaction`.)
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None  # a checked-out connection always has one
            engine = self.ctx.engine
            async with pgbouncer_transaction(driver, engine):
                quote = await self.price(conn, buyer, order, customer)
            values = self.values(
                purchase_id, buyer, quote, now, channel, api_key_id, idempotency_key, fingerprint
            )
            arguments = PURCHASE_OPEN.values(
                values
                | {
                    "spend_limit": spend_limit.limit_kobo if spend_limit else 0,
                    "spend_since": spend_limit.since if spend_limit else None,
                    "actor": f"user:{buyer.id}",
                    "kyc_single": list(kyc_limits.single_kobo) if kyc_limits else [],
                    "kyc_daily": list(kyc_limits.daily_kobo) if kyc_limits else [],
                }
            )
            for attempt in (1, 2):
                try:
                    with database_errors(key=f"purchase:{purchase_id}", price_kobo=quote.price.selling_kobo):
                        async with pgbouncer_transaction(driver, engine):
                            row = await driver.fetchrow(PURCHASE_OPEN.statement, *arguments)
                    break
                except ledger_errors.UnknownAccount:
                    if attempt == 2:
                        raise
                    # The wallet or a system account is not open yet: open them (each statement commits by
                    # itself on this connection; opening is race-safe), then try once more.
                    async with pgbouncer_transaction(driver, engine):
                        await purchase_accounts(conn, buyer.id, quote.provider_slug)
        if not row["created"]:
            return None
        accounts = None
        if row["provider_float_id"] is not None:
            accounts = PurchaseAccounts(
                row["wallet_id"], row["in_flight_id"], row["provider_float_id"], row["revenue_id"]
            )
        return Opened(PurchaseView.from_mapping(values), accounts)

    def values(
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
            # exam PINs bought at once: kept, so a later attempt (failover, 019 hold) sends the same order
            "quantity": order.quantity,
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
            # /pay is sent right after this commits (within settlement.PAY_START_LIMIT, or never); if we die
            # first, the sweep requeries once /pay cannot be on its way any more.
            "paid_at": now,
            "next_requery_at": now + datetime.timedelta(seconds=self.ctx.schedule[0]),
            "attempts": 0,
            "exchanges": [],
            "api_key_id": api_key_id,
            "idempotency_key": idempotency_key,
            "request_hash": fingerprint,
            "created_at": now,
            "updated_at": now,
            "pins_ciphertext": None,
        }


__all__ = [
    "NO_RENEWAL_AMOUNT",
    "PURCHASE_OPEN",
    "VERIFIED_KINDS",
    "Buyer",
    "KycLimits",
    "Opened",
    "PurchaseOpening",
    "Quote",
    "SpendLimit",
    "request_hash",
    "sells",
]
