"""Reseller JSON API v1 (the contract: docs/api.md). Thin: authenticate (router middleware), parse,
call `ResellerApi`, shape the answer. Errors are raised and rendered by app/api/errors.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Router, get, post
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi.spec import Example, Operation, RequestBody
from litestar.params import Body, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import ApiKeyAuthMiddleware, principal
from app.api.errors import EXCEPTION_HANDLERS, responses
from app.api.openapi import SECURITY
from app.api.schemas import (
    MAX_BODY_BYTES,
    PURCHASE_EXAMPLES,
    VERIFY_EXAMPLES,
    CallbackDeliveryOut,
    CustomerOut,
    PlanOut,
    PurchaseBody,
    PurchaseOut,
    ServiceOut,
    VerifyBody,
    Wallet,
    check_idempotency_key,
    parse_purchase,
    parse_verify,
)
from app.api.services import ResellerApi
from app.vtu.runtime import get_vtu

Req = Request[Any, Any, Any]
PURCHASE_DOC = "One shape per kind of service, chosen by `service_id`; unknown fields are refused."


def documented_body(body: Any, description: str, examples: Mapping[str, msgspec.Struct]) -> dict[str, Any]:
    """`dependencies` and `operation_class` for a handler that parses its raw body itself (strictly, see
    schemas.py). Litestar documents the `data` of a handler's dependencies as its request body, and runs a
    dependency only for a handler that names it: this one is never named, so the body is described by
    Litestar, from the struct, and never parsed by it."""

    async def body_for_openapi(data: Any) -> None: ...

    body_for_openapi.__annotations__["data"] = Annotated[body, Body(description=description)]
    named = {
        name: Example(summary=name, value=msgspec.to_builtins(value)) for name, value in examples.items()
    }

    @dataclass
    class WithExamples(Operation):
        def __post_init__(self) -> None:
            if isinstance(self.request_body, RequestBody):
                for media in self.request_body.content.values():
                    media.examples = dict(named)

    return {"dependencies": {"body_for_openapi": Provide(body_for_openapi)}, "operation_class": WithExamples}


async def _api(request: Req) -> ResellerApi:
    return ResellerApi(await get_vtu(request.app), request.app.state.settings)


class WalletController(Controller):
    path = "/wallet"
    tags = ["Wallet"]

    @get(
        "/",
        summary="Wallet balance and funding accounts",
        description="Balance in kobo and the caller's personal bank accounts for funding by transfer "
        "(they appear within seconds of sign-up; an empty list means they are still being created).",
        responses=responses(),
    )
    async def wallet(self, request: Req, db_session: AsyncSession) -> Wallet:
        api = await _api(request)
        return await api.wallet(db_session, principal(request), funding=request.app.state.get("funding"))


class PlanController(Controller):
    path = "/plans"
    tags = ["Catalog"]

    @get(
        "/",
        summary="Plans of a data or cable service at the caller's price",
        description="Active plans (data bundles, TV bouquets) with `price_kobo` for the caller's tier.",
        responses=responses(400),
    )
    async def plans(
        self,
        request: Req,
        db_session: AsyncSession,
        service_id: Annotated[str, Parameter(description="A data or cable service, e.g. mtn-data, dstv.")],
    ) -> list[PlanOut]:
        api = await _api(request)
        return await api.plans(db_session, principal(request), service_id)


class PurchaseController(Controller):
    path = "/purchases"
    tags = ["Purchases"]

    @post(
        "/",
        status_code=201,
        summary="Buy airtime, data, electricity or cable TV",
        description=(
            "Charges the wallet and sends the order to the provider. Requires an `Idempotency-Key` header: "
            "the same key with the same body returns the same purchase (201, no second charge), also for "
            "requests racing each other; the same key with a different body answers 409. The purchase "
            "comes back `successful`, `failed` (refunded) or `pending` (we keep checking with the "
            "provider; poll GET /api/v1/purchases/{id} or set a callback URL on the key)."
        ),
        **documented_body(PurchaseBody, PURCHASE_DOC, PURCHASE_EXAMPLES),
        request_max_body_size=MAX_BODY_BYTES,
        responses=responses(400, 402, 409, 503),
    )
    async def create(
        self,
        request: Req,
        idempotency_key: Annotated[
            str,
            Parameter(
                header="Idempotency-Key",
                description="Your unique id for this order (1-255 visible ASCII characters), e.g. a UUID.",
                min_length=1,
                max_length=255,
            ),
        ],
    ) -> PurchaseOut:
        key = check_idempotency_key(idempotency_key)
        order = parse_purchase(await request.body())
        api = await _api(request)
        return await api.buy(principal(request), order, key)

    @get(
        "/",
        summary="The caller's purchases, newest first",
        responses=responses(400),
    )
    async def list_purchases(
        self,
        request: Req,
        status: Annotated[
            str | None, Parameter(description="pending | successful | failed | reversed", required=False)
        ] = None,
        limit: Annotated[int | None, Parameter(description="1-100 (default 50)", required=False)] = None,
    ) -> list[PurchaseOut]:
        api = await _api(request)
        return await api.list(principal(request), status, limit)

    @get(
        "/{purchase_id:str}",
        summary="One purchase",
        description="404 for an unknown id and for another user's purchase.",
        responses=responses(404),
    )
    async def get_purchase(self, request: Req, purchase_id: str) -> PurchaseOut:
        api = await _api(request)
        return await api.get(principal(request), purchase_id)


class ServiceController(Controller):
    path = "/services"
    tags = ["Catalog"]

    @get(
        "/",
        summary="Every service that can be bought, with its kind and limits",
        description="The `service_id` values for POST /api/v1/purchases (9mobile is `etisalat`), each with "
        "its kind, the amount limits in force for airtime and electricity (the ones the purchase engine "
        "enforces), where data and cable plans are listed (GET /api/v1/plans), and whether POST "
        "/api/v1/verify checks its numbers.",
        responses=responses(),
    )
    async def services(self, request: Req) -> list[ServiceOut]:
        api = await _api(request)
        return api.services()


class CallbackController(Controller):
    path = "/callbacks"
    tags = ["Callbacks"]

    @get(
        "/",
        summary="The caller's recent callback deliveries, newest first",
        description="One entry per purchase and final status announced to your callback URL: attempts so "
        "far, the last failure (HTTP status or error), when it was delivered or given up, and when the next "
        "attempt is due while it is being retried. Only your own purchases.",
        responses=responses(400),
    )
    async def list_callbacks(
        self,
        request: Req,
        db_session: AsyncSession,
        limit: Annotated[int | None, Parameter(description="1-100 (default 20)", required=False)] = None,
    ) -> list[CallbackDeliveryOut]:
        api = await _api(request)
        return await api.callbacks(db_session, principal(request), limit)


class VerifyController(Controller):
    path = "/verify"
    tags = ["Catalog"]

    @post(
        "/",
        status_code=200,
        summary="Check a meter or smartcard before buying",
        description="Returns the customer's name and the provider's details (minimum amount for meters, "
        "current bouquet and renewal amount for smartcards). Nothing is charged.",
        **documented_body(VerifyBody, "The meter or smartcard to check.", VERIFY_EXAMPLES),
        request_max_body_size=MAX_BODY_BYTES,
        responses=responses(400, 503),
    )
    async def verify(self, request: Req) -> CustomerOut:
        service_id, number, kind = parse_verify(await request.body())
        api = await _api(request)
        return await api.verify(service_id, number, kind)


def api_router() -> Router:
    from app.api.bulk import BulkController  # imports documented_body from here

    return Router(
        path="/api/v1",
        route_handlers=[
            WalletController,
            PlanController,
            ServiceController,
            PurchaseController,
            BulkController,
            CallbackController,
            VerifyController,
        ],
        middleware=[DefineMiddleware(ApiKeyAuthMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        security=SECURITY,
        request_max_body_size=MAX_BODY_BYTES,
    )


__all__ = ["api_router"]
