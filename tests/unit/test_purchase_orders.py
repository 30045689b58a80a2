"""Purchase input rules (the public contract, docs/api.md), enforced by app.vtu.orders for web and API."""

from __future__ import annotations

from typing import Any

import pytest

from app.vtu.config import VtuConfig
from app.vtu.errors import InvalidPurchase
from app.vtu.orders import PurchaseRequest, amount_limits, meter_minimum_kobo, validate, validate_price_inputs
from app.vtu.providers.catalog import ServiceKind

CONFIG = VtuConfig()


def check(allow_sandbox: bool = True, **fields: Any) -> Any:
    return validate(PurchaseRequest(**fields), CONFIG, allow_sandbox=allow_sandbox)


def errors(allow_sandbox: bool = True, **fields: Any) -> dict[str, str]:
    with pytest.raises(InvalidPurchase) as caught:
        check(allow_sandbox, **fields)
    return caught.value.fields


@pytest.mark.parametrize("phone", ["08031234567", "+2348031234567", "2348031234567", "0803 123 4567"])
def test_airtime_accepts_nigerian_numbers_in_every_form(phone: str) -> None:
    order = check(service_id="mtn", phone=phone, amount_kobo=50_000)
    assert (order.phone, order.recipient, order.amount_kobo) == ("08031234567", "08031234567", 50_000)


@pytest.mark.parametrize("amount", [True, False, "50000", 50_000.0, "5e4", None, [50_000], {"v": 1}])
def test_amount_must_be_a_real_int(amount: Any) -> None:
    assert "amount_kobo" in errors(service_id="mtn", phone="08031234567", amount_kobo=amount)


LIMIT_CASES = [(4_900, False), (5_000, True), (5_000_000, True), (5_000_100, False), (5_050, False),
               (-5_000, False), (0, False)]  # fmt: skip


@pytest.mark.parametrize(("amount", "ok"), LIMIT_CASES)
def test_airtime_limits(amount: int, ok: bool) -> None:
    request: dict[str, Any] = {"service_id": "mtn", "phone": "08031234567", "amount_kobo": amount}
    if ok:
        assert check(**request).amount_kobo == amount
    else:
        assert "amount_kobo" in errors(**request)


def test_limits_are_configurable() -> None:
    tiny = VtuConfig(airtime_min_kobo=100, electricity_max_kobo=10_000_000)
    assert validate(PurchaseRequest("mtn", "08031234567", 100), tiny, allow_sandbox=False).amount_kobo == 100
    with pytest.raises(InvalidPurchase):
        validate(
            PurchaseRequest("ikeja-electric", "08031234567", 20_000_000, meter_number="12345678901",
                            meter_type="prepaid"), tiny, allow_sandbox=False,
        )  # fmt: skip


@pytest.mark.parametrize(
    "phone", ["0803123456", "12345678901", "+14155550100", "08031234567x", 8031234567, ""]
)
def test_bad_phones(phone: Any) -> None:
    assert "phone" in errors(service_id="mtn", phone=phone, amount_kobo=50_000)


def test_sandbox_numbers_only_outside_prod() -> None:
    for phone in ("08011111111", "201000000000", "300000000000"):
        assert check(service_id="mtn", phone=phone, amount_kobo=50_000).phone == phone
    assert "phone" in errors(False, service_id="mtn", phone="201000000000", amount_kobo=50_000)


def test_electricity_rules() -> None:
    good = check(service_id="ikeja-electric", meter_number="1111111111111", meter_type="prepaid",
                 amount_kobo=100_000, phone="08031234567")  # fmt: skip
    assert (good.recipient, good.variation_code, good.phone) == ("1111111111111", "prepaid", "08031234567")
    bad = errors(service_id="ikeja-electric", meter_number="1234567890", meter_type="smart",
                 amount_kobo=50_000_100, phone="123")  # fmt: skip
    assert set(bad) == {"meter_number", "meter_type", "amount_kobo", "phone"}  # every problem at once
    too_long = errors(service_id="ikeja-electric", meter_number="12345678901234", meter_type="prepaid",
                      amount_kobo=100_000, phone="08031234567")  # fmt: skip
    assert "meter_number" in too_long


def test_cable_rules() -> None:
    change = check(service_id="dstv", smartcard_number="1212121212", variation_code="dstv-padi",
                   subscription_type="change", phone="08031234567")  # fmt: skip
    assert (change.recipient, change.variation_code, change.subscription_type) == (
        "1212121212",
        "dstv-padi",
        "change",
    )
    renew = check(
        service_id="gotv", smartcard_number="12121212121", subscription_type="renew", phone="08031234567"
    )
    assert renew.variation_code is None
    startimes = check(service_id="startimes", smartcard_number="1212121212", variation_code="nova",
                      subscription_type="renew", phone="08031234567")  # fmt: skip
    assert startimes.subscription_type is None  # StarTimes takes none
    bad = errors(service_id="dstv", smartcard_number="123", subscription_type="upgrade", phone="08031234567")
    assert set(bad) == {"smartcard_number", "subscription_type", "variation_code"}


def test_data_needs_a_plan_and_unknown_services_are_refused() -> None:
    assert (
        check(service_id="mtn-data", phone="08031234567", variation_code="mtn-1gb-1day").amount_kobo is None
    )
    assert "variation_code" in errors(service_id="mtn-data", phone="08031234567")
    assert "variation_code" in errors(service_id="mtn-data", phone="08031234567", variation_code="../etc")
    assert errors(service_id="smile-direct", phone="08031234567") == {"service_id": "Unknown service."}
    assert "service_id" in errors(service_id=7, phone="08031234567")


def test_price_inputs_are_validates_own_rules_without_the_recipient():
    config = VtuConfig(airtime_min_kobo=7_000, airtime_max_kobo=4_000_000)
    order = validate_price_inputs(PurchaseRequest("mtn", phone="", amount_kobo=10_000), config)
    assert (order.service.service_id, order.amount_kobo, order.phone, order.recipient) == (
        "mtn",
        10_000,
        "",
        "",
    )
    with pytest.raises(InvalidPurchase) as refused:
        validate_price_inputs(PurchaseRequest("mtn", phone="x", amount_kobo=6_900), config)
    assert refused.value.fields == {"amount_kobo": "The amount must be between ₦70 and ₦40,000."}
    with pytest.raises(InvalidPurchase) as no_plan:
        validate_price_inputs(PurchaseRequest("dstv", subscription_type="change"), config)
    assert set(no_plan.value.fields) == {"variation_code"}
    assert amount_limits(ServiceKind.AIRTIME, config) == (7_000, 4_000_000)
    assert amount_limits(ServiceKind.DATA, config) is None
    assert meter_minimum_kobo(VtuConfig(electricity_min_kobo=50_000), 100_000) == 100_000
    assert meter_minimum_kobo(VtuConfig(electricity_min_kobo=120_000), 100_000) == 120_000
