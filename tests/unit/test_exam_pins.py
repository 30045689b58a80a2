"""Exam PIN extraction from every VTpass spelling, and their redaction from the logged answer."""

from __future__ import annotations

import json
import re

import pytest

from app.vtu.exam import staff_pins
from app.vtu.providers.base import ExamPin, Outcome, PurchaseOrder
from app.vtu.providers.mapping import extract_pins, map_http_answer, map_vtpass_body
from app.vtu.providers.stub import stub_pins, transaction_body
from app.vtu.providers.vtpass import InvalidOrder, pay_payload

_DELIVERED = {"code": "000", "content": {"transactions": {"status": "delivered", "transactionId": "17"}}}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (  # WAEC result checker: cards list (and a purchased_code text)
            {"cards": [{"Serial": "WRN182134049", "Pin": "492457081448"},
                       {"Serial": "WRN2", "Pin": "5550001"}],
             "purchased_code": "Serial No:WRN182134049, pin: 492457081448"},
            (ExamPin("WRN182134049", "492457081448"), ExamPin("WRN2", "5550001")),
        ),
        ({"cards": [{"serial": "S12345", "pin": "P98765"}]}, (ExamPin("S12345", "P98765"),)),
        ({"Pin": "367574683050773", "purchased_code": "Pin : 367574683050773"},
         (ExamPin(None, "367574683050773"),)),
        ({"purchased_code": "Pin : 367574683050773"}, (ExamPin(None, "367574683050773"),)),
        (
            {"purchased_code": "Serial No:WRN1111, pin: 222222, Serial No:WRN3333, pin: 444444"},
            (ExamPin("WRN1111", "222222"), ExamPin("WRN3333", "444444")),
        ),
        ({"tokens": ["123456789012", "Pin: 998877665544"]},
         (ExamPin(None, "123456789012"), ExamPin(None, "998877665544"))),
        ({"Cards": [{"SerialNumber": "SN0001", "PIN": "0001112223"}]}, (ExamPin("SN0001", "0001112223"),)),
        ({"purchased_code": "", "cards": []}, ()),
        ({"purchased_code": "Token : 1234-5678-9012-3456-7890"}, ()),  # an electricity token is no PIN
    ],
)  # fmt: skip
def test_every_spelling_is_read(extra, expected):
    assert extract_pins(_DELIVERED | extra) == expected


def test_pins_inside_content_transactions_are_read():
    body = {"code": "000", "content": {"transactions": {"status": "delivered", "Pin": "778899001122"}}}
    assert extract_pins(body) == (ExamPin(None, "778899001122"),)


def test_nothing_to_read_in_junk():
    assert extract_pins("<html>") == ()
    assert extract_pins({"cards": "WRN1 pin"}) == ()


def test_result_carries_pins_and_the_log_holds_none_of_them():
    body = _DELIVERED | {
        "cards": [{"Serial": "WRN182134049", "Pin": "492457081448"}],
        "purchased_code": "Serial No:WRN182134049, pin: 492457081448",
    }
    for result in (
        map_vtpass_body(body),
        map_http_answer(200, json.dumps(body).encode()),
    ):
        assert result.outcome is Outcome.DELIVERED
        assert result.pins == (ExamPin("WRN182134049", "492457081448"),)
        assert result.token is None
        logged = json.dumps(result.response_log)
        assert "492457081448" not in logged and "WRN182134049" not in logged


def test_stub_answers_are_deterministic_per_request_id():
    order = PurchaseOrder("202612071200abc", "waec", 1170000, "08011111111", None, "waecdirect", quantity=3)
    first, again = transaction_body(order, "delivered"), transaction_body(order, "delivered")
    assert first["cards"] == again["cards"] and len(first["cards"]) == 3
    assert extract_pins(first) == tuple(ExamPin(s, p) for s, p in stub_pins(order.request_id, 3))
    assert extract_pins(transaction_body(order, "delivered", with_pins=False)) == ()


def test_pay_payload_for_exam_pins():
    waec = PurchaseOrder("r1", "waec", 390000, "08011111111", "08011111111", "waecdirect", quantity=2)
    assert pay_payload(waec) == {"request_id": "r1", "serviceID": "waec", "variation_code": "waecdirect",
                                 "quantity": 2, "phone": "08011111111"}  # fmt: skip
    jamb = PurchaseOrder("r2", "jamb", 770000, "08011111111", "0123456789", "utme", quantity=1)
    assert pay_payload(jamb)["billersCode"] == "0123456789"
    with pytest.raises(InvalidOrder):
        pay_payload(PurchaseOrder("r3", "jamb", 770000, "08011111111", None, "utme"))
    with pytest.raises(InvalidOrder):
        pay_payload(PurchaseOrder("r4", "waec", 1, "08011111111", None, "waecdirect", quantity=11))


def test_settle_answer_keeps_an_exam_delivery_without_pins_pending_and_seals_the_rest():
    from app.core.encryption import DataCipher, generate_key
    from app.vtu.exam import settle_answer
    from app.vtu.providers.base import ProviderResult

    cipher = DataCipher([generate_key()])
    bare = ProviderResult(Outcome.DELIVERED, "000", "TRANSACTION SUCCESSFUL (delivered)")
    assert settle_answer("exam", bare, cipher).outcome is Outcome.PENDING
    assert settle_answer("airtime", bare, cipher) is bare
    with_pins = ProviderResult(Outcome.DELIVERED, "000", "ok", pins=(ExamPin("WRN1", "123456789"),))
    sealed = settle_answer("exam", with_pins, cipher)
    assert sealed.outcome is Outcome.DELIVERED and sealed.pins == () and sealed.sealed_pins
    assert "123456789" not in sealed.sealed_pins
    assert json.loads(cipher.decrypt(sealed.sealed_pins)) == [{"serial": "WRN1", "pin": "123456789"}]
    failed = ProviderResult(Outcome.FAILED, "016", "failed")
    assert settle_answer("exam", failed, cipher) is failed


def test_sentry_scrubs_pins_and_serials():
    from app.core.sentry import FILTERED, scrub

    event = {"pins": [{"serial": "WRN1", "pin": "123456789"}], "cards": [{"Serial": "A", "Pin": "B"}],
             "purchased_code": "Serial No:WRN1, pin: 123456789", "note": "pin=123456789&x=1"}  # fmt: skip
    cleaned = scrub(event)
    assert cleaned["pins"] == cleaned["cards"] == cleaned["purchased_code"] == FILTERED
    assert "123456789" not in json.dumps(cleaned)


def test_a_callback_payload_is_logged_without_its_pins():
    from app.vtu.providers.mapping import redact

    payload = {"type": "transaction-update", "data": _DELIVERED | {
        "purchased_code": "Serial No:WRN182134049, pin: 492457081448", "requestId": "r1"}}  # fmt: skip
    logged = json.dumps(redact(payload))
    assert "492457081448" not in logged and "WRN182134049" not in logged and "r1" in logged


@pytest.mark.parametrize(
    ("raw", "quantity", "expected"),
    [
        ("WRN182134049,492457081448", 1, (ExamPin("WRN182134049", "492457081448"),)),
        (" 367574683050773 \n", 1, (ExamPin(None, "367574683050773"),)),
        ("S1234 P98765\n\nS5678;P55555\r\n", 2, (ExamPin("S1234", "P98765"), ExamPin("S5678", "P55555"))),
        ("WRN-1\t4924-5708", 1, (ExamPin("WRN-1", "4924-5708"),)),
    ],
)
def test_staff_pins_reads_serial_pin_lines(raw: str, quantity: int, expected: tuple[ExamPin, ...]) -> None:
    assert staff_pins(raw, quantity) == expected


@pytest.mark.parametrize(
    ("raw", "quantity", "message"),
    [
        ("", 2, "Enter the 2 PINs"),
        ("  \n ", 1, "Enter the 1 PIN from"),
        ("SER1,P12345", 2, "This purchase is for 2 PINs: enter 2, one per line (you entered 1)"),
        ("P12345\nP67890", 1, "This purchase is for 1 PIN: enter 1"),
        ("a,b,c", 1, "Line 1: write SERIAL,PIN"),
        ("P12345\nSER1,<script>", 2, "Line 2: a PIN or serial is 4 to 40"),
        ("P12345\nP12345", 2, "Line 2 repeats a PIN"),
        ("P" + "1" * 40, 1, "Line 1: a PIN or serial"),
        ("\u0661\u0662\u0663\u0664", 1, "Line 1: a PIN or serial"),  # Arabic-Indic digits are not a PIN
    ],
)
def test_staff_pins_refuses_what_the_customer_could_not_use(raw: str, quantity: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        staff_pins(raw, quantity)
