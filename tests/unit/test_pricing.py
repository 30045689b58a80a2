"""Pricing rules and VTU configuration (pure, no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.vtu.config import VtuConfig, VtuConfigError, load_vtu_config
from app.vtu.pricing import RuleTerms, default_terms, discounted, price_with, provider_cost
from app.vtu.providers.catalog import ServiceKind

CONFIG = VtuConfig()


def test_customers_pay_face_value_resellers_get_the_kind_discount() -> None:
    for kind in ServiceKind:
        assert (
            price_with(default_terms("customer", kind, CONFIG), 100_000, kind, CONFIG).selling_kobo == 100_000
        )
    reseller = {
        k: price_with(default_terms("reseller", k, CONFIG), 100_000, k, CONFIG).selling_kobo
        for k in ServiceKind
    }
    assert reseller == {
        ServiceKind.AIRTIME: 98_000,  # 2 %
        ServiceKind.DATA: 99_000,  # 1 %
        ServiceKind.ELECTRICITY: 100_000,
        ServiceKind.CABLE: 100_000,
        ServiceKind.EXAM: 100_000,  # no default reseller discount on exam PINs
    }


def test_rules_fixed_price_and_discount() -> None:
    fixed = price_with(
        RuleTerms(fixed_price_kobo=27_500, source="plan rule"), 30_000, ServiceKind.DATA, CONFIG
    )
    assert (fixed.selling_kobo, fixed.face_kobo, fixed.cost_kobo, fixed.margin_kobo) == (
        27_500,
        30_000,
        30_000,
        -2_500,
    )
    off = price_with(RuleTerms(discount_bps=350), 10_001, ServiceKind.AIRTIME, CONFIG)
    assert off.selling_kobo == 10_001 - 350  # 3.5 % of 10,001 = 350.035 -> discount rounds down


def test_margin_uses_the_configured_provider_commission() -> None:
    config = VtuConfig(provider_commission_bps={ServiceKind.AIRTIME: 300})
    price = price_with(
        default_terms("reseller", ServiceKind.AIRTIME, config), 100_000, ServiceKind.AIRTIME, config
    )
    assert (price.selling_kobo, price.cost_kobo, price.margin_kobo) == (98_000, 97_000, 1_000)
    assert provider_cost(100_000, ServiceKind.DATA, config) == 100_000


@given(face=st.integers(1, 10**10), bps=st.integers(0, 10_000))
def test_discount_is_exact_integer_kobo(face: int, bps: int) -> None:
    price = discounted(face, bps)
    assert isinstance(price, int) and 0 <= price <= face
    assert face - price == face * bps // 10_000


def test_a_sale_is_never_free() -> None:
    assert price_with(RuleTerms(discount_bps=10_000), 5_000, ServiceKind.AIRTIME, CONFIG).selling_kobo == 1


def test_config_from_environment() -> None:
    config = load_vtu_config(
        {
            "VTU_AIRTIME_MIN_KOBO": "10000",
            "VTU_RESELLER_DISCOUNT_BPS": "airtime=250, electricity=50",
            "VTU_PROVIDER_COMMISSION_BPS": "data=400",
            "VTU_PROVIDER_BY_SERVICE": "dstv=stub",
            "VTU_PLAN_SYNC_SERVICES": "mtn-data, glo-data",
        }
    )
    assert config.airtime_min_kobo == 10_000 and config.airtime_max_kobo == 5_000_000
    assert config.reseller_discount_bps[ServiceKind.AIRTIME] == 250
    assert config.reseller_discount_bps[ServiceKind.DATA] == 100  # default kept
    assert config.reseller_discount_bps[ServiceKind.ELECTRICITY] == 50
    assert config.provider_commission_bps == {ServiceKind.DATA: 400}
    assert config.provider_by_service == {"dstv": "stub"}
    assert config.plan_sync_services == ("mtn-data", "glo-data")
    assert load_vtu_config({}) == VtuConfig()


@pytest.mark.parametrize(
    "env",
    [
        {"VTU_AIRTIME_MIN_KOBO": "5e3"},
        {"VTU_RESELLER_DISCOUNT_BPS": "lottery=100"},
        {"VTU_RESELLER_DISCOUNT_BPS": "airtime=20000"},
        {"VTU_PROVIDER_BY_SERVICE": "dstv"},
    ],
)
def test_bad_config_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(VtuConfigError):
        load_vtu_config(env)
