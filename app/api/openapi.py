"""OpenAPI documentation of /api/v1 (served by Litestar at /api/docs, schema at /api/docs/openapi.json).

Response bodies are documented from the msgspec structs in schemas.py. Request bodies are parsed from raw
bytes (strictly, see schemas.py), so Litestar cannot see them: they are described here and attached to the
operations through `operation_class`. Every operation lists its error answers with the error shape.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)

from app.api.schemas import ErrorOut
from app.vtu.providers.catalog import SERVICES, ServiceKind

BEARER = "BearerAuth"
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]


def components() -> Components:
    return Components(
        security_schemes={
            BEARER: SecurityScheme(
                type="http",
                scheme="bearer",
                bearer_format="API key (vtu_...)",
                description=(
                    "Create a key on your profile page (Account -> API keys) and send it on every request as "
                    "`Authorization: Bearer <key>`. A missing, unknown or revoked key answers 401."
                ),
            )
        }
    )


def _ids(kind: ServiceKind) -> list[str]:
    return [s.service_id for s in SERVICES if s.kind is kind]


def _string(description: str, **kw: Any) -> Schema:
    return Schema(type=OpenAPIType.STRING, description=description, **kw)


PHONE = _string(
    "Nigerian mobile number: 0XXXXXXXXXX, 234XXXXXXXXXX or +234XXXXXXXXXX (sandbox test numbers outside "
    "production).",
    max_length=100,
    examples=["08031234567"],
)
AMOUNT = Schema(
    type=OpenAPIType.INTEGER,
    description="Kobo, a JSON integer (a string, float or boolean is refused), whole naira.",
    multiple_of=100,
)


def _variant(title: str, kind: ServiceKind, props: dict[str, Schema], required: list[str]) -> Schema:
    return Schema(
        title=title,
        type=OpenAPIType.OBJECT,
        properties={"service_id": Schema(type=OpenAPIType.STRING, enum=_ids(kind)), **props},
        required=["service_id", *required],
        additional_properties=False,
    )


PURCHASE_BODY = Schema(
    description="One of four shapes, chosen by `service_id`. Unknown fields are refused.",
    one_of=[
        _variant(
            "Airtime",
            ServiceKind.AIRTIME,
            {
                "phone": PHONE,
                "amount_kobo": Schema(
                    type=OpenAPIType.INTEGER,
                    minimum=5_000,
                    maximum=5_000_000,
                    multiple_of=100,
                    description=AMOUNT.description,
                ),
            },
            ["phone", "amount_kobo"],
        ),
        _variant(
            "Data",
            ServiceKind.DATA,
            {"phone": PHONE, "variation_code": _string("A plan from GET /api/v1/plans.", max_length=100)},
            ["phone", "variation_code"],
        ),
        _variant(
            "Electricity",
            ServiceKind.ELECTRICITY,
            {
                "meter_number": _string("11 to 13 digits.", pattern=r"^\d{11,13}$"),
                "meter_type": Schema(type=OpenAPIType.STRING, enum=["prepaid", "postpaid"]),
                "amount_kobo": Schema(
                    type=OpenAPIType.INTEGER,
                    minimum=50_000,
                    maximum=50_000_000,
                    multiple_of=100,
                    description=AMOUNT.description,
                ),
                "phone": PHONE,
            },
            ["meter_number", "meter_type", "amount_kobo", "phone"],
        ),
        _variant(
            "Cable TV",
            ServiceKind.CABLE,
            {
                "smartcard_number": _string("10 or 11 digits.", pattern=r"^\d{10,11}$"),
                "variation_code": _string(
                    "A bouquet from GET /api/v1/plans (optional for renew).", max_length=100
                ),
                "subscription_type": Schema(
                    type=OpenAPIType.STRING, enum=["change", "renew"], description="dstv/gotv only"
                ),
                "phone": PHONE,
            },
            ["smartcard_number", "phone"],
        ),
    ],
)
PURCHASE_EXAMPLES = {
    "airtime": Example(
        summary="Airtime", value={"service_id": "mtn", "phone": "08031234567", "amount_kobo": 50_000}
    ),
    "data": Example(
        summary="Data bundle",
        value={"service_id": "mtn-data", "phone": "08031234567", "variation_code": "mtn-1gb-1day"},
    ),
    "electricity": Example(
        summary="Electricity token",
        value={
            "service_id": "ikeja-electric",
            "meter_number": "1111111111111",
            "meter_type": "prepaid",
            "amount_kobo": 200_000,
            "phone": "08031234567",
        },
    ),
    "cable": Example(
        summary="Cable TV",
        value={
            "service_id": "dstv",
            "smartcard_number": "1212121212",
            "variation_code": "dstv-padi",
            "subscription_type": "change",
            "phone": "08031234567",
        },
    ),
}
VERIFY_BODY = Schema(
    type=OpenAPIType.OBJECT,
    properties={
        "service_id": Schema(
            type=OpenAPIType.STRING, enum=_ids(ServiceKind.ELECTRICITY) + _ids(ServiceKind.CABLE)
        ),
        "customer_number": _string("Meter or smartcard number (digits).", pattern=r"^\d{6,20}$"),
        "type": Schema(
            type=OpenAPIType.STRING, enum=["prepaid", "postpaid"], description="Electricity meters only."
        ),
    },
    required=["service_id", "customer_number"],
    additional_properties=False,
)
VERIFY_EXAMPLES = {
    "meter": Example(
        summary="Prepaid meter",
        value={"service_id": "ikeja-electric", "customer_number": "1111111111111", "type": "prepaid"},
    ),
    "smartcard": Example(
        summary="DStv smartcard", value={"service_id": "dstv", "customer_number": "1212121212"}
    ),
}


def _with_body(schema: Schema, examples: dict[str, Example], description: str) -> type[Operation]:
    body = RequestBody(
        content={"application/json": OpenAPIMediaType(schema=schema, examples=dict(examples))},
        description=description,
        required=True,
    )

    @dataclass
    class _Operation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return _Operation


PurchaseOperation = _with_body(PURCHASE_BODY, PURCHASE_EXAMPLES, "What to buy.")
VerifyOperation = _with_body(VERIFY_BODY, VERIFY_EXAMPLES, "The meter or smartcard to check.")


def error(status: int, code: str, detail: str, description: str, **extra: Any) -> ResponseSpec:
    value = {"error": code, "detail": detail, **extra}
    return ResponseSpec(
        data_container=ErrorOut,
        description=description,
        generate_examples=False,
        examples=[Example(id=f"{code}", summary=code, value=value)],
    )


E400 = error(
    400,
    "invalid_request",
    "The request is not valid; see `fields`.",
    "Invalid input: `fields` names each bad field.",
    fields={"amount_kobo": "Must be a JSON integer (kobo)."},
)
E401 = error(401, "unauthorized", "Unknown or revoked API key.", "Missing, unknown or revoked API key.")
E403 = error(403, "ip_not_allowed", "This API key may not be used from this address.", "IP not allowed.")
E404 = error(404, "not_found", "No such purchase.", "Not found (also another user's purchase).")
E402_FUNDS = error(402, "insufficient_funds", "Your wallet balance is too low for this purchase.", "")
E402_LIMIT = error(
    402, "limit_exceeded", "This purchase would take today's API spending over your limit.", ""
)
E409 = error(
    409,
    "idempotency_key_reused",
    "Idempotency-Key 'order-1' was already used for a different request.",
    "The Idempotency-Key was used before with a different body.",
)
E429 = error(
    429,
    "rate_limited",
    "More than 60 requests a minute with this key.",
    "Rate limited: retry after the `Retry-After` header's seconds.",
)
E503 = error(503, "service_unavailable", "We could not check this meter right now.", "Provider unavailable.")
COMMON: dict[int, ResponseSpec] = {401: E401, 403: E403, 429: E429}


def responses(*extra: tuple[int, ResponseSpec]) -> dict[int, ResponseSpec]:
    return {**COMMON, **dict(extra)}


# 402 has two codes: document both on one response.
E402 = ResponseSpec(
    data_container=ErrorOut,
    description="`insufficient_funds` (the wallet cannot pay) or `limit_exceeded` (daily API spend limit). "
    "Nothing was charged.",
    generate_examples=False,
    examples=[*(E402_FUNDS.examples or []), *(E402_LIMIT.examples or [])],
)

__all__ = [
    "BEARER",
    "COMMON",
    "E400",
    "E402",
    "E404",
    "E409",
    "E503",
    "SECURITY",
    "PurchaseOperation",
    "SelfHostedSwagger",
    "VerifyOperation",
    "components",
    "responses",
]


class SelfHostedSwagger(OpenAPIRenderPlugin):
    """Swagger UI from our own static files (vendored swagger-ui-dist 5.31, Apache-2.0, in
    static/vendor/swagger-ui/) with no inline script or style, so the site's CSP (`script-src 'self'`)
    allows it and the docs work without a CDN."""

    def __init__(self, path: str = "/swagger") -> None:
        super().__init__(path=path)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        from app.core.static import static_url

        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        spec = html.escape(self.get_openapi_json_route(request))
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{title}</title>"
            f"<link rel='icon' href='{static_url('img/icon.svg')}' type='image/svg+xml'>"
            f"<link rel='stylesheet' href='{static_url('vendor/swagger-ui/swagger-ui.css')}'>"
            f"<script src='{static_url('vendor/swagger-ui/swagger-ui-bundle.js')}' defer></script>"
            f"<script src='{static_url('js/api-docs.js')}' defer></script>"
            f"</head><body><div id='swagger-ui' data-spec-url='{spec}'></div></body></html>"
        ).encode()
