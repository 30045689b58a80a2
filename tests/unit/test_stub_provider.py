from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.config.settings import Settings
from app.vtu.providers import (
    SERVICES,
    CustomerVerificationFailed,
    DuplicatePayAttempt,
    Outcome,
    Provider,
    ProviderError,
    PurchaseOrder,
    ServiceKind,
    StubProvider,
    VTPassProvider,
    get_provider,
    new_request_id,
)
from app.vtu.providers.stub import POSTPAID_METER, PREPAID_METER, SMARTCARD, stub_token

LONG_AGO = datetime.now(UTC) - timedelta(minutes=5)


def order(
    phone: str = "08011111111", service_id: str = "mtn", amount_kobo: int = 10_000, **kw
) -> PurchaseOrder:
    return PurchaseOrder(new_request_id(), service_id, amount_kobo, phone, **kw)


@pytest.mark.parametrize(
    ("phone", "first", "after_requery", "code"),
    [
        ("08011111111", Outcome.DELIVERED, Outcome.DELIVERED, "000"),
        ("+2348011111111", Outcome.DELIVERED, Outcome.DELIVERED, "000"),
        ("201000000000", Outcome.PENDING, Outcome.DELIVERED, "000"),
        ("300000000000", Outcome.PENDING, Outcome.DELIVERED, None),  # timeout, but it went through
        ("400000000000", Outcome.PENDING, Outcome.FAILED, None),  # no response; requery 015 after 30 s
        ("500000000000", Outcome.PENDING, Outcome.PENDING, None),  # unexpected body; stays unknown
        ("08030000000", Outcome.FAILED, Outcome.FAILED, "016"),
    ],
)
async def test_sandbox_phones(phone: str, first: Outcome, after_requery: Outcome, code: str | None) -> None:
    stub = StubProvider()
    sale = order(phone)
    result = await stub.purchase(sale)
    assert (result.outcome, result.code) == (first, code)
    assert (await stub.requery(sale.request_id, paid_at=LONG_AGO)).outcome is after_requery


async def test_no_response_is_pending_within_30_seconds() -> None:
    stub = StubProvider()
    sale = order("400000000000")
    await stub.purchase(sale)
    assert (await stub.requery(sale.request_id, paid_at=datetime.now(UTC))).outcome is Outcome.PENDING


async def test_requery_is_shared_between_instances_and_unknown_ids_deliver() -> None:
    sale = order("08030000000")
    await StubProvider().purchase(sale)
    assert (await StubProvider().requery(sale.request_id, paid_at=LONG_AGO)).outcome is Outcome.FAILED
    assert (await StubProvider().requery(new_request_id(), paid_at=LONG_AGO)).outcome is Outcome.DELIVERED


async def test_second_pay_for_one_request_id_is_refused() -> None:
    stub = StubProvider()
    sale = order()
    assert (await stub.purchase(sale)).outcome is Outcome.DELIVERED
    with pytest.raises(DuplicatePayAttempt):
        await stub.purchase(sale)


async def test_prepaid_electricity_vends_deterministic_token() -> None:
    sale = order(
        "08030000000", "ikeja-electric", 500_000, billers_code=PREPAID_METER, variation_code="prepaid"
    )
    result = await StubProvider().purchase(sale)
    assert result.outcome is Outcome.DELIVERED
    assert result.token == stub_token(sale.request_id) and len(result.token.replace("-", "")) == 20
    assert result.units == "23.9 kWh" and result.amount_kobo == 500_000
    postpaid = order(
        "08030000000", "eko-electric", 200_000, billers_code=POSTPAID_METER, variation_code="postpaid"
    )
    paid = await StubProvider().purchase(postpaid)
    assert paid.outcome is Outcome.DELIVERED and paid.token is None
    wrong = await StubProvider().purchase(order("08011111111", "ikeja-electric", 500_000, billers_code="123",
                                                variation_code="prepaid"))  # fmt: skip
    assert (wrong.outcome, wrong.code) == (Outcome.FAILED, "016")


async def test_cable_data_and_bad_orders() -> None:
    stub = StubProvider()
    cable = order("08030000000", "dstv", 1_900_000, billers_code=SMARTCARD, variation_code="dstv-compact",
                  subscription_type="change")  # fmt: skip
    assert (await stub.purchase(cable)).outcome is Outcome.DELIVERED
    data = order(service_id="mtn-data", amount_kobo=35_000, variation_code="mtn-1gb-1day")
    assert (await stub.purchase(data)).outcome is Outcome.DELIVERED
    unknown_plan = order(service_id="mtn-data", variation_code="mtn-999tb")
    assert (await stub.purchase(unknown_plan)).code == "010"
    no_plan = await stub.purchase(order(service_id="glo-data"))
    assert no_plan.outcome is Outcome.FAILED and no_plan.code is None and "variation_code" in no_plan.message


async def test_verify_customer() -> None:
    stub = StubProvider()
    meter = await stub.verify_customer("ikeja-electric", PREPAID_METER, "prepaid")
    assert meter.name == "TESTMETER1" and meter.can_vend is True and meter.minimum_amount_kobo == 100_000
    card = await stub.verify_customer("dstv", SMARTCARD, None)
    assert card.renewal_amount_kobo == 1_900_000 and card.details["Current_Bouquet"] == "DStv Compact"
    with pytest.raises(CustomerVerificationFailed, match="not correct"):
        await stub.verify_customer("ikeja-electric", "0000000000000", "prepaid")
    with pytest.raises(CustomerVerificationFailed):
        await stub.verify_customer("ikeja-electric", PREPAID_METER, "postpaid")


def test_catalog_covers_networks_discos_and_tv() -> None:
    ids = {s.service_id: s for s in SERVICES}
    for network in ("mtn", "glo", "airtel", "etisalat"):
        assert ids[network].kind is ServiceKind.AIRTIME and ids[f"{network}-data"].kind is ServiceKind.DATA
    assert ids["etisalat"].brand == "9mobile"
    assert sum(s.kind is ServiceKind.ELECTRICITY for s in SERVICES) == 10
    assert {"dstv", "gotv", "startimes"} <= {s.service_id for s in SERVICES if s.kind is ServiceKind.CABLE}


async def test_variations_balance_and_latency() -> None:
    stub = StubProvider()
    for service_id in ("mtn-data", "glo-data", "airtel-data", "etisalat-data"):
        plans = await stub.list_variations(service_id)
        assert 6 <= len(plans) <= 10 and all(p.fixed_price and p.amount_kobo > 0 for p in plans)
    assert {p.variation_code for p in await stub.list_variations("ikeja-electric")} == {"prepaid", "postpaid"}
    assert await stub.list_variations("mtn") == []
    with pytest.raises(ProviderError):
        await stub.list_variations("nope")
    assert isinstance(await stub.balance(), int)
    started = time.monotonic()
    await StubProvider(latency_seconds=0.05).balance()
    assert time.monotonic() - started >= 0.05


async def test_factory_selects_by_settings_or_slug() -> None:
    settings = dataclasses.replace(
        Settings(), vtpass_api_key="a", vtpass_public_key="b", vtpass_secret_key="c"
    )
    stub = get_provider(settings)
    assert isinstance(stub, StubProvider) and isinstance(stub, Provider)
    vtpass = get_provider(settings, slug="vtpass")
    assert isinstance(vtpass, VTPassProvider) and vtpass.slug == "vtpass"
    await vtpass.aclose()
    with pytest.raises(ProviderError):
        get_provider(settings, slug="other")
    with pytest.raises(ProviderError, match="credentials"):
        get_provider(Settings(vtu_provider="vtpass"))
