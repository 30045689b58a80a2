"""VTpass answer -> ProviderResult, table-driven over the outcome mapping (docs/architecture.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.vtu.providers.base import Outcome
from app.vtu.providers.mapping import (
    FAILURE_CODES,
    STAFF_ALERTS,
    callback_request_id,
    extract_token,
    map_http_answer,
    map_transport_failure,
    map_vtpass_body,
    naira_amount,
    redact,
    to_kobo,
)

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def body(code: object = "000", status: str | None = None, **extra: object) -> dict:
    answer: dict = {"code": code, "response_description": "X", **extra}
    if status is not None:
        answer["content"] = {"transactions": {"status": status, "transactionId": "17416102247366731230"}}
    return answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (body("000", "delivered"), Outcome.DELIVERED),
        (body(0, "delivered"), Outcome.DELIVERED),  # numeric code
        (body("000", "initiated"), Outcome.PENDING),
        (body("000", "pending"), Outcome.PENDING),
        (body("000"), Outcome.PENDING),  # no transaction status
        (body("000", "failed"), Outcome.FAILED),
        (body("000", "reversed"), Outcome.REVERSED),
        (body("040", "reversed"), Outcome.REVERSED),
        (body("040"), Outcome.REVERSED),
        *[(body(code), Outcome.PENDING) for code in ("099", "001", "089", "083", "014", "044", "777")],
        (body("099", "delivered"), Outcome.PENDING),  # delivered only next to 000
        (body("077", "failed"), Outcome.PENDING),  # unknown code + failed: requery, never refund blind
        ({"response_description": "no code"}, Outcome.PENDING),
        ("plain text", Outcome.PENDING),
        ([1, 2], Outcome.PENDING),
    ],
)
def test_outcome_table(answer: object, expected: Outcome) -> None:
    assert map_vtpass_body(answer).outcome is expected


@pytest.mark.parametrize("code", sorted(FAILURE_CODES))
def test_every_definite_failure_code_fails(code: str) -> None:
    result = map_vtpass_body(body(code))
    assert result.outcome is Outcome.FAILED
    assert result.code == code


@pytest.mark.parametrize("code", ["018", "027", "028", "034", "035", "085", "087"])
def test_operational_codes_alert_staff(code: str) -> None:
    result = map_vtpass_body(body(code))
    assert result.staff_alert == STAFF_ALERTS[code]
    assert map_vtpass_body(body("016")).staff_alert is None


@pytest.mark.parametrize(
    ("requery", "paid_at", "expected"),
    [
        (False, NOW - timedelta(minutes=5), Outcome.PENDING),  # 015 on /pay is never final
        (True, None, Outcome.PENDING),  # cannot prove 30 s passed
        (True, NOW - timedelta(seconds=29), Outcome.PENDING),
        (True, NOW - timedelta(seconds=30), Outcome.FAILED),
        (True, (NOW - timedelta(seconds=45)).replace(tzinfo=None), Outcome.FAILED),  # naive = UTC
    ],
)
def test_015_unknown_request_only_fails_on_requery_after_30s(requery, paid_at, expected) -> None:
    assert map_vtpass_body(body("015"), requery=requery, paid_at=paid_at, now=NOW).outcome is expected


@pytest.mark.parametrize(
    ("answer", "token", "units"),
    [
        ({"purchased_code": "Token : 2636-2054-4059-8275-7802"}, "2636-2054-4059-8275-7802", None),
        ({"purchased_code": "Token: 41279616299856662444"}, "41279616299856662444", None),
        ({"purchased_code": "Token : 1234 5678 9012 3456 7890 Units : 30.5 kWh"},
         "1234 5678 9012 3456 7890", "30.5 kWh"),
        ({"purchased_code": "Token : 42167939781206619049 Bonus Token : 62881559799402440206"},
         "42167939781206619049", None),
        ({"purchased_code": "", "token": "Token : 26362054405982757802", "units": "79.9 kWh"},
         "26362054405982757802", "79.9 kWh"),
        ({"Token": "41279616299856662444"}, "41279616299856662444", None),
        ({"mainToken": "42167939781206619049", "mainTokenUnits": Decimal("16666.666")},
         "42167939781206619049", "16666.666"),
        ({"content": {"transactions": {"purchased_code": "Token : 5788-0316", "units": "9.9"}}},
         "5788-0316", "9.9"),
        ({"purchased_code": "Token : 12345678901234567890 (46.2KWH)"}, "12345678901234567890", "46.2 kWh"),
        ({"token": "N/A", "purchased_code": ""}, None, None),
        ({}, None, None),
    ],
)  # fmt: skip
def test_token_layouts(answer: dict, token: str | None, units: str | None) -> None:
    assert extract_token(answer) == (token, units)


def test_delivered_electricity_result_carries_token_reference_and_amount() -> None:
    answer = body("000", "delivered", amount="1000.00", purchased_code="Token : 3711-1625-9657-2031-9147")
    result = map_vtpass_body(answer)
    assert result.outcome is Outcome.DELIVERED
    assert result.token == "3711-1625-9657-2031-9147"
    assert result.provider_reference == "17416102247366731230"
    assert result.amount_kobo == 100_000
    assert result.response_log == answer


@pytest.mark.parametrize(
    ("value", "kobo"),
    [
        ("100.00", 10_000), ("1,250.50", 125_050), ("₦99.99", 9_999), (2000, 200_000), (Decimal("0.1"), 10),
        (0.1, 10), (1860.47, 186_047), ("  50 ", 5_000), ("abc", None), (None, None), (True, None),
        ("NaN", None),
    ],
)  # fmt: skip
def test_to_kobo_uses_decimal(value: object, kobo: int | None) -> None:
    assert to_kobo(value) == kobo


def test_naira_amount_never_floats() -> None:
    assert naira_amount(10_000) == 100
    assert naira_amount(10_050) == "100.50"
    assert naira_amount(5) == "0.05"


def test_http_answer_parses_fractions_as_decimal_and_5xx_stays_pending() -> None:
    raw = json.dumps({"code": "000", "amount": 1860.47, "content": {"transactions": {"status": "delivered"}}})
    ok = map_http_answer(200, raw.encode())
    assert ok.outcome is Outcome.DELIVERED and ok.amount_kobo == 186_047
    assert ok.response_log == {"http_status": 200, "body": json.loads(raw.replace("1860.47", '"1860.47"'))}
    assert map_http_answer(502, raw.encode()).outcome is Outcome.PENDING  # 5xx wins over the body
    broken = map_http_answer(200, b'{"code":"000","content":')
    assert broken.outcome is Outcome.PENDING and broken.code is None
    assert broken.response_log == {"http_status": 200, "body": '{"code":"000","content":'}
    assert map_http_answer(403, b"<html>Forbidden</html>").outcome is Outcome.PENDING
    assert map_http_answer(401, b'{"code":"087"}').outcome is Outcome.FAILED


def test_transport_failure_is_pending() -> None:
    result = map_transport_failure("timed out", request_log={"url": "x"})
    assert result.outcome is Outcome.PENDING
    assert (
        "timed out" in result.message and result.response_log is None and result.request_log == {"url": "x"}
    )


def test_redact_blanks_secret_keys_and_values() -> None:
    logged = redact(
        {
            "api-key": "k1",
            "Authorization": "Basic abc",
            "nested": [{"secret-key": "s"}],
            "echo": "key=k1-SECRET",
        },
        secrets=["SECRET"],
    )
    assert logged == {
        "api-key": "[redacted]", "Authorization": "[redacted]", "nested": [{"secret-key": "[redacted]"}],
        "echo": "key=k1-[redacted]",
    }  # fmt: skip


def test_callback_request_id() -> None:
    assert callback_request_id({"type": "transaction-update", "data": {"requestId": "202503101200abc"}}) == (
        "202503101200abc"
    )
    assert callback_request_id({"type": "transaction-update"}) is None
    assert callback_request_id("junk") is None
