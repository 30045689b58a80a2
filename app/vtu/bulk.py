"""Bulk orders (docs/architecture.md, "Bulk orders"): a list of up to `MAX_LINES` airtime or data top-ups,
checked up front line by line with the single purchase's own rules (`PurchaseService.quote`), confirmed once
with its total, then bought line by line by a worker (`bulk_runner.py`), each line a purchase of its own
under the idempotency key `bulk:<bulk id>:<line no>`: however often a line is retried or resumed, it buys
once.

The rules live here; `bulk_pages.py` (web) and app/api (reseller API) only parse and render.
- Web: pasted text or an uploaded CSV, one recipient per line: `phone,amount` (airtime, whole naira) or
  `phone,plan_code` (data), with an optional third column naming the network (else the number's prefix,
  `networks.py`). Any bad line refuses the whole list with every line's problem, writing nothing. A valid
  list is kept as a draft; the same content again (same user, same hash) within `REUPLOAD_WINDOW` is that
  same order, never a second one. Confirming (transaction PIN, checked by the page) starts it.
- API: JSON lines with the purchase API's field names; the Idempotency-Key names the order (same key and
  body -> the same order; another body -> IdempotencyMismatch). Confirmed at once: the key is the credential.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from app.core.naira import parse_whole_naira
from app.core.validation import InvalidPhone, normalise_phone
from app.vtu.bulk_models import CANCELLED, DONE, DRAFT, QUEUED, RUNNING, SENT, SKIPPED
from app.vtu.errors import (
    CustomerNotFound,
    IdempotencyMismatch,
    InvalidPurchase,
    ServiceUnavailable,
)
from app.vtu.networks import detect_service
from app.vtu.opening import Buyer, Quote
from app.vtu.orders import PurchaseRequest
from app.vtu.plans import PricedPlan, priced_plans
from app.vtu.providers import ProviderError
from app.vtu.providers.catalog import SERVICES, ServiceKind, get_service
from app.vtu.transitions import utcnow

log = structlog.get_logger("app.vtu.bulk")

MAX_LINES = 500
MAX_UPLOAD_BYTES = 64 * 1024  # 500 lines of "phone,amount,network" are ~15 KB
REUPLOAD_WINDOW = datetime.timedelta(hours=24)
SAME_NUMBER_GAP_SECONDS = 30  # VTpass 019: the same product to the same number within 30 s is refused
RUN_TASK = "run_bulk_order"
RUN_JOB_TIMEOUT = 300  # one run's budget (bulk_runner.RUN_BUDGET_SECONDS) + the slowest /pay, with room

# The network column: what people write -> the airtime service id (data adds "-data").
NETWORKS = {"mtn": "mtn", "airtel": "airtel", "glo": "glo", "9mobile": "etisalat", "etisalat": "etisalat"}
KINDS = {"airtime": ServiceKind.AIRTIME, "data": ServiceKind.DATA}


def line_key(bulk_id: uuid.UUID | str, line_no: int) -> str:
    """The idempotency key of a line's purchase: a resumed or retried line finds its purchase, not a twin."""
    return f"bulk:{bulk_id}:{line_no}"


def run_key(bulk_id: uuid.UUID | str, runs: int) -> str:
    """SAQ key of the next run of an order (`runs` = runs started so far): a queued run is never doubled."""
    return f"bulk:{bulk_id}:run:{runs}"


# -- input ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LineInput:
    """One recipient as given (types unchecked: the purchase rules check them)."""

    line_no: int
    phone: Any
    service_id: Any = None  # None: from the number's prefix
    amount_kobo: Any = None
    variation_code: Any = None


@dataclass(frozen=True, slots=True)
class LineError:
    line_no: int
    field: str  # the purchase API's field (phone, amount_kobo, variation_code, service_id), or "line"
    message: str


class BulkError(Exception):
    """Refused; `message` is for the customer, nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BulkInvalid(BulkError):
    """The list has problems: every bad line with its reason (nothing was written)."""

    def __init__(self, message: str, errors: Sequence[LineError] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class BulkNotFound(BulkError):
    def __init__(self) -> None:
        super().__init__("No such bulk order.")


def _cells(raw: str) -> list[str]:
    for sep in ("\t", ";", ","):  # a tab or semicolon list may write amounts as 1,000
        if sep in raw:
            return [c.strip().strip('"').strip() for c in raw.split(sep)]
    return [raw.strip()]


def parse_text(kind: str, content: str) -> tuple[list[LineInput], list[LineError]]:
    """Pasted text / CSV -> recipients and the lines that cannot even be read. Blank lines and `#` comments
    are skipped, and a first line starting with "phone" is a header. Line numbers are the text's own."""
    if kind not in KINDS:
        raise BulkInvalid("Choose airtime or data.")
    inputs: list[LineInput] = []
    errors: list[LineError] = []
    second = "amount" if kind == "airtime" else "plan"
    seen_content = False
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        cells = _cells(line)
        if not seen_content and cells[0].lower() in ("phone", "number", "phone number"):
            seen_content = True
            continue
        seen_content = True
        if len(cells) < 2 or len(cells) > 3 or not cells[0] or not cells[1]:
            errors.append(LineError(number, "line", f"Write phone,{second} or phone,{second},network."))
            continue
        service_id: str | None = None
        if len(cells) == 3 and cells[2]:
            network = NETWORKS.get(cells[2].lower().replace(" ", ""))
            if network is None:
                message = "Unknown network: use MTN, Airtel, Glo or 9mobile."
                errors.append(LineError(number, "service_id", message))
                continue
            service_id = network if kind == "airtime" else f"{network}-data"
        if kind == "airtime":
            try:
                amount = parse_whole_naira(cells[1])
            except ValueError as exc:
                errors.append(LineError(number, "amount_kobo", str(exc)))
                continue
            inputs.append(LineInput(number, cells[0], service_id, amount_kobo=amount))
        else:
            inputs.append(LineInput(number, cells[0], service_id, variation_code=cells[1]))
    return inputs, errors


# -- views ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CheckedLine:
    line_no: int
    phone: str
    service_id: str
    amount_kobo: int | None
    variation_code: str | None
    product_name: str
    price_kobo: int


@dataclass(frozen=True, slots=True)
class BulkLineView:
    line_no: int
    phone: str
    service_id: str
    amount_kobo: int | None
    variation_code: str | None
    product_name: str
    price_kobo: int
    status: str  # the purchase's status once there is one, else the line's (queued, sent, failed, skipped)
    error: str | None
    purchase_id: uuid.UUID | None
    reference: str | None  # the purchase's request_id (sent to the provider)
    charged_kobo: int | None


@dataclass(frozen=True, slots=True)
class BulkView:
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    channel: str
    status: str
    line_count: int
    total_kobo: int
    created_at: datetime.datetime
    confirmed_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    idempotency_key: str | None = None
    content_hash: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    lines: list[BulkLineView] = field(default_factory=list)

    @property
    def done_lines(self) -> int:
        return sum(n for s, n in self.counts.items() if s not in (QUEUED, SENT))

    @property
    def is_active(self) -> bool:
        return self.status == RUNNING


@dataclass(frozen=True, slots=True)
class Prepared:
    bulk: BulkView
    existing: bool  # the same list was already uploaded (nothing new was written)


def content_hash(kind: str, lines: Sequence[CheckedLine]) -> str:
    canonical = [kind] + [
        [li.line_no, li.service_id, li.phone, li.amount_kobo, li.variation_code] for li in lines
    ]
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def api_body_hash(kind: Any, lines: Sequence[LineInput]) -> str:
    """Fingerprint of an API body as sent (same Idempotency-Key + same body -> the same order)."""
    canonical = [kind] + [[li.phone, li.service_id, li.amount_kobo, li.variation_code] for li in lines]
    return (
        "api:"
        + hashlib.sha256(json.dumps(canonical, separators=(",", ":"), default=str).encode()).hexdigest()[:60]
    )


_LINES = text(
    "SELECT l.line_no, l.phone, l.service_id, l.amount_kobo, l.variation_code, l.product_name, l.price_kobo,"
    " l.status, l.error, p.id AS pid, p.status AS pstatus, p.request_id, p.amount_kobo AS charged"
    " FROM bulk_order_lines l LEFT JOIN purchases p ON p.user_id = :uid"
    " AND p.idempotency_key = 'bulk:' || l.bulk_id::text || ':' || l.line_no::text"
    " WHERE l.bulk_id = :bid ORDER BY l.line_no"
)
_ORDER = text(
    "SELECT id, user_id, kind, channel, status, line_count, total_kobo, created_at, confirmed_at,"
    " finished_at, idempotency_key, content_hash FROM bulk_orders WHERE id = :bid AND user_id = :uid"
)


class BulkService:
    """Checking, recording, confirming and reading bulk orders. Buying is `bulk_runner.BulkRunner`'s."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], purchases: Any, queue: Any) -> None:
        self.sessionmaker = sessionmaker
        self.purchases = purchases  # PurchaseService
        self.queue = queue  # SAQ queue, or None (the sweep starts confirmed orders)

    async def data_plan_codes(self, user: Any) -> list[tuple[str, list[PricedPlan]]]:
        """The data plans a bulk list may name, per network, at the user's tier price: the page lists their
        codes (the `plan_code` column), so a customer never has to guess one."""
        runtime_config = self.purchases.config
        listed = []
        async with self.sessionmaker() as session:
            for service in SERVICES:
                if service.kind is not ServiceKind.DATA:
                    continue
                try:
                    slug = self.purchases.providers.slug_for(service.service_id)
                except ProviderError:
                    continue
                plans = await priced_plans(
                    session, slug=slug, service_id=service.service_id, tier=user.tier, config=runtime_config
                )
                if plans:
                    listed.append((service.name, plans))
        return listed

    # -- checking -------------------------------------------------------------------------------------
    def _request(self, kind: str, line: LineInput) -> PurchaseRequest:
        service_id = line.service_id
        if service_id is None and isinstance(line.phone, str):
            detected = detect_service(line.phone, KINDS[kind])
            service_id = detected.service_id if detected else None
        if kind == "airtime":
            return PurchaseRequest(service_id, phone=line.phone, amount_kobo=line.amount_kobo)
        return PurchaseRequest(service_id, phone=line.phone, variation_code=line.variation_code)

    def _unknown_network(self, line: LineInput) -> LineError:
        """No network given and none detected: a bad number says so, a good one asks for the network."""
        if not isinstance(line.phone, str):
            return LineError(line.line_no, "phone", "Must be a string.")
        try:
            normalise_phone(line.phone, allow_sandbox=not self.purchases.settings.is_prod)
        except InvalidPhone as exc:
            return LineError(line.line_no, "phone", str(exc))
        return LineError(
            line.line_no,
            "service_id",
            "We cannot tell this number's network: add it as a third column (MTN, Airtel, Glo or 9mobile).",
        )

    async def check(self, buyer: Buyer, kind: str, inputs: Sequence[LineInput]) -> list[CheckedLine]:
        """Every line validated and priced by the single purchase's rules (`PurchaseService.quote`); raises
        BulkInvalid naming every bad line. Writes nothing."""
        if kind not in KINDS:
            raise BulkInvalid("Choose airtime or data.")
        if not inputs:
            raise BulkInvalid("The list has no recipients.")
        if len(inputs) > MAX_LINES:
            raise BulkInvalid(f"At most {MAX_LINES} recipients per bulk order (this list has {len(inputs)}).")
        checked: list[CheckedLine] = []
        errors: list[LineError] = []
        for line in inputs:
            request = self._request(kind, line)
            if request.service_id is None:
                errors.append(self._unknown_network(line))
                continue
            service = get_service(request.service_id) if isinstance(request.service_id, str) else None
            if service is None or service.kind is not KINDS[kind]:
                errors.append(LineError(line.line_no, "service_id", f"Not a {kind} service."))
                continue
            try:
                quote: Quote = await self.purchases.quote(buyer, request)
            except InvalidPurchase as exc:
                for name, message in exc.fields.items():
                    errors.append(LineError(line.line_no, name, message))
                continue
            except (CustomerNotFound, ServiceUnavailable) as exc:
                errors.append(LineError(line.line_no, "line", exc.message))
                continue
            order = quote.order
            checked.append(
                CheckedLine(
                    line.line_no,
                    order.phone,
                    order.service.service_id,
                    order.amount_kobo,
                    order.variation_code,
                    quote.product_name,
                    quote.amount_kobo,
                )
            )
        if errors:
            bad = len({e.line_no for e in errors})
            raise BulkInvalid(f"{bad} of {len(inputs)} lines need fixing; nothing was saved.", errors)
        return checked

    # -- recording ------------------------------------------------------------------------------------
    async def prepare_upload(self, buyer: Buyer, kind: str, content: str) -> Prepared:
        """A pasted / uploaded list -> a draft order to confirm, or the order this same list already made
        (same user and content within REUPLOAD_WINDOW): nothing is ever bought twice for a re-upload."""
        if len(content.encode()) > MAX_UPLOAD_BYTES:
            raise BulkInvalid(f"The list is too large: at most {MAX_UPLOAD_BYTES // 1024} KB.")
        inputs, errors = parse_text(kind, content)
        if len(inputs) + len({e.line_no for e in errors}) > MAX_LINES:
            given = len(inputs) + len({e.line_no for e in errors})
            raise BulkInvalid(f"At most {MAX_LINES} recipients per bulk order (this list has {given}).")
        if errors:
            # Report the unreadable lines together with what the rules say about the readable ones.
            try:
                if inputs:
                    await self.check(buyer, kind, inputs)
            except BulkInvalid as more:
                errors = sorted(errors + more.errors, key=lambda e: e.line_no)
            bad = len({e.line_no for e in errors})
            raise BulkInvalid(f"{bad} lines need fixing; nothing was saved.", errors)
        checked = await self.check(buyer, kind, inputs)
        digest = content_hash(kind, checked)
        async with self.sessionmaker() as session, session.begin():
            # One upload at a time per user: two racing uploads of one list make one order.
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended('bulk:' || :uid, 0))"),
                {"uid": str(buyer.id)},
            )
            found = (
                await session.execute(
                    text(
                        "SELECT id FROM bulk_orders WHERE user_id = :uid AND content_hash = :h"
                        " AND status <> 'cancelled' AND created_at > :since ORDER BY created_at DESC LIMIT 1"
                    ),
                    {"uid": buyer.id, "h": digest, "since": utcnow() - REUPLOAD_WINDOW},
                )
            ).scalar_one_or_none()
            if found is None:
                bulk_id = await self._insert(session, buyer.id, kind, checked, digest, status=DRAFT)
        if found is not None:
            return Prepared(await self.get(buyer.id, found), existing=True)
        return Prepared(await self.get(buyer.id, bulk_id), existing=False)

    async def _insert(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        kind: str,
        checked: Sequence[CheckedLine],
        digest: str,
        *,
        status: str,
        channel: str = "web",
        api_key_id: uuid.UUID | None = None,
        idempotency_key: str | None = None,
    ) -> uuid.UUID:
        bulk_id, now = uuid7(), utcnow()
        confirmed = now if status == RUNNING else None
        await session.execute(
            text(
                "INSERT INTO bulk_orders (id, user_id, kind, channel, api_key_id, content_hash,"
                " idempotency_key, status, line_count, total_kobo, confirmed_at, runs, created_at,"
                " updated_at)"
                " VALUES (:id, :uid, :kind, :channel, :key_id, :hash, :ikey, :status, :n, :total, :confirmed,"
                " 0, :now, :now)"
            ),
            {"id": bulk_id, "uid": user_id, "kind": kind, "channel": channel, "key_id": api_key_id,
             "hash": digest, "ikey": idempotency_key, "status": status, "n": len(checked),
             "total": sum(li.price_kobo for li in checked), "confirmed": confirmed, "now": now},
        )  # fmt: skip
        await session.execute(
            text(
                "INSERT INTO bulk_order_lines (id, bulk_id, line_no, phone, service_id, amount_kobo,"
                " variation_code, product_name, price_kobo, status, created_at, updated_at)"
                " VALUES (:id, :bid, :no, :phone, :sid, :amount, :code, :name, :price, 'queued', :now, :now)"
            ),
            [
                {"id": uuid7(), "bid": bulk_id, "no": li.line_no, "phone": li.phone, "sid": li.service_id,
                 "amount": li.amount_kobo, "code": li.variation_code, "name": li.product_name,
                 "price": li.price_kobo, "now": now}
                for li in checked
            ],
        )  # fmt: skip
        return bulk_id

    async def submit_api(
        self,
        buyer: Buyer,
        kind: Any,
        inputs: Sequence[LineInput],
        *,
        idempotency_key: str,
        api_key_id: uuid.UUID | None,
    ) -> BulkView:
        """The reseller API: check, record as running and start, under the caller's Idempotency-Key. The
        same key and body answer the same order (also for racing requests, and also when the list would now
        be refused); another body under the key raises IdempotencyMismatch."""
        fingerprint = api_body_hash(kind, inputs)
        existing = await self._by_key(buyer.id, idempotency_key)
        if existing is not None:
            return await self._replay(buyer.id, existing, fingerprint, idempotency_key)
        checked = await self.check(buyer, kind, inputs)
        try:
            async with self.sessionmaker() as session, session.begin():
                bulk_id = await self._insert(
                    session, buyer.id, kind, checked, fingerprint, status=RUNNING, channel="api",
                    api_key_id=api_key_id, idempotency_key=idempotency_key,
                )  # fmt: skip
        except IntegrityError:  # a racing request with this key recorded its order first
            winner = await self._by_key(buyer.id, idempotency_key)
            if winner is None:
                raise
            return await self._replay(buyer.id, winner, fingerprint, idempotency_key)
        log.info("bulk_order_started", bulk_id=str(bulk_id), lines=len(checked), channel="api")
        await self.start(bulk_id, 0)
        return await self.get(buyer.id, bulk_id)

    async def _by_key(self, user_id: uuid.UUID, key: str) -> tuple[uuid.UUID, str] | None:
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    text(
                        "SELECT id, content_hash FROM bulk_orders"
                        " WHERE user_id = :uid AND idempotency_key = :k"
                    ),
                    {"uid": user_id, "k": key},
                )
            ).first()
        return (row.id, row.content_hash) if row else None

    async def _replay(
        self, user_id: uuid.UUID, found: tuple[uuid.UUID, str], fingerprint: str, key: str
    ) -> BulkView:
        if found[1] != fingerprint:
            raise IdempotencyMismatch(key)
        return await self.get(user_id, found[0])

    # -- confirming, cancelling -----------------------------------------------------------------------
    async def confirm(self, user_id: uuid.UUID, bulk_id: uuid.UUID) -> BulkView:
        """Draft -> running (once, however often it is confirmed) and hand it to the worker. The caller has
        checked the transaction PIN. BulkNotFound for another user's order; BulkError when cancelled."""
        async with self.sessionmaker() as session, session.begin():
            row = (
                await session.execute(
                    text(
                        "UPDATE bulk_orders SET status = 'running', confirmed_at = :now, updated_at = :now"
                        " WHERE id = :bid AND user_id = :uid AND status = 'draft' RETURNING runs"
                    ),
                    {"bid": bulk_id, "uid": user_id, "now": utcnow()},
                )
            ).first()
        bulk = await self.get(user_id, bulk_id)
        if row is None:
            if bulk.status == CANCELLED:
                raise BulkError("This bulk order was cancelled; upload the list again to buy it.")
            return bulk  # already confirmed (a double tap): one run
        log.info("bulk_order_started", bulk_id=str(bulk_id), lines=bulk.line_count, channel="web")
        await self.start(bulk_id, row.runs)
        return bulk

    async def start(self, bulk_id: uuid.UUID, runs: int) -> bool:
        """Enqueue the next run of a running order; False when SAQ refused or is unreachable (the sweep,
        every minute, starts any running order nobody holds)."""
        if self.queue is None:
            return False
        try:
            job = await self.queue.enqueue(
                RUN_TASK, key=run_key(bulk_id, runs), timeout=RUN_JOB_TIMEOUT, retries=1, bulk_id=str(bulk_id)
            )
        except Exception:
            log.exception("bulk_enqueue_failed", bulk_id=str(bulk_id))
            return False
        return job is not None

    async def cancel(self, user_id: uuid.UUID, bulk_id: uuid.UUID) -> BulkView:
        """Stop an order: a draft is dropped, a running one buys no further line (lines not reached are
        skipped; a line being bought right now finishes). Done orders cannot be cancelled."""
        now = utcnow()
        async with self.sessionmaker() as session, session.begin():
            row = (
                await session.execute(
                    text(
                        "UPDATE bulk_orders SET status = 'cancelled', finished_at = :now, updated_at = :now"
                        " WHERE id = :bid AND user_id = :uid AND status IN ('draft', 'running') RETURNING id"
                    ),
                    {"bid": bulk_id, "uid": user_id, "now": now},
                )
            ).first()
            if row is not None:
                await session.execute(
                    text(
                        "UPDATE bulk_order_lines SET status = 'skipped', error = 'Cancelled before it was"
                        " bought.', updated_at = :now WHERE bulk_id = :bid AND status = 'queued'"
                    ),
                    {"bid": bulk_id, "now": now},
                )
        bulk = await self.get(user_id, bulk_id)
        if row is None and bulk.status == DONE:
            raise BulkError("This bulk order has finished; there is nothing left to cancel.")
        return bulk

    # -- reading --------------------------------------------------------------------------------------
    async def get(self, user_id: uuid.UUID, bulk_id: uuid.UUID, *, lines: bool = True) -> BulkView:
        """An order of `user_id` with its lines (each with its purchase, found by the line's key);
        BulkNotFound for an unknown id and for another user's."""
        async with self.sessionmaker() as session:
            order = (await session.execute(_ORDER, {"bid": bulk_id, "uid": user_id})).first()
            if order is None:
                raise BulkNotFound()
            rows = (await session.execute(_LINES, {"bid": bulk_id, "uid": user_id})).all() if lines else []
        views = [
            BulkLineView(
                line_no=r.line_no,
                phone=r.phone,
                service_id=r.service_id,
                amount_kobo=r.amount_kobo,
                variation_code=r.variation_code,
                product_name=r.product_name,
                price_kobo=r.price_kobo,
                # A line caught mid-purchase by a cancel shows its purchase once there is one; without one,
                # nothing can buy it any more (no run takes a cancelled order): it was skipped.
                status=r.pstatus or (SKIPPED if order.status == CANCELLED and r.status == SENT else r.status),
                error=None if r.pstatus in ("successful", "pending") else r.error,
                purchase_id=r.pid,
                reference=r.request_id,
                charged_kobo=r.charged,
            )
            for r in rows
        ]
        counts: dict[str, int] = {}
        for view in views:
            counts[view.status] = counts.get(view.status, 0) + 1
        return BulkView(
            id=order.id, user_id=order.user_id, kind=order.kind, channel=order.channel, status=order.status,
            line_count=order.line_count, total_kobo=order.total_kobo, created_at=order.created_at,
            confirmed_at=order.confirmed_at, finished_at=order.finished_at,
            idempotency_key=order.idempotency_key, content_hash=order.content_hash, counts=counts,
            lines=views,
        )  # fmt: skip

    async def list_for_user(self, user_id: uuid.UUID, *, limit: int = 50) -> list[BulkView]:
        """The user's bulk orders, newest first, with line counts by the line's own state."""
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT id, user_id, kind, channel, status, line_count, total_kobo, created_at,"
                        " confirmed_at, finished_at, idempotency_key, content_hash,"
                        " (SELECT count(*) FROM bulk_order_lines l WHERE l.bulk_id = b.id"
                        "  AND l.status NOT IN ('queued', 'sent')) AS done"
                        " FROM bulk_orders b WHERE user_id = :uid ORDER BY created_at DESC, id DESC LIMIT :n"
                    ),
                    {"uid": user_id, "n": limit},
                )
            ).all()
        return [
            BulkView(
                id=r.id,
                user_id=r.user_id,
                kind=r.kind,
                channel=r.channel,
                status=r.status,
                line_count=r.line_count,
                total_kobo=r.total_kobo,
                created_at=r.created_at,
                confirmed_at=r.confirmed_at,
                finished_at=r.finished_at,
                idempotency_key=r.idempotency_key,
                content_hash=r.content_hash,
                counts={"done": int(r.done)},
            )
            for r in rows
        ]


def csv_rows(bulk: BulkView) -> list[list[str]]:
    """The results CSV: header and one row per line (cells that a spreadsheet would run as a formula are
    prefixed with a quote)."""
    out = [["line", "phone", "product", "price", "status", "reference", "error"]]
    for li in bulk.lines:
        price = f"{li.price_kobo // 100}.{li.price_kobo % 100:02d}"
        out.append(
            [
                str(li.line_no),
                li.phone,
                _cell(li.product_name),
                price,
                li.status,
                li.reference or "",
                _cell(li.error or ""),
            ]
        )
    return out


def _cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


__all__ = [
    "MAX_LINES",
    "MAX_UPLOAD_BYTES",
    "RUN_TASK",
    "SAME_NUMBER_GAP_SECONDS",
    "BulkError",
    "BulkInvalid",
    "BulkLineView",
    "BulkNotFound",
    "BulkService",
    "BulkView",
    "CheckedLine",
    "LineError",
    "LineInput",
    "Prepared",
    "csv_rows",
    "line_key",
    "parse_text",
    "run_key",
]
