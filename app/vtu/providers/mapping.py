"""Pure mapping from VTpass answers (or transport failures) to ProviderResult.

This is the only place that decides delivered / failed / pending / reversed (docs/architecture.md,
"Provider outcome mapping"). When in doubt the answer is PENDING: a wrong "failed" refunds a delivered
top-up (money lost), a wrong "pending" only costs a requery.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from app.vtu.providers.base import ExamPin, Outcome, ProviderResult

_FAILURES = "016 010 011 012 013 017 018 019 020 021 022 023 024 027 028 030 031 032 034 035 085 087 091"
FAILURE_CODES = frozenset(_FAILURES.split(" "))
REVERSAL_CODE = "040"
# Not the customer's error and nothing placed: the same product and number within 30 s. Held and sent again
# (a new request id) once the window has passed, or on another provider.
LIKELY_DUPLICATE_CODE = "019"
UNKNOWN_REQUEST_CODE = "015"
# VTpass may not know a request id until ~30 s after /pay. The purchase engine passes the moment /pay was over
# (app.vtu.settlement.unknown_request_anchor) as `paid_at`, so the grace also covers a slow /pay.
UNKNOWN_REQUEST_GRACE = timedelta(seconds=30)

STAFF_ALERTS = {
    "018": "VTpass wallet (provider float) is too low: fund the VTpass account now",
    "027": "VTpass rejected this server's IP address: whitelist it in the VTpass dashboard",
    "028": "VTpass says this product is not enabled (whitelisted) for our account",
    "034": "VTpass has suspended this service",
    "035": "VTpass reports this service as inactive",
    "085": "VTpass rejected the request_id format: check the server clock and the Africa/Lagos prefix",
    "087": "VTpass rejected our credentials: check VTPASS_API_KEY / keys or VTPASS_USERNAME / password",
}

SECRET_KEYS = frozenset(
    {"api-key", "api_key", "apikey", "public-key", "public_key", "secret-key", "secret_key", "password",
     "authorization", "proxy-authorization", "cookie", "set-cookie",
     # exam PINs and their serials (VTpass `cards: [{"Serial", "Pin"}]`, JAMB `Pin`): never logged
     "pin", "pins", "serial", "serialnumber", "serial_number", "serial_no"}
)  # fmt: skip
REDACTED = "[redacted]"
MAX_TEXT_LOG = 2000

_TOKEN_LABELLED = re.compile(r"(?<!bonus )token\s*[:=]?\s*(\d{4,}(?:[ -]\d{4,}(?![\d.]))*)", re.IGNORECASE)
_TOKEN_BARE = re.compile(r"\d{4,}(?:[ -]\d{4,})*")
_UNITS_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*kwh", re.IGNORECASE)
# "Serial No:WRN182134049, pin: 492457081448" (WAEC) or "Pin : 367574683050773" (JAMB), possibly repeated
_PIN_IN_TEXT = re.compile(
    r"(?:serial(?:\s*(?:no|number)\.?)?\s*[:=]?\s*(?P<serial>[A-Za-z0-9-]{4,})[\s,;|]*)?"
    r"\bpin\s*(?:no|number)?\.?\s*[:=]\s*(?P<pin>[A-Za-z0-9-]{4,})",
    re.IGNORECASE,
)
_BARE_PIN = re.compile(r"[A-Za-z0-9-]{6,64}")
_PIN_KEYS = ("Pin", "pin", "PIN")
_SERIAL_KEYS = ("Serial", "serial", "SerialNumber", "serial_number", "Serial_No", "serial_no")


def to_kobo(value: Any) -> int | None:
    """Naira (number or string such as "1,250.50" / "₦100") to kobo via Decimal; None when unparseable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = repr(value)  # the shortest repr is exactly what was written in the JSON
    if isinstance(value, str):
        value = value.replace(",", "").replace("₦", "").replace("NGN", "").strip()
    try:
        naira = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not naira.is_finite():
        return None
    return int((naira * 100).quantize(Decimal(1)))


def naira_amount(amount_kobo: int) -> int | str:
    """What we send VTpass: whole naira as an integer, otherwise an exact "123.45" string (never a float)."""
    naira, kobo = divmod(amount_kobo, 100)
    return naira if kobo == 0 else f"{naira}.{kobo:02d}"


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A JSON-safe copy with secret-named keys blanked and any known secret value cut out of strings. Exam
    PINs and serials found in `value` (or in a callback's `data`) are cut out too, wherever they appear
    (e.g. inside `purchased_code`)."""
    secret_values = [s for s in secrets if s]
    if isinstance(value, Mapping):
        for holder in (value, value.get("data")):
            secret_values += pin_secrets(extract_pins(holder))
    return _redact(value, secret_values)


def _redact(value: Any, secret_values: list[str]) -> Any:
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if str(k).lower() in SECRET_KEYS else _redact(v, secret_values)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, secret_values) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        for secret in secret_values:
            value = value.replace(secret, REDACTED)
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def parse_json(raw: bytes | str) -> Any:
    """Parse with Decimal for fractional numbers so no naira amount ever passes through a float."""
    return json.loads(raw, parse_float=Decimal)


def response_code(body: Mapping[str, Any]) -> str | None:
    raw = body.get("code")
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return f"{raw:03d}"
    text = str(raw).strip()
    return text.zfill(3) if text.isdigit() else text or None


def _transactions(body: Mapping[str, Any]) -> Mapping[str, Any]:
    content = body.get("content")
    tx = content.get("transactions") if isinstance(content, Mapping) else None
    return tx if isinstance(tx, Mapping) else {}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    text = str(value).strip()
    return text if text and text.upper() not in {"N/A", "NULL", "NONE"} else None


def _token_from(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    labelled = _TOKEN_LABELLED.search(text)
    if labelled:
        return labelled.group(1).strip()
    return text if _TOKEN_BARE.fullmatch(text) else None


def extract_token(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(token, units) from any of VTpass's electricity layouts, first match wins."""
    tx = _transactions(body)
    sources = [body.get(k) for k in ("purchased_code", "token", "Token", "mainToken")]
    sources += [tx.get(k) for k in ("purchased_code", "token", "Token", "mainToken")]
    token = next((t for t in map(_token_from, sources) if t), None)
    units = next(
        (u for u in map(_text, (body.get("units"), body.get("mainTokenUnits"), tx.get("units"))) if u), None
    )
    if units is None:
        for text in filter(None, map(_text, (body.get("purchased_code"), tx.get("purchased_code")))):
            found = _UNITS_IN_TEXT.search(text)
            if found:
                units = f"{found.group(1)} kWh"
                break
    return token, units


def _card(item: Any) -> ExamPin | None:
    if isinstance(item, Mapping):
        pin = next((t for t in (_text(item.get(k)) for k in _PIN_KEYS) if t), None)
        serial = next((t for t in (_text(item.get(k)) for k in _SERIAL_KEYS) if t), None)
        return ExamPin(serial, pin) if pin else None
    text = _text(item)  # a list of PIN strings (WAEC registration `tokens`), bare or "Pin : ..."
    found = _pins_in_text(text)
    if found:
        return found[0]
    return ExamPin(None, text) if text and _BARE_PIN.fullmatch(text) else None


def _pins_in_text(text: str | None) -> tuple[ExamPin, ...]:
    if not text:
        return ()
    return tuple(ExamPin(m.group("serial"), m.group("pin")) for m in _PIN_IN_TEXT.finditer(text))


def extract_pins(body: Any) -> tuple[ExamPin, ...]:
    """Exam PINs from any VTpass layout, first layout found wins: a `cards` / `tokens` list of
    {"Serial", "Pin"} (WAEC result checker), a `Pin` field (JAMB), then the `purchased_code` text
    ("Serial No:..., pin: ..." / "Pin : ..."); each looked for at the top level and in content.transactions.
    () when the answer carries none (a delivered exam purchase without PINs stays pending)."""
    if not isinstance(body, Mapping):
        return ()
    holders = [body, _transactions(body)]
    content = body.get("content")
    if isinstance(content, Mapping):
        holders.append(content)
    for holder in holders:
        for key in ("cards", "Cards", "pins", "tokens"):
            items = holder.get(key)
            if isinstance(items, list):
                found = tuple(p for p in map(_card, items) if p is not None)
                if found:
                    return found
    for holder in holders:
        single = _card(holder)
        if single is not None:
            return (single,)
    for holder in holders:
        found = _pins_in_text(_text(holder.get("purchased_code")))
        if found:
            return found
    return ()


def pin_secrets(pins: Iterable[ExamPin]) -> list[str]:
    """Every PIN and serial value, to be cut out of anything logged."""
    return [v for p in pins for v in (p.pin, p.serial) if v]


def _is_after_grace(paid_at: datetime | None, now: datetime | None) -> bool:
    if paid_at is None:  # cannot prove VTpass had time to register the request: stay pending
        return False
    if paid_at.tzinfo is None:
        paid_at = paid_at.replace(tzinfo=UTC)
    return (now or datetime.now(UTC)) - paid_at >= UNKNOWN_REQUEST_GRACE


def classify(code: str | None, status: str | None, *, requery: bool, grace_passed: bool) -> Outcome:
    if code is None:  # not the answer shape we know
        return Outcome.PENDING
    if code == REVERSAL_CODE or status == "reversed":
        return Outcome.REVERSED
    if code == "000":
        if status == "delivered":
            return Outcome.DELIVERED
        # "failed" counts only next to 000: an unknown code with it is requeried, not refunded
        return Outcome.FAILED if status == "failed" else Outcome.PENDING
    if code in FAILURE_CODES:
        return Outcome.FAILED
    if code == UNKNOWN_REQUEST_CODE and requery and grace_passed:
        return Outcome.FAILED
    return Outcome.PENDING  # 099, 001, 089, 083, 014, 015 too early, and every code we do not know


def map_vtpass_body(
    body: Any,
    *,
    requery: bool = False,
    paid_at: datetime | None = None,
    now: datetime | None = None,
    request_log: dict[str, Any] | None = None,
    response_log: dict[str, Any] | str | None = None,
) -> ProviderResult:
    """Map a parsed /pay or /requery answer (or a callback's `data`)."""
    pins = extract_pins(body)
    if response_log is None:
        secrets = pin_secrets(pins)
        response_log = redact(body, secrets) if isinstance(body, Mapping) else _clip(str(body))
    if not isinstance(body, Mapping):
        return ProviderResult(Outcome.PENDING, None, "Unexpected answer from VTpass (not a JSON object)",
                              request_log=request_log or {}, response_log=response_log)  # fmt: skip
    code = response_code(body)
    tx = _transactions(body)
    status = (_text(tx.get("status")) or "").lower() or None
    outcome = classify(code, status, requery=requery, grace_passed=_is_after_grace(paid_at, now))
    token, units = extract_token(body) if not pins else (None, None)  # a PIN is never a meter token
    description = _text(body.get("response_description")) or f"VTpass code {code or 'missing'}"
    # Every FAILED code (and 015 once final) says VTpass holds no order; a 000 "failed" status does not.
    nothing_placed = outcome is Outcome.FAILED and (code in FAILURE_CODES or code == UNKNOWN_REQUEST_CODE)
    return ProviderResult(
        outcome=outcome,
        nothing_placed=nothing_placed,
        retry_later=nothing_placed and code == LIKELY_DUPLICATE_CODE,
        code=code,
        message=description if status is None else f"{description} ({status})",
        token=token,
        units=units,
        provider_reference=_text(tx.get("transactionId")),
        amount_kobo=to_kobo(body.get("amount") if body.get("amount") is not None else tx.get("amount")),
        staff_alert=STAFF_ALERTS.get(code or ""),
        pins=pins,
        request_log=request_log or {},
        response_log=response_log,
    )


def map_http_answer(
    status_code: int,
    raw: bytes,
    *,
    requery: bool = False,
    paid_at: datetime | None = None,
    now: datetime | None = None,
    request_log: dict[str, Any] | None = None,
    secrets: Iterable[str] = (),
) -> ProviderResult:
    """Map an HTTP answer: 5xx and bodies that are not JSON objects are pending whatever they say."""
    try:
        body: Any = parse_json(raw)
    except ValueError:
        body = None
    secrets = [*secrets, *pin_secrets(extract_pins(body))]
    logged = (
        redact(body, secrets) if isinstance(body, Mapping) else _clip(raw.decode("utf-8", "replace"), secrets)
    )
    response_log = {"http_status": status_code, "body": logged}
    if status_code >= 500 or not isinstance(body, Mapping):
        why = f"HTTP {status_code} from VTpass" if status_code >= 500 else "VTpass answer was not JSON"
        return ProviderResult(Outcome.PENDING, None, f"{why}: requery later",
                              request_log=request_log or {}, response_log=response_log)  # fmt: skip
    return map_vtpass_body(
        body, requery=requery, paid_at=paid_at, now=now, request_log=request_log, response_log=response_log
    )


def map_transport_failure(reason: str, *, request_log: dict[str, Any] | None = None) -> ProviderResult:
    """No answer at all (timeout, refused or dropped connection): the order may still have gone through."""
    return ProviderResult(
        Outcome.PENDING,
        None,
        f"No answer from VTpass ({reason}): requery later",
        request_log=request_log or {},
    )


def callback_request_id(payload: Any) -> str | None:
    """The request id a VTpass `transaction-update` callback is about (confirm by requery before acting)."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    tx = _transactions(data)
    return _text(data.get("requestId")) or _text(data.get("request_id")) or _text(tx.get("requestId"))


def _clip(text: str, secrets: Iterable[str] = ()) -> str:
    cleaned: str = redact(text, secrets)
    return cleaned[:MAX_TEXT_LOG]
