"""Parsing Monnify webhook bodies, naira->kobo conversion and the platform funding fee."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from app.payments.events import MalformedEvent, funding_fee_kobo, parse_monnify_event
from app.payments.money import AmountError, kobo_to_naira, naira_to_kobo

# Shape of a real reserved-account payment (see providers.md).
REAL: dict[str, Any] = {
    "eventData": {
        "product": {"reference": "0y7z4B3WDbiMzCJjn54V7eFx", "type": "RESERVED_ACCOUNT"},
        "transactionReference": "MNFY|73|20240701113347|000476",
        "paymentReference": "MNFY|73|20240701113347|000476",
        "paidOn": "2024-07-01 11:33:48.0",
        "paymentDescription": "Bal",
        "metaData": {},
        "paymentSourceInformation": [
            {
                "bankCode": "",
                "amountPaid": 30000,
                "accountName": "BALA MATHIAS",
                "sessionId": "090405240701113341567414562937",
                "accountNumber": "0123456789",
            }
        ],
        "destinationAccountInformation": {
            "bankCode": "035",
            "bankName": "Wema bank",
            "accountNumber": "3000101903",
        },
        "amountPaid": 30000,
        "totalPayable": 30000,
        "cardDetails": {},
        "paymentMethod": "ACCOUNT_TRANSFER",
        "currency": "NGN",
        "settlementAmount": "29990.00",
        "paymentStatus": "PAID",
        "customer": {"name": "Bala Mathias", "email": "bala@example.com"},
    },
    "eventType": "SUCCESSFUL_TRANSACTION",
}


def event(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(REAL)
    for key, value in changes.items():
        if value is ...:
            payload["eventData"].pop(key, None)
        else:
            payload["eventData"][key] = value
    return payload


def test_real_payload() -> None:
    parsed = parse_monnify_event(REAL)
    assert parsed.is_successful_transaction
    assert parsed.transaction_reference == parsed.dedupe_reference == "MNFY|73|20240701113347|000476"
    assert parsed.product_reference == "0y7z4B3WDbiMzCJjn54V7eFx"
    assert parsed.product_type == "RESERVED_ACCOUNT"
    assert parsed.amount_paid_kobo == 3_000_000
    assert parsed.total_payable_kobo == 3_000_000
    assert parsed.settlement_amount_kobo == 2_999_000
    assert parsed.payment_status == "PAID"
    assert parsed.payment_method == "ACCOUNT_TRANSFER"
    assert parsed.customer_email == "bala@example.com"
    assert parsed.paid_on == datetime(2024, 7, 1, 11, 33, 48, tzinfo=timezone(timedelta(hours=1)))
    assert len(parsed.payment_sources) == 1
    assert parsed.raw is REAL


@pytest.mark.parametrize(
    ("amount", "kobo"),
    [("30000.50", 3_000_050), (1000.5, 100_050), ("29990", 2_999_000), (0.1, 10), (" 15.00 ", 1500)],
)
def test_amounts_as_strings_or_numbers(amount: Any, kobo: int) -> None:
    assert parse_monnify_event(event(amountPaid=amount)).amount_paid_kobo == kobo


@pytest.mark.parametrize("sources", [{}, [], None, ..., "garbage"])
def test_payment_source_information_shapes(sources: Any) -> None:
    parsed = parse_monnify_event(event(paymentSourceInformation=sources))
    assert parsed.payment_sources == ()
    assert parsed.amount_paid_kobo == 3_000_000


def test_single_payment_source_object_is_kept() -> None:
    source = {"bankCode": "058", "amountPaid": 4500.5, "accountNumber": "******1234"}
    assert parse_monnify_event(event(paymentSourceInformation=source)).payment_sources == (source,)


def test_optional_fields_may_be_missing_or_odd() -> None:
    parsed = parse_monnify_event(
        event(
            settlementAmount=...,
            totalPayable="n/a",
            paidOn="yesterday",
            customer=...,
            paymentMethod=None,
            paymentReference=...,
        )
    )
    assert parsed.settlement_amount_kobo is None and parsed.total_payable_kobo is None
    assert parsed.paid_on is None and parsed.customer_email is None and parsed.payment_method is None
    assert parsed.payment_reference is None
    assert parsed.amount_paid_kobo == 3_000_000


def test_other_date_formats() -> None:
    lagos = timezone(timedelta(hours=1))
    assert parse_monnify_event(event(paidOn="26/10/2022 03:07:12 PM")).paid_on == datetime(
        2022, 10, 26, 15, 7, 12, tzinfo=lagos
    )
    assert parse_monnify_event(event(paidOn="2026-05-24T10:18:55.000Z")).paid_on == datetime(
        2026, 5, 24, 10, 18, 55, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"eventData": REAL["eventData"]}, "eventType"),
        ({**REAL, "eventType": ""}, "eventType"),
        ({"eventType": "SUCCESSFUL_TRANSACTION"}, "eventData"),
        ({"eventType": "SUCCESSFUL_TRANSACTION", "eventData": []}, "eventData"),
        (event(transactionReference=...), "transactionReference"),
        (event(transactionReference=""), "transactionReference"),
        (event(product=...), "product.reference"),
        (event(product={"type": "RESERVED_ACCOUNT"}), "product.reference"),
        (event(amountPaid=...), "amountPaid"),
        (event(amountPaid=None), "amountPaid"),
        (event(amountPaid="abc"), "amountPaid"),
        (event(amountPaid=-5), "amountPaid"),
        (event(amountPaid="10.001"), "amountPaid"),
        (event(amountPaid=True), "amountPaid"),
        (event(amountPaid="NaN"), "amountPaid"),
        ([1, 2], "object"),
    ],
)
def test_missing_or_invalid_crediting_fields(payload: Any, reason: str) -> None:
    with pytest.raises(MalformedEvent) as info:
        parse_monnify_event(payload)
    assert reason in info.value.reason


def test_unknown_event_types_parse_with_a_dedupe_reference() -> None:
    disbursement = {
        "eventType": "SUCCESSFUL_DISBURSEMENT",
        "eventData": {"reference": "payout-1", "amount": "500.00", "status": "SUCCESS"},
    }
    parsed = parse_monnify_event(disbursement)
    assert parsed.event_type == "SUCCESSFUL_DISBURSEMENT" and not parsed.is_successful_transaction
    assert parsed.dedupe_reference == "payout-1"
    assert parsed.raw is disbursement

    odd = {"eventType": "MANDATE_UPDATE", "eventData": "not an object"}
    body = b'{"eventType":"MANDATE_UPDATE","eventData":"not an object"}'
    by_body = parse_monnify_event(odd, raw_body=body)
    assert by_body.dedupe_reference.startswith("sha256:") and by_body.amount_paid_kobo is None
    assert by_body.dedupe_reference == parse_monnify_event(odd, raw_body=body).dedupe_reference
    assert parse_monnify_event(odd).dedupe_reference != parse_monnify_event({**odd, "x": 1}).dedupe_reference


def test_non_successful_event_with_bad_amount_still_parses() -> None:
    payload = event(amountPaid="oops")
    payload["eventType"] = "REFUND"
    assert parse_monnify_event(payload).amount_paid_kobo is None


# ---- naira_to_kobo --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kobo"),
    [
        (29990, 2_999_000),
        ("29990.00", 2_999_000),
        ("29990.000", 2_999_000),
        (1000.5, 100_050),
        (0.29, 29),  # 0.29 * 100 in float is 28.999999999999996
        (Decimal("12.34"), 1234),
        ("0", 0),
        ("1e3", 100_000),
    ],
)
def test_naira_to_kobo(value: Any, kobo: int) -> None:
    assert naira_to_kobo(value) == kobo


@pytest.mark.parametrize(
    "value", [True, False, None, "", "abc", "NaN", float("nan"), float("inf"), -1, "-0.01", "1.005", [1]]
)
def test_naira_to_kobo_rejects(value: Any) -> None:
    with pytest.raises(AmountError):
        naira_to_kobo(value)


def test_kobo_to_naira() -> None:
    assert kobo_to_naira(2_999_000) == "29990.00"
    assert kobo_to_naira(5) == "0.05"
    assert kobo_to_naira(-150) == "-1.50"


# ---- funding fee ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "flat", "percent", "cap", "fee"),
    [
        (1_000_000, 0, "0", 0, 0),  # default: no fee
        (1_000_000, 5_000, "0", 0, 5_000),  # flat only
        (1_000_000, 0, "1.5", 0, 15_000),  # percent only
        (1_000_000, 5_000, "1.5", 0, 20_000),  # both
        (100_000_000, 0, "1.5", 200_000, 200_000),  # capped
        (1_000_000, 5_000, "1.5", 10_000, 10_000),  # cap applies to the total fee
        (50, 0, "1", 0, 1),  # 0.5 kobo rounds half up
        (49, 0, "1", 0, 0),  # 0.49 kobo rounds down
        (150, 0, "0.5", 0, 1),  # 0.75 -> 1
        (333, 0, "0.15", 0, 0),  # 0.4995 -> 0
        (10_000, 50_000, "0", 0, 10_000),  # never more than the amount
        (0, 5_000, "1", 0, 0),
    ],
)
def test_funding_fee(amount: int, flat: int, percent: str, cap: int, fee: int) -> None:
    assert funding_fee_kobo(amount, flat, percent, cap) == fee


@pytest.mark.parametrize(("flat", "percent", "cap"), [(-1, "0", 0), (0, "x", 0), (0, "-1", 0), (0, "0", -5)])
def test_funding_fee_rejects_bad_inputs(flat: int, percent: str, cap: int) -> None:
    with pytest.raises(AmountError):
        funding_fee_kobo(1000, flat, percent, cap)
