"""Pure mapping from ClubKonnect (Nellobytes) answers to ProviderResult: the one place that decides what a
ClubKonnect answer means (docs/architecture.md, "Provider outcome mapping").

ClubKonnect answers `{"orderid", "statuscode", "status", ...}` (statuscode a string or a number):
- 200 ORDER_COMPLETED: delivered. A prepaid electricity order is delivered only with its `metertoken`: the
  token often arrives on a later query, so 200 without one stays pending (requeried until it shows).
- 100 ORDER_RECEIVED, 300 ORDER_PROCESSED, 201 network unresponsive, 6xx ON_HOLD: pending. 100 is NOT
  delivered (a common client bug books it as delivered).
- 4xx ORDER_ERROR: failed, nothing was placed (400 bad credentials, 409 invalid recipient, 417 our wallet
  is too low, ...). These are the answers a purchase may fail over on (`nothing_placed`).
- 5xx ORDER_CANCELLED: failed and refunded by them (506 busy, 516 not an MTN number, ...).
- A requery for a request id they hold nothing for says INVALID_REQUESTID: failed only once the grace
  period since the order has passed (like VTpass's 015), else pending.
- Anything else (no statuscode, an HTML 5xx page from IIS, a timeout): pending, never a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from app.vtu.providers.base import Outcome, ProviderResult
from app.vtu.providers.mapping import (
    UNKNOWN_REQUEST_GRACE,
    parse_json,
    redact,
    to_kobo,
)

DELIVERED = "200"
PENDING_CODES = frozenset({"100", "201", "300"})
UNKNOWN_REQUEST = "INVALID_REQUESTID"
STAFF_ALERTS = {
    "400": "ClubKonnect rejected our credentials: check CLUBKONNECT_USER_ID / CLUBKONNECT_API_KEY and the "
    "server IP whitelisted in the ClubKonnect dashboard",
    "417": "ClubKonnect wallet (provider float) is too low: fund the ClubKonnect account now",
}
MAX_TEXT_LOG = 2000


def status_code(body: Mapping[str, Any]) -> str | None:
    """The statuscode as a 3-digit string, or None when the answer has none."""
    raw = body.get("statuscode", body.get("status_code"))
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    return text if len(text) == 3 and all("0" <= c <= "9" for c in text) else None


def nothing_placed(code: str | None) -> bool:
    """A definite 'no order exists at ClubKonnect' (4xx ORDER_ERROR): the answers safe to fail over on."""
    return code is not None and code.startswith("4")


def classify(code: str | None, status: str | None, *, has_token: bool, needs_token: bool,
             requery: bool, grace_passed: bool) -> Outcome:  # fmt: skip
    if code is None:
        if requery and status == UNKNOWN_REQUEST and grace_passed:
            return Outcome.FAILED
        return Outcome.PENDING
    if code == DELIVERED:
        return Outcome.DELIVERED if has_token or not needs_token else Outcome.PENDING
    if code in PENDING_CODES or code.startswith("6"):
        return Outcome.PENDING
    if code.startswith("4") or code.startswith("5"):
        return Outcome.FAILED
    return Outcome.PENDING  # a code we do not know: requery, never refund blind


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list | bool):
        return None
    text = str(value).strip()
    return text if text and text.upper() not in {"N/A", "NULL", "NONE"} else None


def _grace_passed(paid_at: datetime | None, now: datetime | None) -> bool:
    if paid_at is None:
        return False
    if paid_at.tzinfo is None:
        paid_at = paid_at.replace(tzinfo=UTC)
    return (now or datetime.now(UTC)) - paid_at >= UNKNOWN_REQUEST_GRACE


def map_body(
    body: Any,
    *,
    needs_token: bool = False,
    requery: bool = False,
    paid_at: datetime | None = None,
    now: datetime | None = None,
    request_log: dict[str, Any] | None = None,
    response_log: dict[str, Any] | str | None = None,
) -> ProviderResult:
    """Map a parsed order / query answer (or a callback's query parameters)."""
    if response_log is None:
        response_log = redact(body) if isinstance(body, Mapping) else str(body)[:MAX_TEXT_LOG]
    if not isinstance(body, Mapping):
        return ProviderResult(Outcome.PENDING, None, "Unexpected answer from ClubKonnect (not a JSON object)",
                              request_log=request_log or {}, response_log=response_log)  # fmt: skip
    code = status_code(body)
    status = (_text(body.get("status")) or _text(body.get("orderstatus")) or "").upper() or None
    token = _text(body.get("metertoken")) or _text(body.get("token"))
    outcome = classify(
        code, status, has_token=token is not None, needs_token=needs_token, requery=requery,
        grace_passed=_grace_passed(paid_at, now),
    )  # fmt: skip
    remark = _text(body.get("orderremark")) or _text(body.get("remark"))
    described = f"ClubKonnect {code or 'no code'} {status or ''}".strip()
    if code == DELIVERED and outcome is Outcome.PENDING:
        described += " (completed; the meter token is not issued yet)"
    return ProviderResult(
        outcome=outcome,
        # 4xx: refused, nothing placed; INVALID_REQUESTID after the grace: they hold no such order.
        nothing_placed=outcome is Outcome.FAILED and (nothing_placed(code) or code is None),
        code=code,
        message=f"{described}: {remark}" if remark else described,
        token=token,
        units=_text(body.get("meterunits")) or _text(body.get("units")),
        provider_reference=_text(body.get("orderid")),
        amount_kobo=to_kobo(body.get("amount")),
        staff_alert=STAFF_ALERTS.get(code or ""),
        request_log=request_log or {},
        response_log=response_log,
    )


def map_http_answer(
    status_code_: int,
    raw: bytes,
    *,
    needs_token: bool = False,
    requery: bool = False,
    paid_at: datetime | None = None,
    now: datetime | None = None,
    request_log: dict[str, Any] | None = None,
    secrets: Iterable[str] = (),
) -> ProviderResult:
    """An HTTP answer: an HTML page (their IIS 5xx during outages) or any non-object body is pending."""
    try:
        body: Any = parse_json(raw)
    except ValueError:
        body = None
    logged = (
        redact(body, secrets)
        if isinstance(body, Mapping)
        else redact(raw.decode("utf-8", "replace"), secrets)[:MAX_TEXT_LOG]
    )
    response_log = {"http_status": status_code_, "body": logged}
    if status_code_ >= 500 or not isinstance(body, Mapping):
        why = (
            f"HTTP {status_code_} from ClubKonnect"
            if status_code_ >= 500
            else "ClubKonnect answer was not JSON"
        )
        return ProviderResult(Outcome.PENDING, None, f"{why}: requery later",
                              request_log=request_log or {}, response_log=response_log)  # fmt: skip
    return map_body(
        body, needs_token=needs_token, requery=requery, paid_at=paid_at, now=now,
        request_log=request_log, response_log=response_log,
    )  # fmt: skip


def map_transport_failure(reason: str, *, request_log: dict[str, Any] | None = None) -> ProviderResult:
    """No answer at all: the order may still have been placed."""
    return ProviderResult(
        Outcome.PENDING,
        None,
        f"No answer from ClubKonnect ({reason}): requery later",
        request_log=request_log or {},
    )
