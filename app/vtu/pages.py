"""Customer purchase pages: buy airtime, data, electricity, cable TV and exam PINs from the wallet; receipts;
history.

Thin: parse the form, call `PurchaseService` (app.vtu.service), render. Every buy form carries a hidden
idempotency key (a uuid4 made when the form is rendered) that is passed to `buy`: a double tap, a resubmit
or a reload of the POST makes one purchase and one debit. Post/Redirect/Get: a purchase answers 303 to its
receipt. The customer's transaction PIN (app.accounts.pins) approves each purchase; it is checked right
before buying. Refused requests re-render the form with the customer's values (400 invalid input or wrong
PIN, 402 wallet too low, 403 no PIN set yet, 409 key reused for another request, 429 PIN locked, 503
provider not answering); nothing is written for them.

Connections: the login middleware reads the user outside any transaction, so a request holds no connection
when a handler starts (docs/architecture.md, "Request handling"). Handlers still commit the request session
(`_release`) before calling the purchase service, which takes its own connections and calls the provider: a
read added earlier in a handler then cannot leave a connection held while the request waits for another,
nor a transaction across a provider call. A fresh form asks for its price before its own reads for the same
reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, MediaType, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_login
from app.accounts.kyc import level_limits
from app.core.db import reads_only
from app.core.encryption import cipher_for
from app.core.keyset import Cursor
from app.core.naira import format_naira_short, parse_whole_naira
from app.core.throttle import Rule, Throttled, throttle_for
from app.ledger.queries import wallet_balance
from app.ledger.statement import purchase_refunds
from app.vtu.approval import approve
from app.vtu.beneficiary_pages import RECIPIENT_FIELD, SaveChoice, beneficiary_context
from app.vtu.errors import (
    AccountSuspended,
    CustomerNotFound,
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidPurchase,
    KycLimitExceeded,
    PurchaseError,
    PurchaseNotFound,
    ServiceUnavailable,
)
from app.vtu.exam import pins_of
from app.vtu.models import STATUSES
from app.vtu.networks import detect_service
from app.vtu.orders import (
    METER_DIGITS,
    NO_SUBSCRIPTION_TYPE,
    PROFILE_ID_DIGITS,
    SMARTCARD_DIGITS,
    PurchaseRequest,
    amount_limits,
    meter_minimum_kobo,
    validate,
)
from app.vtu.plans import PricedPlan, priced_plans
from app.vtu.providers import CustomerInfo, ExamPin, ProviderError
from app.vtu.providers.catalog import (
    EXAM_QUANTITY,
    METER_TYPES,
    PROFILE_VERIFIED,
    SERVICES,
    ServiceKind,
    get_service,
)
from app.vtu.runtime import VtuRuntime, get_vtu

Req = Request[Any, Any, Any]
HISTORY_PAGE = 20


@dataclass(frozen=True, slots=True)
class Product:
    """One buy page: which services it sells and which form fields it has."""

    kind: ServiceKind
    title: str
    fields: tuple[str, ...]
    choose: str  # the error when no (or a foreign) service is picked
    default_service: str | None  # None for airtime / data: the network is detected from the number
    action: str  # the submit button while the price is not known

    @property
    def detects_network(self) -> bool:
        return self.kind in (ServiceKind.AIRTIME, ServiceKind.DATA)

    @property
    def price_params(self) -> str:
        """The form fields a price depends on (hx-params of the price block: never the PIN)."""
        names = [n for n in self.fields if n != "phone"]
        if self.kind is ServiceKind.CABLE:
            names += ["renewal_kobo", "renewal_for"]
        return ",".join(names)

    @property
    def path(self) -> str:
        return f"/buy/{self.kind.value}"

    @property
    def options(self) -> list[tuple[str, str]]:
        # "Ikeja Electric (IKEDC)": customers know the acronym; exam services differ within one brand (WAEC)
        full = self.kind in (ServiceKind.ELECTRICITY, ServiceKind.EXAM)
        return [(s.service_id, s.name if full else s.brand) for s in SERVICES if s.kind is self.kind]


PRODUCTS: dict[ServiceKind, Product] = {
    p.kind: p
    for p in (
        Product(ServiceKind.AIRTIME, "Buy airtime", ("service_id", "phone", "amount"), "Choose a network.",
                None, "Buy airtime"),
        Product(ServiceKind.DATA, "Buy data", ("service_id", "variation_code", "phone"), "Choose a network.",
                None, "Buy data"),
        Product(ServiceKind.ELECTRICITY, "Pay for electricity",
                ("service_id", "meter_type", "meter_number", "amount", "phone"),
                "Choose your electricity company.", None, "Pay"),
        Product(ServiceKind.CABLE, "Pay for cable TV",
                ("service_id", "smartcard_number", "subscription_type", "variation_code", "phone"),
                "Choose your TV provider.", "dstv", "Pay"),
        Product(ServiceKind.EXAM, "Buy exam PINs",
                ("service_id", "variation_code", "quantity", "profile_id", "phone"),
                "Choose the exam.", "waec", "Buy PINs"),
    )
}  # fmt: skip
RECIPIENT_LABEL = {
    ServiceKind.AIRTIME.value: "Phone number",
    ServiceKind.DATA.value: "Phone number",
    ServiceKind.ELECTRICITY.value: "Meter number",
    ServiceKind.CABLE.value: "Smartcard / IUC number",
    ServiceKind.EXAM.value: "Phone number",
}


# The number "Verify" checks on each form that has one.
VERIFIED_FIELD = {
    ServiceKind.ELECTRICITY: "meter_number",
    ServiceKind.CABLE: "smartcard_number",
    ServiceKind.EXAM: "profile_id",
}
RENEW_NEEDS_VERIFY = "Verify your smartcard to see its renewal amount."


@dataclass(frozen=True, slots=True)
class PayLine:
    """What the form says right above its button, and the button itself ("Pay ₦1,000" once priced)."""

    label: str
    total_kobo: int | None = None  # what the wallet is charged (the buyer's tier price)
    face_kobo: int | None = None  # what is delivered, when it differs from the total
    note: str | None = None  # why no price is shown yet, when that needs saying


def form_hints(product: Product, config: Any) -> dict[str, str]:
    """Every hint of a buy form that states a limit, written from the rules that enforce it
    (app/vtu/orders.py and the VTU_* limits): the hints cannot promise what validation refuses."""
    hints: dict[str, str] = {}
    limits = amount_limits(product.kind, config)
    if limits is not None:
        low, high = (format_naira_short(k) for k in limits)
        hints["amount"] = f"{low} to {high}, whole naira"
        if product.kind is ServiceKind.ELECTRICITY:
            hints["amount"] += ". Some meters ask more: Verify meter shows yours."
    if product.kind is ServiceKind.ELECTRICITY:
        hints["meter_number"] = "{} to {} digits, on your meter or last token receipt".format(*METER_DIGITS)
    if product.kind is ServiceKind.CABLE:
        hints["smartcard_number"] = "{} or {} digits, under your decoder".format(*SMARTCARD_DIGITS)
    if product.kind is ServiceKind.EXAM:
        hints["quantity"] = "{} to {} PINs".format(*EXAM_QUANTITY)
        hints["profile_id"] = f"The candidate's {PROFILE_ID_DIGITS} digit profile id (verify it first)"
    return hints


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def parse_naira(raw: str) -> tuple[int | None, str | None]:
    """A whole-naira amount typed by a customer -> (kobo, None), or (None, the reason it was refused)
    (`app.core.naira.parse_whole_naira`; limits are the service's rules)."""
    try:
        kobo = parse_whole_naira(raw)
    except ValueError as exc:
        return None, str(exc)
    return (None, "Enter an amount in naira.") if kobo is None else (kobo, None)


def _text(form: Any, name: str) -> str:
    return str(form.get(name, "") or "").strip()[:200]


async def _release(db_session: AsyncSession) -> None:
    """End whatever the request session has open (nothing, unless the handler read first) before the purchase
    service takes its own connections."""
    await db_session.commit()


async def _verify_allowed(request: Req) -> bool:
    """Each meter / smartcard check is a call to the provider: at most VTU_VERIFY_PER_MINUTE per customer
    a minute (the app's throttle, counted before the call)."""
    limit = (await get_vtu(request.app)).config.verify_per_minute
    try:
        await throttle_for(request.app.state.redis).hit(
            (Rule("meter-check", limit, 60), str(request.user.id))
        )
    except Throttled:
        return False
    return True


def _field_errors(product: Product, fields: dict[str, str]) -> dict[str, str]:
    """The service's field errors keyed by this form's field names ('__all__' for the rest)."""
    out: dict[str, str] = {}
    for key, message in fields.items():
        name = "amount" if key == "amount_kobo" else key
        if name == "service_id":
            message = product.choose
        out.setdefault(name if name in product.fields else "__all__", message)
    return out


def _request_for(product: Product, form: dict[str, str], amount_kobo: int | None) -> PurchaseRequest:
    service_id = form.get("service_id") or None
    kind = product.kind
    if kind is ServiceKind.EXAM:
        return PurchaseRequest(
            service_id,
            phone=form["phone"],
            variation_code=form["variation_code"] or None,
            quantity=parse_quantity(form["quantity"]),
            profile_id=(form["profile_id"] or None) if service_id in PROFILE_VERIFIED else None,
        )
    if kind is ServiceKind.AIRTIME:
        return PurchaseRequest(service_id, phone=form["phone"], amount_kobo=amount_kobo)
    if kind is ServiceKind.DATA:
        return PurchaseRequest(service_id, phone=form["phone"], variation_code=form["variation_code"] or None)
    if kind is ServiceKind.ELECTRICITY:
        return PurchaseRequest(
            service_id,
            phone=form["phone"],
            amount_kobo=amount_kobo,
            meter_number=form["meter_number"],
            meter_type=form["meter_type"] or None,
        )
    no_type = service_id in NO_SUBSCRIPTION_TYPE
    subscription = None if no_type else (form["subscription_type"] or None)
    return PurchaseRequest(
        service_id,
        phone=form["phone"],
        smartcard_number=form["smartcard_number"],
        # Renew is the card's current bouquet at its renewal amount: a bouquet ticked in the list is not it.
        variation_code=None if subscription == "renew" else (form["variation_code"] or None),
        subscription_type=subscription,
    )


def parse_quantity(raw: str) -> int | str | None:
    """A quantity typed in a form: an int for ASCII digits, else the text itself (validation refuses it
    with its own message); None when empty (one PIN)."""
    raw = raw.strip()
    if not raw:
        return None
    return int(raw) if len(raw) <= 3 and raw.isascii() and raw.isdigit() else raw


def _renewal_shown(source: Mapping[str, Any], form: dict[str, str]) -> CustomerInfo | None:
    """The renewal amount "Verify smartcard" put in the form (hidden fields of partials/customer.html), for
    the card and provider now in the form only. Used to SHOW a price: buying verifies the card again and
    charges the provider's amount, whatever the form says."""
    amount, card = _text(source, "renewal_kobo"), _text(source, "renewal_for")
    if card != f"{form.get('service_id')}:{form.get('smartcard_number')}":
        return None
    if not amount or len(amount) > 12 or any(ch not in "0123456789" for ch in amount) or int(amount) <= 0:
        return None
    return CustomerInfo(name="", address=None, details={}, renewal_amount_kobo=int(amount))


class PurchasePagesController(Controller):
    guards = [requires_login]
    include_in_schema = False

    # -- the four buy forms (query parameters prefill them: "Buy again", no-JS plan lists) ---------------
    @get("/buy/airtime", name="buy:airtime")
    async def airtime_page(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._blank(request, db_session, PRODUCTS[ServiceKind.AIRTIME])

    @get("/buy/data", name="buy:data")
    async def data_page(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._blank(request, db_session, PRODUCTS[ServiceKind.DATA])

    @get("/buy/electricity", name="buy:electricity")
    async def electricity_page(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._blank(request, db_session, PRODUCTS[ServiceKind.ELECTRICITY])

    @get("/buy/cable", name="buy:cable")
    async def cable_page(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._blank(request, db_session, PRODUCTS[ServiceKind.CABLE])

    @get("/buy/exam", name="buy:exam")
    async def exam_page(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._blank(request, db_session, PRODUCTS[ServiceKind.EXAM])

    @post("/buy/airtime", name="buy:airtime-submit", status_code=200)
    async def buy_airtime(self, request: Req, db_session: AsyncSession) -> Any:
        return await self._buy(request, db_session, PRODUCTS[ServiceKind.AIRTIME])

    @post("/buy/data", name="buy:data-submit", status_code=200)
    async def buy_data(self, request: Req, db_session: AsyncSession) -> Any:
        return await self._buy(request, db_session, PRODUCTS[ServiceKind.DATA])

    @post("/buy/electricity", name="buy:electricity-submit", status_code=200)
    async def buy_electricity(self, request: Req, db_session: AsyncSession) -> Any:
        return await self._buy(request, db_session, PRODUCTS[ServiceKind.ELECTRICITY])

    @post("/buy/cable", name="buy:cable-submit", status_code=200)
    async def buy_cable(self, request: Req, db_session: AsyncSession) -> Any:
        return await self._buy(request, db_session, PRODUCTS[ServiceKind.CABLE])

    @post("/buy/exam", name="buy:exam-submit", status_code=200)
    async def buy_exam(self, request: Req, db_session: AsyncSession) -> Any:
        return await self._buy(request, db_session, PRODUCTS[ServiceKind.EXAM])

    # -- htmx partials for the forms -------------------------------------------------------------------
    @get("/buy/data/plans", name="buy:data-plans")
    async def data_plans(self, request: Req, db_session: AsyncSession, service_id: str = "") -> Template:
        return await self._plans_partial(request, db_session, PRODUCTS[ServiceKind.DATA], service_id)

    @get("/buy/cable/plans", name="buy:cable-plans")
    async def cable_plans(self, request: Req, db_session: AsyncSession, service_id: str = "") -> Template:
        return await self._plans_partial(request, db_session, PRODUCTS[ServiceKind.CABLE], service_id)

    @get("/buy/exam/plans", name="buy:exam-plans")
    async def exam_plans(self, request: Req, db_session: AsyncSession, service_id: str = "") -> Template:
        return await self._plans_partial(request, db_session, PRODUCTS[ServiceKind.EXAM], service_id)

    @get("/buy/airtime/network", name="buy:airtime-network")
    async def airtime_network(self, phone: str = "") -> Template:
        return _network_note(PRODUCTS[ServiceKind.AIRTIME], phone)

    @get("/buy/data/network", name="buy:data-network")
    async def data_network(self, phone: str = "") -> Template:
        return _network_note(PRODUCTS[ServiceKind.DATA], phone)

    @get("/buy/airtime/price", name="buy:airtime-price")
    async def airtime_price(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._price_partial(request, db_session, PRODUCTS[ServiceKind.AIRTIME])

    @get("/buy/data/price", name="buy:data-price")
    async def data_price(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._price_partial(request, db_session, PRODUCTS[ServiceKind.DATA])

    @get("/buy/electricity/price", name="buy:electricity-price")
    async def electricity_price(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._price_partial(request, db_session, PRODUCTS[ServiceKind.ELECTRICITY])

    @get("/buy/cable/price", name="buy:cable-price")
    async def cable_price(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._price_partial(request, db_session, PRODUCTS[ServiceKind.CABLE])

    @get("/buy/exam/price", name="buy:exam-price")
    async def exam_price(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._price_partial(request, db_session, PRODUCTS[ServiceKind.EXAM])

    @post("/buy/exam/verify", name="buy:exam-verify", status_code=200)
    async def verify_profile(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._verify(request, db_session, PRODUCTS[ServiceKind.EXAM])

    @post("/buy/electricity/verify", name="buy:electricity-verify", status_code=200)
    async def verify_meter(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._verify(request, db_session, PRODUCTS[ServiceKind.ELECTRICITY])

    @post("/buy/cable/verify", name="buy:cable-verify", status_code=200)
    async def verify_smartcard(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._verify(request, db_session, PRODUCTS[ServiceKind.CABLE])

    async def _verify(self, request: Req, db_session: AsyncSession, product: Product) -> Template:
        """Merchant-verify the meter / smartcard typed so far (nothing is charged). Always 200: the
        answer, good or bad, is swapped in under the number field (htmx swaps 2xx only)."""
        raw = await request.form()
        field = VERIFIED_FIELD[product.kind]
        number, service_id = _text(raw, field), _text(raw, "service_id")
        # The verify `type`: the meter type, or the JAMB PIN type (utme / de)
        meter_type = (
            _text(raw, "variation_code" if product.kind is ServiceKind.EXAM else "meter_type") or None
        )
        service = get_service(service_id)
        context: dict[str, Any] = {
            "kind": product.kind.value,
            "customer": None,
            "error": None,
            "checked": f"{service.name} · {number}" if service else number,
            "renewal_for": f"{service_id}:{number}",
        }
        if service is None or service.kind is not product.kind:
            context["error"] = product.choose
        elif product.kind is ServiceKind.EXAM and service_id not in PROFILE_VERIFIED:
            context["error"] = "Only JAMB PINs need a profile id."
        elif product.kind is ServiceKind.EXAM and not meter_type:
            context["error"] = "Choose the PIN type first."
        elif not (number.isascii() and number.isdigit()):
            what = {ServiceKind.ELECTRICITY: "meter number", ServiceKind.CABLE: "smartcard / IUC number"}
            context["error"] = f"Enter the {what.get(product.kind, 'profile id')} (digits only)."
        elif product.kind is ServiceKind.ELECTRICITY and meter_type not in METER_TYPES:
            context["error"] = "Choose prepaid or postpaid."
        elif not await _verify_allowed(request):
            context["error"] = "Too many checks in a short time. Please wait a minute and try again."
        else:
            await _release(db_session)
            runtime = await get_vtu(request.app)
            try:
                customer = await runtime.purchases.verify_customer(service_id, number, meter_type)
                context["customer"] = customer
                context["minimum_kobo"] = meter_minimum_kobo(runtime.config, customer.minimum_amount_kobo)
            except CustomerNotFound as exc:
                context["error"] = exc.message
            except ServiceUnavailable:
                context["error"] = "We could not check this number right now. Please try again shortly."
            except InvalidPurchase as exc:
                context["error"] = next(iter(exc.fields.values()), product.choose)
        # The price block asks again once this is on the page (a renewal is priced from it).
        return Template(
            template_name="vtu/partials/customer.html",
            context=context,
            media_type=MediaType.HTML,
            headers={"HX-Trigger-After-Settle": "verified"},
        )

    # -- receipts and history --------------------------------------------------------------------------
    @get("/purchases/{purchase_id:str}", name="purchases:receipt")
    async def receipt(self, request: Req, db_session: AsyncSession, purchase_id: str) -> Template:
        purchase = await self._purchase(request, db_session, purchase_id)
        refunds = await purchase_refunds(db_session, request.user.id, [purchase.id])
        label = RECIPIENT_LABEL.get(purchase.kind, "Recipient")
        if purchase.service_id in PROFILE_VERIFIED:
            label = "JAMB profile id"
        return Template(
            template_name="vtu/receipt.html",
            context={
                "p": purchase,
                "refund": refunds.get(purchase.id),
                "recipient_label": label,
                "again": again_url(purchase),
                "pins": await _owner_pins(request, purchase),
            },
        )

    @get("/purchases/{purchase_id:str}/status", name="purchases:status")
    async def receipt_status(self, request: Req, db_session: AsyncSession, purchase_id: str) -> Template:
        """The receipt's status block; while pending it polls itself (hx-trigger every 5s), and the final
        version it is replaced with has no trigger, which stops the polling."""
        purchase = await self._purchase(request, db_session, purchase_id)
        refunds = await purchase_refunds(db_session, request.user.id, [purchase.id])
        return Template(
            template_name="vtu/partials/receipt_status.html",
            # "Buy again" appears with the final status (out of band: it sits at the foot of the receipt).
            context={
                "p": purchase,
                "refund": refunds.get(purchase.id),
                "again": again_url(purchase),
                "oob": True,
                "pins": await _owner_pins(request, purchase),
            },
            media_type=MediaType.HTML,
        )

    @get("/purchases", name="purchases:history")
    async def history(
        self,
        request: Req,
        db_session: AsyncSession,
        status: str | None = None,
        before: str | None = None,
    ) -> Template:
        user = request.user
        status = status if status in STATUSES else None
        cursor = Cursor.decode(before)  # malformed: the first page
        await _release(db_session)
        runtime = await get_vtu(request.app)
        rows = await runtime.purchases.list_for_user(
            user.id, status=status, limit=HISTORY_PAGE + 1, before=cursor
        )
        older = None
        if len(rows) > HISTORY_PAGE:
            rows = rows[:HISTORY_PAGE]
            last = rows[-1]
            query = {"before": Cursor.after(last), **({"status": status} if status else {})}
            older = f"/purchases?{urlencode(query)}"
        # A failed or reversed purchase reads "charged, refunded", never like a charge (its refund's amount
        # and time from the ledger).
        undone = [p.id for p in rows if p.status in ("failed", "reversed")]
        refunds = await purchase_refunds(db_session, user.id, undone)
        return Template(
            template_name="vtu/history.html",
            context={
                "purchases": rows,
                "refunds": refunds,
                "status": status,
                "statuses": STATUSES,
                "older": older,
                "paged": cursor is not None,
            },
        )

    # -- helpers ---------------------------------------------------------------------------------------
    async def _buy(self, request: Req, db_session: AsyncSession, product: Product) -> Any:
        """Parse the form, buy with the form's idempotency key, redirect to the receipt (303); or re-render
        the form with the customer's values and what to fix."""
        raw = await request.form()
        form = {name: _text(raw, name) for name in product.fields}
        if product.kind is ServiceKind.CABLE:  # a renewal amount shown by "Verify smartcard" (display only)
            form |= {name: _text(raw, name) for name in ("renewal_kobo", "renewal_for")}
        key = str(raw.get("idempotency_key", "") or "").strip()  # not cut short: buy() checks its length
        errors: dict[str, str] = {}
        amount_kobo = None
        if "amount" in product.fields:
            amount_kobo, problem = parse_naira(form["amount"])
            if problem:
                errors["amount"] = problem
        runtime = await get_vtu(request.app)
        if product.detects_network and not form["service_id"]:
            # No network chosen (e.g. no JavaScript): the number's own, as the form would have picked it.
            detected = detect_service(form["phone"], product.kind)
            form["service_id"] = detected.service_id if detected else ""
        service = get_service(form["service_id"])
        if service is None or service.kind is not product.kind:
            form["service_id"] = ""
            errors["service_id"] = product.choose
            # Nothing to buy, but name every other problem now too (the input rules are the same for
            # every service of a kind; validate() is pure: it writes and asks nothing).
            substitute = next(s.service_id for s in SERVICES if s.kind is product.kind)
            try:
                validate(
                    _request_for(product, {**form, "service_id": substitute}, amount_kobo),
                    runtime.config,
                    allow_sandbox=not runtime.settings.is_prod,
                )
            except InvalidPurchase as exc:
                errors = {**_field_errors(product, exc.fields), **errors}
        if not key:  # not a form from our page: never buy without a key
            errors["__all__"] = "This form is out of date. Check the details and tap the button again."
        if errors.keys() & {"service_id", "__all__"}:
            return await self._form(request, db_session, product, form, errors=errors, key=key, status=400)
        user = request.user
        save = SaveChoice.read(raw) if product.kind in RECIPIENT_FIELD else SaveChoice()
        if save.wanted and (problem := await save.problem(db_session, user.id, product.kind, form)):
            errors["beneficiary_label"] = problem
            return await self._form(request, db_session, product, form, errors=errors, key=key, status=400)
        await _release(db_session)

        def order_problems() -> dict[str, str]:  # asked before a first PIN is set (app/vtu/approval.py)
            try:
                validate(_request_for(product, form, amount_kobo), runtime.config,
                         allow_sandbox=not runtime.settings.is_prod)  # fmt: skip
            except InvalidPurchase as exc:
                return {**_field_errors(product, exc.fields), **errors}
            return dict(errors)

        # The transaction PIN approves the purchase, or a first PIN is chosen here (docs/architecture.md,
        # purchase step 1); PINs and the password are never echoed back in the form.
        if refusal := await approve(request, db_session, user, raw, order_problems):
            errors.update(refusal.errors)
            page = await self._form(
                request, db_session, product, form, errors=errors, alert=refusal.alert, key=key,
                status=refusal.status,
            )  # fmt: skip
            if refusal.retry_after:
                page.headers["Retry-After"] = str(refusal.retry_after)
            return page
        try:
            purchase = await runtime.purchases.buy(
                user, _request_for(product, form, amount_kobo), channel="web", idempotency_key=key
            )
        except InvalidPurchase as exc:
            # Our own amount / service messages win over the service's ("Enter an amount.").
            errors = {**_field_errors(product, exc.fields), **errors}
            return await self._form(request, db_session, product, form, errors=errors, key=key, status=400)
        except CustomerNotFound as exc:
            errors[exc.field if exc.field in product.fields else "__all__"] = exc.message
            return await self._form(request, db_session, product, form, errors=errors, key=key, status=400)
        except InsufficientFunds as exc:
            alert = {"kind": "insufficient", "price": exc.price_kobo, "balance": exc.balance_kobo}
            return await self._form(request, db_session, product, form, alert=alert, key=key, status=402)
        except IdempotencyMismatch:
            # This form (key) already bought something else, e.g. it was reopened with Back and edited:
            # a fresh key makes the next tap a new, deliberate purchase.
            alert = {"kind": "reused"}
            return await self._form(request, db_session, product, form, alert=alert, status=409)
        except ServiceUnavailable:
            alert = {"kind": "unavailable"}
            return await self._form(request, db_session, product, form, alert=alert, key=key, status=503)
        except KycLimitExceeded as exc:  # over the KYC level's limit: nothing written; link to /account/kyc
            alert = {"kind": "kyc", "message": exc.message, "level": exc.level, "limit": exc.limit_kobo,
                     "scope": exc.scope}  # fmt: skip
            return await self._form(request, db_session, product, form, alert=alert, key=key, status=403)
        except AccountSuspended as exc:  # suspended while this purchase was being opened: nothing written
            alert = {"kind": "other", "message": exc.message}
            return await self._form(request, db_session, product, form, alert=alert, key=key, status=403)
        except PurchaseError as exc:  # e.g. a spend limit: refused, nothing written
            alert = {"kind": "other", "message": exc.message}
            return await self._form(request, db_session, product, form, alert=alert, key=key, status=400)
        if save.wanted:
            await save.keep(request, db_session, user.id, purchase)
        return Redirect(f"/purchases/{purchase.id}", status_code=303)

    async def _blank(self, request: Req, db_session: AsyncSession, product: Product) -> Template:
        """A fresh form (new idempotency key), prefilled from the query string when given."""
        query = request.query_params
        form = {n: _text(query, n) for n in product.fields}
        return await self._form(request, db_session, product, form, reads_only_page=True)

    async def _purchase(self, request: Req, db_session: AsyncSession, purchase_id: str) -> Any:
        try:
            pid = uuid.UUID(purchase_id)
        except ValueError:
            raise NotFoundException() from None
        user_id = request.user.id
        await _release(db_session)
        runtime = await get_vtu(request.app)
        try:
            return await runtime.purchases.get(pid, user_id=user_id)
        except PurchaseNotFound:  # also another customer's purchase: not even its existence is told
            raise NotFoundException() from None

    async def _form(
        self,
        request: Req,
        db_session: AsyncSession,
        product: Product,
        form: dict[str, str],
        *,
        errors: dict[str, str] | None = None,
        alert: dict[str, Any] | None = None,
        key: str | None = None,
        status: int = 200,
        reads_only_page: bool = False,
    ) -> Template:
        """The buy form. `reads_only_page`: a GET of a fresh form, whose request reads and writes nothing
        (its statements run without BEGIN / COMMIT: app/core/db.py `reads_only`)."""
        user = request.user
        values = {name: form.get(name, "") for name in product.fields}
        fresh = status == 200  # a new form, not one sent back with what to fix
        chosen = get_service(values["service_id"])
        if chosen is None or chosen.kind is not product.kind:
            values["service_id"] = ""
        runtime = await get_vtu(request.app)
        if fresh:
            stub_numbers = demo_numbers(runtime, product, values["service_id"])
            for name, number in stub_numbers.items():
                values[name] = values.get(name) or number
        if fresh and not values.get("phone") and user.phone:
            values["phone"] = user.phone  # most customers top up their own line
        detected = detect_service(values["phone"], product.kind) if product.detects_network else None
        if fresh and not values["service_id"]:
            values["service_id"] = detected.service_id if detected else (product.default_service or "")
        if product.kind is ServiceKind.ELECTRICITY and not values.get("meter_type"):
            values["meter_type"] = "prepaid"
        # Cable: renew or change is the customer's explicit choice (no default).
        # The price first: the purchase service reads it on a connection of its own, given back before the
        # request session takes one (never two held at once: app/core/README.md).
        pay = await _pay_line(runtime, user, product, values, form)
        if reads_only_page:
            await reads_only(db_session)
        plans = await _plans_for(db_session, runtime, user, product, values["service_id"])
        balance = await wallet_balance(db_session, user.id)
        if alert and alert.get("kind") == "insufficient" and alert.get("balance") is None:
            alert["balance"] = balance
        return Template(
            template_name=f"vtu/buy_{product.kind.value}.html",
            context={
                "product": product,
                "form": values,
                "errors": errors or {},
                "alert": alert,
                "idempotency_key": key or new_idempotency_key(),
                "has_pin": bool(user.pin_hash),
                "balance_kobo": balance,
                # "Your daily limit is ... (KYC level N)" under the balance (app/accounts/kyc.py)
                "kyc_level": user.kyc_level,
                "kyc_limits": level_limits(request.app.state.settings, user.kyc_level),
                "plans": plans,
                "no_subscription_type": values["service_id"] in NO_SUBSCRIPTION_TYPE,
                "needs_profile": values["service_id"] in PROFILE_VERIFIED,  # JAMB's profile id field
                "hints": form_hints(product, runtime.config),
                "detected": detected,
                # A network that is not the number's own was chosen by hand: the page never changes it.
                "network_manual": bool(values["service_id"])
                and (detected is None or detected.service_id != values["service_id"]),
                "pay": pay,
                **(
                    await beneficiary_context(request, db_session, product.kind)
                    if product.kind in RECIPIENT_FIELD
                    else {}
                ),
            },
            status_code=status,
            media_type=MediaType.HTML,
        )

    async def _plans_partial(
        self, request: Req, db_session: AsyncSession, product: Product, service_id: str
    ) -> Template:
        runtime = await get_vtu(request.app)
        await reads_only(db_session)
        plans = await _plans_for(db_session, runtime, request.user, product, service_id)
        return Template(
            template_name=f"vtu/partials/{product.kind.value}_plans.html",
            context={
                "plans": plans,
                "form": {
                    "service_id": service_id,
                    "variation_code": "",
                    "subscription_type": "",
                    # the stub's JAMB profile in development, as the full page offers it
                    "profile_id": demo_numbers(runtime, product, service_id).get("profile_id", ""),
                },
                "errors": {},
                "no_subscription_type": service_id in NO_SUBSCRIPTION_TYPE,
                "needs_profile": service_id in PROFILE_VERIFIED,  # exam_plans redraws the profile block
                "hints": form_hints(product, runtime.config),
                "clear_customer": True,  # another provider: the smartcard shown as verified no longer is
            },
            media_type=MediaType.HTML,
        )

    async def _price_partial(self, request: Req, db_session: AsyncSession, product: Product) -> Template:
        """The price block of a form being filled in ("You pay ₦X" and "Pay ₦X"), priced by the purchase
        service for this customer's tier. Always 200: while the price is not known the button keeps its
        plain label."""
        query = request.query_params
        form = {name: _text(query, name) for name in product.fields}
        await _release(db_session)
        runtime = await get_vtu(request.app)
        pay = await _pay_line(runtime, request.user, product, form, query)
        return Template(
            template_name="vtu/partials/price.html", context={"pay": pay}, media_type=MediaType.HTML
        )


def _network_note(product: Product, phone: str) -> Template:
    """'Detected: MTN' for the number typed so far (app/vtu/networks.py), or nothing."""
    return Template(
        template_name="vtu/partials/network_note.html",
        context={"detected": detect_service(phone[:40], product.kind)},
        media_type=MediaType.HTML,
    )


async def _pay_line(
    runtime: VtuRuntime, user: Any, product: Product, form: dict[str, str], source: Mapping[str, Any]
) -> PayLine:
    """The price of what the form holds so far, from the purchase service's own pricing
    (`PurchaseService.price_preview`: the buyer's tier, price rules, plans, renewals)."""
    amount_kobo = parse_naira(form.get("amount", ""))[0] if "amount" in product.fields else None
    request = _request_for(product, {n: form.get(n, "") for n in product.fields}, amount_kobo)
    customer = None
    if product.kind is ServiceKind.CABLE and request.subscription_type == "renew":
        customer = _renewal_shown(source, form)
        if customer is None:
            return PayLine(product.action, note=RENEW_NEEDS_VERIFY)
    try:
        quote = await runtime.purchases.price_preview(user, request, customer=customer)
    except (InvalidPurchase, ServiceUnavailable):
        return PayLine(product.action)
    price = quote.price
    face = price.face_kobo if price.face_kobo != price.selling_kobo else None
    return PayLine(f"Pay {format_naira_short(price.selling_kobo)}", price.selling_kobo, face)


async def _owner_pins(request: Req, purchase: Any) -> list[ExamPin] | None:
    """The purchase's exam PINs in clear, for its owner's receipt only (`_purchase` has checked the owner)."""
    if not purchase.has_pins or purchase.user_id != request.user.id:
        return None
    runtime = await get_vtu(request.app)
    return pins_of(purchase, cipher_for(runtime.settings))


def demo_numbers(runtime: VtuRuntime, product: Product, service_id: str) -> dict[str, str]:
    """Development only (APP_ENV=dev, never test or prod): when the stub provider sells this service, the
    numbers it delivers to (app/vtu/providers/stub.py), so a fresh form in `just dev` buys successfully
    as it is. The demo users' own phones are not ones the stub delivers to."""
    if runtime.settings.app_env != "dev":
        return {}
    service = get_service(service_id or product.default_service or "")
    if service is None:  # electricity: no company chosen yet; the stub delivers to the same meter for all
        service = next(s for s in SERVICES if s.kind is product.kind)
    try:
        if runtime.providers.slug_for(service.service_id) != "stub":
            return {}
    except ProviderError:
        return {}
    from app.vtu.providers import stub

    numbers = {"phone": stub.DEMO_PHONES["mtn"]}  # an MTN prefix: the form detects the network
    if product.kind is ServiceKind.ELECTRICITY:
        numbers["meter_number"] = stub.PREPAID_METER
    if product.kind is ServiceKind.CABLE:
        numbers["smartcard_number"] = stub.SMARTCARD
    if product.kind is ServiceKind.EXAM:
        numbers |= {"phone": stub.DELIVERED_PHONE, "profile_id": stub.JAMB_PROFILE}
    return numbers


def again_url(purchase: Any) -> str:
    """The buy form prefilled with this purchase's details (a fresh form: a new, deliberate purchase)."""
    kind = purchase.kind
    query = {"service_id": purchase.service_id, "phone": purchase.phone}
    if kind in (ServiceKind.AIRTIME.value, ServiceKind.ELECTRICITY.value):
        query["amount"] = str(purchase.face_amount_kobo // 100)
    if kind == ServiceKind.ELECTRICITY.value:
        query |= {"meter_number": purchase.recipient, "meter_type": purchase.variation_code or ""}
    elif kind == ServiceKind.CABLE.value:
        query |= {
            "smartcard_number": purchase.recipient,
            "subscription_type": purchase.subscription_type or "",
        }
    elif kind == ServiceKind.EXAM.value and purchase.service_id in PROFILE_VERIFIED:
        query["profile_id"] = purchase.recipient
    if (
        kind in (ServiceKind.DATA.value, ServiceKind.CABLE.value, ServiceKind.EXAM.value)
        and purchase.variation_code
    ):
        query["variation_code"] = purchase.variation_code
    return f"/buy/{kind}?{urlencode(query)}"


async def _plans_for(
    db_session: AsyncSession, runtime: VtuRuntime, user: Any, product: Product, service_id: str
) -> list[PricedPlan] | None:
    """The service's plans at the customer's tier price, cheapest first; None when the page has no plan
    list or no valid service is chosen."""
    service = get_service(service_id)
    if product.kind not in (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM) or service is None:
        return None
    if service.kind is not product.kind:
        return None
    try:
        slug = runtime.providers.slug_for(service.service_id)
    except ProviderError:
        return []
    return await priced_plans(
        db_session, slug=slug, service_id=service.service_id, tier=user.tier, config=runtime.config
    )


__all__ = [
    "PRODUCTS",
    "PayLine",
    "PurchasePagesController",
    "demo_numbers",
    "form_hints",
    "new_idempotency_key",
    "parse_naira",
]
