"""Deterministic provider for development and tests: no network, VTpass sandbox numbers, real mapping.

The stub builds VTpass-shaped answers and runs them through the same mapping and parsers as the real
adapter, so the purchase service sees exactly what VTpass would make it see.

Purchases (phone numbers as in the VTpass sandbox):
- 08011111111: delivered (airtime, data). So are the demo numbers with real network prefixes (DEMO_PHONES:
  08031111111 MTN, 08021111111 Airtel, 08051111111 Glo, 08091111111 9mobile), so the buy forms' network
  detection can be seen working in development. Electricity to meter 1111111111111 (prepaid, token) or
  1010101010101 (postpaid) and cable to smartcard 1212121212 are delivered whatever the phone; smartcard
  1313131313 too (a new decoder: it verifies with no current bouquet or renewal amount, so it can only
  change bouquet).
- 201000000000: pending on /pay; every requery answers delivered.
- 300000000000: timeout on /pay; requery answers delivered (the order went through: never refund blind).
- 400000000000: no response; requery answers 015 (VTpass never saw it: failed once 30 s have passed).
- 500000000000: unexpected (non-JSON) answer; requery stays pending forever (exercises "needs attention").
- Exam PINs (waec, waec-registration, jamb) to a delivered number come with deterministic PINs (from the
  request id, `stub_pins`); jamb verifies and sells only to profile id 0123456789. 08011111122: delivered,
  but the /pay answer carries no PIN (it arrives on requery).
- any other number: failed, code 016.
Requery knows purchases made in this process. An id it never saw (e.g. sold by the web process, requeried
by the worker process) answers delivered, like the sandbox's pending number.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.vtu.providers.base import (
    CustomerInfo,
    DuplicatePayAttempt,
    Outcome,
    ProviderError,
    ProviderResult,
    PurchaseOrder,
    Variation,
)
from app.vtu.providers.catalog import PROFILE_VERIFIED, SERVICES, ServiceKind, get_service
from app.vtu.providers.mapping import map_transport_failure, map_vtpass_body, naira_amount
from app.vtu.providers.vtpass import InvalidOrder, parse_customer, parse_variations, pay_payload

DELIVERED_PHONE = "08011111111"
PENDING_PHONE = "201000000000"
UNEXPECTED_PHONE = "500000000000"
NO_RESPONSE_PHONE = "400000000000"
TIMEOUT_PHONE = "300000000000"
PREPAID_METER = "1111111111111"
POSTPAID_METER = "1010101010101"
SMARTCARD = "1212121212"
NEW_SMARTCARD = "1313131313"  # verifies, but has no bouquet to renew
# Delivered too: one number per network, each with a real prefix of it (app/vtu/networks.py).
DEMO_PHONES = {"mtn": "08031111111", "airtel": "08021111111", "glo": "08051111111", "etisalat": "08091111111"}
# Exam PINs: delivered, but the /pay answer carries no PIN (it comes on requery, as VTpass sometimes does).
LATE_PIN_PHONE = "08011111122"
DELIVERED_PHONES = frozenset({DELIVERED_PHONE, LATE_PIN_PHONE, *DEMO_PHONES.values()})
SANDBOX_PHONES = (DELIVERED_PHONE, PENDING_PHONE, UNEXPECTED_PHONE, NO_RESPONSE_PHONE, TIMEOUT_PHONE)
TARIFF_NAIRA_PER_KWH = Decimal("209.50")  # Band A-ish; only used to print plausible units
STARTING_FLOAT_KOBO = 500_000_000
EXAM_SERVICES = frozenset(s for s in SERVICES if s.kind is ServiceKind.EXAM)

_P = tuple[tuple[str, str, int], ...]  # (variation_code, name, naira)
DATA_PLANS: dict[str, _P] = {
    "mtn-data": (
        ("mtn-110mb-1day", "MTN 110MB - 1 Day", 100), ("mtn-1gb-1day", "MTN 1GB - 1 Day", 350),
        ("mtn-2-5gb-2days", "MTN 2.5GB - 2 Days", 900), ("mtn-1-5gb-7days", "MTN 1.5GB - 7 Days", 1000),
        ("mtn-3-5gb-30days", "MTN 3.5GB - 30 Days", 2500), ("mtn-7gb-30days", "MTN 7GB - 30 Days", 3500),
        ("mtn-10gb-30days", "MTN 10GB - 30 Days", 4500), ("mtn-20gb-30days", "MTN 20GB - 30 Days", 7500),
    ),
    "glo-data": (
        ("glo-750mb-1day", "Glo 750MB - 1 Day", 200), ("glo-1-5gb-1day", "Glo 1.5GB - 1 Day", 300),
        ("glo-2-5gb-2days", "Glo 2.5GB - 2 Days", 500), ("glo-2-6gb-30days", "Glo 2.6GB - 30 Days", 1000),
        ("glo-5gb-30days", "Glo 5GB - 30 Days", 1500), ("glo-10gb-30days", "Glo 10GB - 30 Days", 3000),
        ("glo-18gb-30days", "Glo 18GB - 30 Days", 5000),
    ),
    "airtel-data": (
        ("airtel-150mb-1day", "Airtel 150MB - 1 Day", 100), ("airtel-1gb-1day", "Airtel 1GB - 1 Day", 350),
        ("airtel-1-5gb-2days", "Airtel 1.5GB - 2 Days", 600),
        ("airtel-3gb-7days", "Airtel 3GB - 7 Days", 1500),
        ("airtel-2gb-30days", "Airtel 2GB - 30 Days", 2000),
        ("airtel-10gb-30days", "Airtel 10GB - 30 Days", 4000),
        ("airtel-18gb-30days", "Airtel 18GB - 30 Days", 6000),
    ),
    "etisalat-data": (
        ("9mobile-100mb-1day", "9mobile 100MB - 1 Day", 100),
        ("9mobile-650mb-1day", "9mobile 650MB - 1 Day", 200),
        ("9mobile-1-1gb-30days", "9mobile 1.1GB - 30 Days", 1000),
        ("9mobile-2gb-30days", "9mobile 2GB - 30 Days", 1200),
        ("9mobile-4-5gb-30days", "9mobile 4.5GB - 30 Days", 2000),
        ("9mobile-11gb-30days", "9mobile 11GB - 30 Days", 4000),
    ),
}  # fmt: skip
CABLE_PLANS: dict[str, _P] = {
    "dstv": (
        ("dstv-padi", "DStv Padi", 4400), ("dstv-yanga", "DStv Yanga", 6000),
        ("dstv-confam", "DStv Confam", 11000), ("dstv-compact", "DStv Compact", 19000),
        ("dstv-compact-plus", "DStv Compact Plus", 30000), ("dstv-premium", "DStv Premium", 44500),
    ),
    "gotv": (
        ("gotv-smallie", "GOtv Smallie", 1900), ("gotv-jinja", "GOtv Jinja", 3900),
        ("gotv-jolli", "GOtv Jolli", 5800), ("gotv-max", "GOtv Max", 8500),
        ("gotv-supa", "GOtv Supa", 11400), ("gotv-supa-plus", "GOtv Supa+", 16800),
    ),
    "startimes": (
        ("nova", "StarTimes Nova - 1 Month", 1900), ("basic", "StarTimes Basic - 1 Month", 3700),
        ("smart", "StarTimes Smart - 1 Month", 4700), ("classic", "StarTimes Classic - 1 Month", 5500),
        ("super", "StarTimes Super - 1 Month", 9000),
    ),
}  # fmt: skip
EXAM_PLANS: dict[str, _P] = {
    "waec": (("waecdirect", "WAEC Result Checker PIN", 3900),),
    "waec-registration": (("waec-registraion", "WAEC Registration PIN", 18000),),  # VTpass's spelling
    "jamb": (("utme", "JAMB UTME PIN", 7700), ("de", "JAMB Direct Entry PIN", 7700)),
}
JAMB_PROFILE = "0123456789"  # the sandbox's JAMB profile id that verifies (any other fails)
CURRENT_BOUQUET = {"dstv": "dstv-compact", "gotv": "gotv-jolli", "startimes": "basic"}


ALL_PLANS: dict[str, _P] = {**DATA_PLANS, **CABLE_PLANS, **EXAM_PLANS}


def variations_body(service_id: str, key: str = "variations") -> dict[str, Any]:
    """A VTpass-shaped service-variations answer (naira strings), shared with the test simulator."""
    service = get_service(service_id)
    if service is None:
        return {"response_description": "012", "content": {"errors": "PRODUCT DOES NOT EXIST"}}
    if service.kind is ServiceKind.ELECTRICITY:
        rows = [(t, t.title(), 0, "No") for t in ("prepaid", "postpaid")]
    else:
        rows = [(c, n, p, "Yes") for c, n, p in ALL_PLANS.get(service_id, ())]
    items = [
        {"variation_code": c, "name": n, "variation_amount": f"{p}.00", "fixedPrice": f}
        for c, n, p, f in rows
    ]
    return {
        "response_description": "000",
        "content": {
            "ServiceName": service.name,
            "serviceID": service_id,
            "convinience_fee": "0 %",
            key: items,
        },
    }


def verify_body(service_id: str, number: str, meter_type: str | None) -> dict[str, Any]:
    """A VTpass-shaped merchant-verify answer for the sandbox meters / smartcard."""
    service = get_service(service_id)
    if service is not None and service.service_id in PROFILE_VERIFIED:
        if number == JAMB_PROFILE and meter_type in {None, *(c for c, _, _ in EXAM_PLANS[service_id])}:
            return {"code": "000", "content": {"Customer_Name": "TEST CANDIDATE", "Status": "ACTIVE"}}
        return {"code": "000", "content": {"error": "Invalid Profile ID. Please check and try again",
                                           "WrongBillersCode": True}}  # fmt: skip
    if service is None or service.kind not in {ServiceKind.ELECTRICITY, ServiceKind.CABLE}:
        return {"code": "012", "response_description": "PRODUCT DOES NOT EXIST"}
    meters = {PREPAID_METER: "prepaid", POSTPAID_METER: "postpaid"}
    if (
        service.kind is ServiceKind.ELECTRICITY
        and meters.get(number)
        and meter_type in {None, meters[number]}
    ):
        content: dict[str, Any] = {
            "Customer_Name": "TESTMETER1", "Address": "ABULE - EGBA BU ABULE", "Meter_Number": number,
            "Customer_Arrears": "0.00" if number == PREPAID_METER else "4500.00", "Minimum_Amount": "1000",
            "Min_Purchase_Amount": 500, "Can_Vend": "yes", "Meter_Type": meters[number].upper(),
            "Business_Unit": "ABULE EGBA", "WrongBillersCode": False,
        }  # fmt: skip
    elif service.kind is ServiceKind.CABLE and number == NEW_SMARTCARD:
        content = {
            "Customer_Name": "NEW DECODER", "Status": "INACTIVE", "Customer_Number": "8061522781",
            "Customer_Type": service.brand.upper(), "WrongBillersCode": False,
        }  # fmt: skip
    elif service.kind is ServiceKind.CABLE and number == SMARTCARD:
        bouquet = next(p for p in CABLE_PLANS[service_id] if p[0] == CURRENT_BOUQUET[service_id])
        content = {
            "Customer_Name": "TEST CUSTOMER", "Status": "ACTIVE", "Due_Date": "2030-12-31T00:00:00",
            "Customer_Number": "8061522780", "Customer_Type": service.brand.upper(),
            "Current_Bouquet": bouquet[1], "Renewal_Amount": bouquet[2], "WrongBillersCode": False,
        }  # fmt: skip
    else:
        what = "meter" if service.kind is ServiceKind.ELECTRICITY else "smartcard"
        content = {"error": f"This {what} is not correct or is not a valid {service.name} {what}. "
                   "Please check and try again", "WrongBillersCode": True}  # fmt: skip
    return {"code": "000", "content": content}


def stub_token(request_id: str) -> str:
    digits = str(int(hashlib.sha256(request_id.encode()).hexdigest(), 16))[:20]
    return "-".join(digits[i : i + 4] for i in range(0, 20, 4))


def stub_pins(request_id: str, quantity: int | None) -> list[tuple[str, str]]:
    """Deterministic (serial, pin) pairs for an exam purchase, from its request id."""
    pins = []
    for n in range(max(quantity or 1, 1)):
        digest = hashlib.sha256(f"{request_id}:{n}".encode()).hexdigest()
        pins.append((f"WRN{int(digest[:8], 16) % 10**9:09d}", f"{int(digest[8:24], 16) % 10**12:012d}"))
    return pins


def exam_pin_fields(order: PurchaseOrder) -> dict[str, Any]:
    """The PIN part of a delivered exam answer, in the layout VTpass uses for that service."""
    pins = stub_pins(order.request_id, order.quantity)
    if order.service_id == "jamb":
        return {"Pin": pins[0][1], "purchased_code": f"Pin : {pins[0][1]}"}
    if order.service_id == "waec-registration":
        return {"tokens": [pin for _, pin in pins], "purchased_code": ""}
    text = ", ".join(f"Serial No:{serial}, pin: {pin}" for serial, pin in pins)
    return {"cards": [{"Serial": serial, "Pin": pin} for serial, pin in pins], "purchased_code": text}


def normalise_phone(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch in "0123456789")
    return "0" + digits[3:] if digits.startswith("234") and len(digits) == 13 else digits


def transaction_body(
    order: PurchaseOrder, status: str, code: str = "000", *, with_pins: bool = True
) -> dict[str, Any]:
    """A VTpass-shaped /pay or /requery answer for `order` (`with_pins=False`: an exam sale delivered
    without its PINs yet)."""
    now = datetime.now(UTC)
    amount = naira_amount(order.amount_kobo)
    body: dict[str, Any] = {
        "code": code,
        "content": {"transactions": {
            "status": status, "product_name": order.service_id,
            "unique_element": order.billers_code or order.phone, "unit_price": str(amount),
            "quantity": order.quantity or 1, "commission": "0", "total_amount": str(amount),
            "type": "stub", "phone": order.phone, "amount": str(amount),
            "transactionId": str(int(hashlib.sha256(order.request_id.encode()).hexdigest()[:12], 16)),
        }},
        "response_description": {"delivered": "TRANSACTION SUCCESSFUL", "failed": "TRANSACTION FAILED",
                                 "reversed": "TRANSACTION REVERSED"}.get(status, "TRANSACTION PROCESSING"),
        "requestId": order.request_id,
        "amount": f"{Decimal(order.amount_kobo) / 100:.2f}",  # VTpass sends naira strings
        "transaction_date": now.isoformat(),
        "purchased_code": "",
    }  # fmt: skip
    if status == "delivered" and order.variation_code == "prepaid":
        units = (Decimal(order.amount_kobo) / 100 / TARIFF_NAIRA_PER_KWH).quantize(Decimal("0.1"))
        body |= {"purchased_code": f"Token : {stub_token(order.request_id)}", "units": f"{units} kWh"}
    if status == "delivered" and with_pins and get_service(order.service_id) in EXAM_SERVICES:
        body |= exam_pin_fields(order)
    return body


def sandbox_failure_code(order: PurchaseOrder) -> str | None:
    """The sandbox's failure code for an order (None: delivered), ignoring the special pending numbers."""
    service = get_service(order.service_id)
    if service is None:
        return "012"  # product does not exist
    plans = ALL_PLANS.get(order.service_id)
    if plans and order.variation_code and order.variation_code not in {p[0] for p in plans}:
        return "010"  # variation code does not exist
    if service.kind is ServiceKind.ELECTRICITY:
        return None if order.billers_code in {PREPAID_METER, POSTPAID_METER} else "016"
    if service.kind is ServiceKind.CABLE:
        return None if order.billers_code in {SMARTCARD, NEW_SMARTCARD} else "016"
    if service.service_id in PROFILE_VERIFIED and order.billers_code != JAMB_PROFILE:
        return "016"
    return None if normalise_phone(order.phone) in DELIVERED_PHONES else "016"


@dataclass(slots=True)
class _Sale:
    order: PurchaseOrder
    requery_status: str | None  # None: answer 015 (VTpass never saw it); "pending" keeps it unknown
    delivered: bool


_SALES: OrderedDict[str, _Sale] = OrderedDict()  # shared by every StubProvider in this process
_MAX_SALES = 100_000


class StubProvider:
    slug = "stub"

    def __init__(self, *, latency_seconds: float = 0) -> None:
        self._latency = latency_seconds

    @property
    def max_pay_seconds(self) -> float:
        """No network: the latency, with a wide margin for a busy event loop."""
        return self._latency + 30.0

    async def aclose(self) -> None:
        return None

    async def _pause(self) -> None:
        if self._latency > 0:
            await asyncio.sleep(self._latency)

    async def purchase(self, order: PurchaseOrder) -> ProviderResult:
        if order.request_id in _SALES:
            raise DuplicatePayAttempt(f"/pay was already sent for {order.request_id}; requery it instead")
        try:
            payload = pay_payload(order)
        except InvalidOrder as exc:
            return ProviderResult(
                Outcome.FAILED, None, f"Not sent to the provider: {exc}", nothing_placed=True
            )
        await self._pause()
        log = {"method": "POST", "url": "stub://api/pay", "body": payload}
        phone = normalise_phone(order.phone)
        if phone == NO_RESPONSE_PHONE:
            self._record(order, None)
            return map_transport_failure("no response", request_log=log)
        if phone == TIMEOUT_PHONE:
            self._record(order, "delivered")
            return map_transport_failure("timed out", request_log=log)
        if phone == UNEXPECTED_PHONE:
            self._record(order, "pending")
            return map_vtpass_body("<html>502 Bad Gateway</html>", request_log=log)
        if phone == PENDING_PHONE:
            self._record(order, "delivered")
            return map_vtpass_body(transaction_body(order, "pending"), request_log=log)
        failure = sandbox_failure_code(order)
        status = "failed" if failure else "delivered"
        self._record(order, status)
        body = transaction_body(order, status, failure or "000", with_pins=phone != LATE_PIN_PHONE)
        return map_vtpass_body(body, request_log=log)

    @staticmethod
    def _record(order: PurchaseOrder, requery_status: str | None) -> None:
        _SALES[order.request_id] = _Sale(order, requery_status, delivered=requery_status == "delivered")
        if len(_SALES) > _MAX_SALES:
            _SALES.popitem(last=False)

    async def requery(
        self, request_id: str, *, paid_at: datetime | None, needs_token: bool = False
    ) -> ProviderResult:
        await self._pause()
        log = {"method": "POST", "url": "stub://api/requery", "body": {"request_id": request_id}}
        sale = _SALES.get(request_id)
        if sale is None:  # sold by another process: behave like the sandbox's pending number
            body = {"code": "000", "content": {"transactions": {"status": "delivered"}},
                    "response_description": "TRANSACTION SUCCESSFUL", "requestId": request_id}  # fmt: skip
            return map_vtpass_body(body, requery=True, request_log=log)
        if sale.requery_status is None:
            body = {"code": "015", "response_description": "INVALID REQUEST ID"}
            return map_vtpass_body(body, requery=True, paid_at=paid_at, request_log=log)
        return map_vtpass_body(
            transaction_body(sale.order, sale.requery_status), requery=True, request_log=log
        )

    async def list_variations(self, service_id: str) -> list[Variation]:
        await self._pause()
        service = get_service(service_id)
        if service is None:
            raise ProviderError(f"Unknown service {service_id!r}", code="012")
        return [] if service.kind is ServiceKind.AIRTIME else parse_variations(variations_body(service_id))

    async def verify_customer(self, service_id: str, customer_number: str, type: str | None) -> CustomerInfo:
        await self._pause()
        return parse_customer(verify_body(service_id, customer_number.strip(), type))

    async def balance(self) -> int:
        await self._pause()
        sold = sum(s.order.amount_kobo for s in _SALES.values() if s.delivered)
        return STARTING_FLOAT_KOBO - sold
