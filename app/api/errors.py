"""The API's error shape and its exception handlers (for the /api/v1 router only).

Every error answer is JSON `{"error": "<code>", "detail": "<message>", "fields": {...}}` (`fields` only for
field errors). Codes: invalid_request 400, unauthorized 401, ip_not_allowed 403, account_suspended 403 (on
every call while the key's owner is suspended, and for a purchase refused by a suspension), not_found 404,
method_not_allowed 405, idempotency_key_reused 409, insufficient_funds 402, limit_exceeded 402,
payload_too_large 413, unsupported_media_type 415, rate_limited 429 (+ Retry-After), service_unavailable
503, internal_error 500.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from msgspec import Meta

from app.core.errors import request_path
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
    SpendLimitExceeded,
)

log = structlog.get_logger("app.api")

STATUS_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
DETAILS: dict[int, str] = {
    401: "Send your API key as `Authorization: Bearer <key>`.",
    404: "Not found.",
    405: "This method is not allowed here.",
    413: "The request body is too large.",
    429: "Too many requests for this API key; retry after the number of seconds in Retry-After.",
    500: "Something went wrong on our side. Nothing was charged twice; retry with the same Idempotency-Key.",
}
UNAVAILABLE_DETAIL = (
    "Briefly unavailable. Nothing was charged twice; retry with the same Idempotency-Key shortly."
)


class ErrorOut(msgspec.Struct, omit_defaults=True):
    """Every answer under /api/v1 that is not a success."""

    error: str
    detail: str
    fields: dict[str, str] | None = None
    balance_kobo: Annotated[
        int | None, Meta(description="insufficient_funds only: the wallet balance now.")
    ] = None
    required_kobo: Annotated[
        int | None, Meta(description="insufficient_funds only: what the purchase would charge.")
    ] = None


# Signature parameter names as the API documents them.
PARAMETER_NAMES = {"idempotency_key": "Idempotency-Key"}


class ApiError(Exception):
    """Raised anywhere under /api/v1 to answer with the API's error shape."""

    def __init__(
        self,
        status_code: int,
        code: str | None = None,
        detail: str | None = None,
        *,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, int | str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code or STATUS_CODES.get(status_code, "error")
        self.detail = detail or DETAILS.get(status_code) or self.code.replace("_", " ").capitalize() + "."
        self.fields = fields
        self.headers = headers or {}
        self.extra = extra or {}  # more members of the body (e.g. balance_kobo, required_kobo on a 402)
        super().__init__(self.detail)


def invalid(fields: dict[str, str], detail: str = "The request is not valid; see `fields`.") -> ApiError:
    return ApiError(400, "invalid_request", detail, fields=fields)


def error_body(
    code: str, detail: str, fields: dict[str, str] | None = None, extra: dict[str, int | str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return body | (extra or {})


def error_response(exc: ApiError) -> Response[Any]:
    headers = dict(exc.headers)
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
    return Response(
        error_body(exc.code, exc.detail, exc.fields, exc.extra),
        status_code=exc.status_code,
        headers=headers,
        media_type=MediaType.JSON,
    )


def from_purchase_error(exc: PurchaseError) -> ApiError:
    if isinstance(exc, InvalidPurchase):
        return invalid(exc.fields)
    if isinstance(exc, CustomerNotFound):
        return invalid({exc.field: exc.message}, exc.message)
    if isinstance(exc, InsufficientFunds):
        return insufficient_funds(exc.balance_kobo, exc.price_kobo)
    if isinstance(exc, SpendLimitExceeded):
        return ApiError(
            402, "limit_exceeded", exc.message.replace("today's spending", "today's API spending")
        )
    if isinstance(exc, AccountSuspended):
        return suspended()
    if isinstance(exc, KycLimitExceeded):
        return kyc_limit_exceeded(exc)
    if isinstance(exc, IdempotencyMismatch):
        return ApiError(409, "idempotency_key_reused", exc.message)
    if isinstance(exc, PurchaseNotFound):
        return ApiError(404, "not_found", "No such purchase.")
    if isinstance(exc, ServiceUnavailable):
        return ApiError(503, "service_unavailable", exc.message, headers={"Retry-After": "30"})
    return ApiError(400, exc.code, exc.message)


def insufficient_funds(balance_kobo: int | None, required_kobo: int) -> ApiError:
    """402 with the wallet's balance and the charge (ResellerApi.buy reads the balance again when the
    engine did not say it)."""
    extra: dict[str, int | str] = {"required_kobo": required_kobo}
    if balance_kobo is not None:
        extra = {"balance_kobo": balance_kobo, **extra}
    message = "Your wallet balance is too low for this purchase."
    return ApiError(402, "insufficient_funds", message, extra=extra)


def kyc_limit_exceeded(exc: KycLimitExceeded) -> ApiError:
    """403 `kyc_limit_exceeded`: over a limit of the owner's KYC level (KYC_LIMITS); `limit` says which one
    (`single` purchase or `daily`), with the level and the limit in kobo. Nothing was charged."""
    extra: dict[str, int | str] = {"kyc_level": exc.level, "limit": exc.scope, "limit_kobo": exc.limit_kobo}
    return ApiError(
        403, "kyc_limit_exceeded", exc.message.replace("your BVN or NIN", "the BVN or NIN"), extra=extra
    )


def suspended() -> ApiError:
    """The answer to every call with a suspended user's key (app/api/auth.py) and to a purchase a suspension
    refused while it was being opened."""
    return ApiError(
        403, "account_suspended", "This account is suspended: contact support. Nothing was charged."
    )


_MISSING = re.compile(r"^Missing required \w+ parameter '([^']+)'")


def _api_name(key: str) -> str:
    return PARAMETER_NAMES.get(key) or PARAMETER_NAMES.get(key.lower().replace("-", "_")) or key


def _validation_fields(exc: ValidationException) -> dict[str, str]:
    fields: dict[str, str] = {}
    if missing := _MISSING.match(exc.detail or ""):
        fields[_api_name(missing.group(1))] = "This parameter is required."
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key") or "request")
        key = _api_name(key)
        message = str(item.get("message") or "Invalid value.")
        if message.startswith("Missing required"):
            message = "This parameter is required."
        fields.setdefault(key, message)
    return fields


def handle_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return error_response(exc)


def handle_purchase_error(request: Request[Any, Any, Any], exc: PurchaseError) -> Response[Any]:
    return error_response(from_purchase_error(exc))


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    return error_response(invalid(_validation_fields(exc) or {"request": "Invalid request."}))


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        log.error("api_http_error", status=status, path=request_path(request), detail=exc.detail)
    detail = exc.detail if 400 <= status < 500 and status not in DETAILS else DETAILS.get(status)
    if isinstance(exc, NotFoundException):
        detail = DETAILS[404]
    api = ApiError(status, STATUS_CODES.get(status), detail, headers=dict(exc.headers or {}))
    return error_response(api)


def handle_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    from app.core.unavailable import RETRY_AFTER_SECONDS, unavailable_service

    service = unavailable_service(exc)
    if service is not None:  # PostgreSQL or Redis unreachable for a moment (app/core/unavailable.py)
        log.warning(
            "api_service_unavailable", service=service, path=request_path(request), error=repr(exc)[:300]
        )
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(ApiError(503, detail=UNAVAILABLE_DETAIL, headers=headers))
    log.exception("api_unhandled_error", path=request_path(request), method=request.method, exc_info=exc)
    return error_response(ApiError(500))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: handle_api_error,
    PurchaseError: handle_purchase_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    Exception: handle_internal,
}


def api_error_for_status(status: int, detail: str | None = None) -> Response[Any]:
    """For app-level handlers answering an /api/ path that matched no API route (404/405)."""
    return error_response(ApiError(status, STATUS_CODES.get(status), DETAILS.get(status) or detail))


# -- OpenAPI: the error answers an operation documents, with examples made by the code that answers them -----
def _documented(description: str, *examples: ApiError) -> ResponseSpec:
    return ResponseSpec(
        data_container=ErrorOut,
        description=description,
        generate_examples=False,
        examples=[
            Example(id=e.code, summary=e.code, value=error_body(e.code, e.detail, e.fields, e.extra))
            for e in examples
        ],
    )


ERROR_RESPONSES: dict[int, ResponseSpec] = {
    400: _documented(
        "Invalid input: `fields` names each bad field.",
        invalid({"amount_kobo": "Must be a JSON integer (kobo)."}),
    ),
    401: _documented(
        "Missing, unknown or revoked API key.", ApiError(401, "unauthorized", "Unknown or revoked API key.")
    ),
    402: _documented(
        "`insufficient_funds` (the wallet cannot pay) or `limit_exceeded` (daily API spend limit). "
        "Nothing was charged.",
        from_purchase_error(InsufficientFunds(price_kobo=49_000, balance_kobo=10_000)),
        from_purchase_error(SpendLimitExceeded(5_000_000)),
    ),
    403: _documented(
        "`ip_not_allowed` (this key may not be used from this address), `account_suspended` (the key's "
        "owner is suspended: every call is refused, and no purchase is made) or `kyc_limit_exceeded` (over "
        "the single-purchase or daily limit of the owner's KYC level, with `kyc_level`, `limit` and "
        "`limit_kobo`; a BVN or NIN added at /account/kyc raises it). Nothing was charged.",
        ApiError(403, "ip_not_allowed", "This API key may not be used from this address."),
        suspended(),
        from_purchase_error(KycLimitExceeded("daily", 0, 2_000_000)),
    ),
    404: _documented(
        "Not found (also another user's purchase).", ApiError(404, "not_found", "No such purchase.")
    ),
    409: _documented(
        "The Idempotency-Key was used before with a different body.",
        from_purchase_error(IdempotencyMismatch("order-1")),
    ),
    429: _documented(
        "Rate limited: retry after the `Retry-After` header's seconds.",
        ApiError(429, "rate_limited", "More than 60 requests a minute with this key."),
    ),
    503: _documented(
        "Provider unavailable.",
        from_purchase_error(ServiceUnavailable("We could not check this meter right now.")),
    ),
}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The error answers to document for an operation: `statuses` and those of every call (401, 403, 429)."""
    return {status: ERROR_RESPONSES[status] for status in sorted({401, 403, 429, *statuses})}


__all__ = [
    "ERROR_RESPONSES",
    "EXCEPTION_HANDLERS",
    "ApiError",
    "ErrorOut",
    "api_error_for_status",
    "error_body",
    "error_response",
    "from_purchase_error",
    "insufficient_funds",
    "invalid",
    "responses",
    "suspended",
]
