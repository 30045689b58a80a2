"""Bulk orders through the reseller API (docs/api.md, "Bulk orders"): `POST /api/v1/bulk` (Idempotency-Key)
and `GET /api/v1/bulk/{id}`. Thin: parse the body strictly, call `app.vtu.bulk.BulkService`, shape the
answer. Every line is checked by the single purchase's rules before anything is written; a refused list
answers 400 with one `fields` entry per bad line (`lines[<index>].<field>`, index from 0)."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter
from msgspec import Meta

from app.api.auth import principal
from app.api.controllers import documented_body
from app.api.errors import ApiError, invalid, responses
from app.api.schemas import _no_duplicates, _reject_constant, check_idempotency_key
from app.vtu.bulk import MAX_LINES, BulkInvalid, BulkNotFound, BulkView, LineInput
from app.vtu.runtime import get_vtu

Req = Request[Any, Any, Any]
BULK_MAX_BODY_BYTES = 128 * 1024  # 500 lines of ~120 bytes, with room
LINE_FIELDS = ("phone", "service_id", "amount_kobo", "variation_code")


class BulkLineBody(msgspec.Struct, forbid_unknown_fields=True):
    phone: str
    service_id: Annotated[
        str | None, Meta(description="e.g. mtn / mtn-data; omitted: detected from the number's prefix.")
    ] = None
    amount_kobo: Annotated[int | None, Meta(description="airtime: the amount (a JSON integer).")] = None
    variation_code: Annotated[str | None, Meta(description="data: the plan (GET /api/v1/plans).")] = None


class BulkBody(msgspec.Struct, forbid_unknown_fields=True):
    kind: Annotated[str, Meta(description="airtime | data")]
    lines: Annotated[list[BulkLineBody], Meta(description=f"1 to {MAX_LINES} recipients, bought in order.")]


class BulkLineOut(msgspec.Struct):
    line: Annotated[int, Meta(description="1-based position in `lines`.")]
    phone: str
    service_id: str
    amount_kobo: int | None
    variation_code: str | None
    product: str
    price_kobo: Annotated[int, Meta(description="The caller's price when the order was checked.")]
    status: Annotated[
        str,
        Meta(description="queued | sent (being bought) | successful | failed | pending | reversed | skipped"),
    ]
    purchase_id: str | None
    reference: Annotated[str | None, Meta(description="The purchase's provider reference.")]
    error: str | None


class BulkOut(msgspec.Struct):
    id: str
    kind: str
    status: Annotated[str, Meta(description="running | done | cancelled")]
    line_count: int
    total_kobo: Annotated[int, Meta(description="The sum of the lines' prices when checked.")]
    counts: Annotated[dict[str, int], Meta(description="Lines per status.")]
    created_at: datetime.datetime
    confirmed_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    lines: list[BulkLineOut]

    @classmethod
    def of(cls, bulk: BulkView) -> BulkOut:
        return cls(
            id=str(bulk.id), kind=bulk.kind, status=bulk.status, line_count=bulk.line_count,
            total_kobo=bulk.total_kobo, counts=dict(bulk.counts), created_at=bulk.created_at,
            confirmed_at=bulk.confirmed_at, finished_at=bulk.finished_at,
            lines=[
                BulkLineOut(
                    line=li.line_no, phone=li.phone, service_id=li.service_id, amount_kobo=li.amount_kobo,
                    variation_code=li.variation_code, product=li.product_name, price_kobo=li.price_kobo,
                    status=li.status, purchase_id=str(li.purchase_id) if li.purchase_id else None,
                    reference=li.reference, error=li.error,
                )
                for li in bulk.lines
            ],
        )  # fmt: skip


def parse_bulk(raw: bytes) -> tuple[str, list[LineInput]]:
    """(kind, lines) with the types checked (strings are strings, `amount_kobo` a JSON integer), or
    ApiError 400 naming every bad field; the values are the purchase rules' to check."""
    if len(raw) > BULK_MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"The body must be at most {BULK_MAX_BODY_BYTES} bytes.")
    try:
        data = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
    except Exception:  # not UTF-8, not JSON, a duplicate key, NaN, nested too deep
        raise invalid(
            {"body": "The body is not valid JSON."}, "The request body is not valid JSON."
        ) from None
    if not isinstance(data, dict):
        raise invalid({"body": "Send a JSON object."}, "The request body must be a JSON object.")
    errors = {name[:64]: "Unknown field." for name in data if name not in ("kind", "lines")}
    kind, lines = data.get("kind"), data.get("lines")
    if kind not in ("airtime", "data"):
        errors["kind"] = "Use airtime or data."
    if not isinstance(lines, list) or not lines:
        errors["lines"] = f"Send 1 to {MAX_LINES} lines."
    elif len(lines) > MAX_LINES:
        errors["lines"] = f"At most {MAX_LINES} lines per bulk order (got {len(lines)})."
    if errors:
        raise invalid(errors)
    assert isinstance(lines, list) and isinstance(kind, str)
    inputs: list[LineInput] = []
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if not isinstance(line, dict):
            errors[where] = "Each line must be a JSON object."
            continue
        for name in line:
            if name not in LINE_FIELDS:
                errors[f"{where}.{str(name)[:64]}"] = "Unknown field."
        for name in ("phone", "service_id", "variation_code"):
            value = line.get(name)
            if value is not None and not (isinstance(value, str) and len(value) <= 100):
                errors[f"{where}.{name}"] = "Must be a string (at most 100 characters)."
        amount = line.get("amount_kobo")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
            errors[f"{where}.amount_kobo"] = "Must be a JSON integer (kobo)."
        if line.get("phone") is None:
            errors[f"{where}.phone"] = "This field is required."
        service_id = line.get("service_id")
        inputs.append(
            LineInput(
                index + 1,
                line.get("phone"),
                service_id.strip() if isinstance(service_id, str) else None,
                amount_kobo=amount,
                variation_code=line.get("variation_code"),
            )
        )
    if errors:
        raise invalid(errors)
    return kind, inputs


def _line_errors(exc: BulkInvalid) -> ApiError:
    fields = {f"lines[{e.line_no - 1}].{e.field}": e.message for e in exc.errors} or {"lines": exc.message}
    return invalid(fields, exc.message.replace("nothing was saved", "nothing was bought"))


BULK_EXAMPLES = {
    "airtime": BulkBody(
        kind="airtime",
        lines=[
            BulkLineBody(phone="08011111111", amount_kobo=10_000, service_id="mtn"),
            BulkLineBody(phone="08011111111", amount_kobo=20_000, service_id="glo"),
        ],
    ),
    "data": BulkBody(
        kind="data",
        lines=[BulkLineBody(phone="08011111111", variation_code="mtn-1gb-1day", service_id="mtn-data")],
    ),
}


class BulkController(Controller):
    path = "/bulk"
    tags = ["Bulk orders"]

    @post(
        "/",
        status_code=201,
        summary="Buy airtime or data for up to 500 numbers at once",
        description=(
            "Every line is checked first (the same rules as POST /api/v1/purchases); any bad line refuses "
            "the whole order with 400 and a `fields` entry per problem (`lines[<index>].<field>`). A valid "
            "order is started at once and bought line by line in the background, each line a purchase of "
            "its own; poll GET /api/v1/bulk/{id}. Requires an `Idempotency-Key`: the same key with the same "
            "body returns the same order (nothing bought twice); with another body, 409. When the wallet "
            "runs out part-way, the remaining lines fail with nothing charged."
        ),
        **documented_body(BulkBody, "The lines to buy, in order.", BULK_EXAMPLES),
        request_max_body_size=BULK_MAX_BODY_BYTES,
        responses=responses(400, 409),
    )
    async def create(
        self,
        request: Req,
        idempotency_key: Annotated[
            str,
            Parameter(
                header="Idempotency-Key",
                description="Your unique id for this bulk order (1-255 visible ASCII characters).",
                min_length=1,
                max_length=255,
            ),
        ],
    ) -> BulkOut:
        key = check_idempotency_key(idempotency_key)
        kind, lines = parse_bulk(await request.body())
        caller = principal(request)
        runtime = await get_vtu(request.app)
        try:
            bulk = await runtime.bulk.submit_api(
                caller.user, kind, lines, idempotency_key=key, api_key_id=caller.key_id
            )
        except BulkInvalid as exc:
            raise _line_errors(exc) from exc
        return BulkOut.of(bulk)

    @get(
        "/{bulk_id:str}",
        summary="A bulk order: status, counts and every line with its purchase",
        description="404 for an unknown id and for another user's order.",
        responses=responses(404),
    )
    async def get_bulk(self, request: Req, bulk_id: str) -> BulkOut:
        runtime = await get_vtu(request.app)
        try:
            bulk = await runtime.bulk.get(principal(request).user_id, uuid.UUID(bulk_id))
        except (ValueError, BulkNotFound):
            raise ApiError(404, "not_found", "No such bulk order.") from None
        return BulkOut.of(bulk)


__all__ = ["BulkController", "BulkOut", "parse_bulk"]
