"""Plan sync (VTpass adapter over HTTP to the simulator, stub, CLI, cron task) and plan pricing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import select

from app.vtu.config import VtuConfig
from app.vtu.errors import InvalidPurchase
from app.vtu.models import SUCCESSFUL, Plan, PlanPriceChange, PriceRule
from app.vtu.orders import PurchaseRequest
from app.vtu.plans import PlanSyncError, priced_plans, sync_plans
from app.vtu.pricing import price_for
from app.vtu.providers import StubProvider, Variation
from app.vtu.providers.catalog import ServiceKind
from app.vtu.providers.stub import DATA_PLANS
from app.vtu.runtime import VtuRuntime
from app.vtu.tasks import sync_data_bundles
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    Harness,
    assert_reconciled,
    money,
    new_buyer,
)

# pytest fixtures shared by the purchase-engine tests
sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt


async def plans(sessionmaker: Any, service_id: str = "mtn-data", slug: str = "vtpass") -> dict[str, Plan]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Plan).where(Plan.service_id == service_id, Plan.provider_slug == slug)
        )
        return {p.variation_code: p for p in rows.scalars()}


@pytest.mark.parametrize("spelling", ["variations", "varations"])
async def test_sync_over_http_upserts_and_logs_price_changes(
    vt: Harness, sessionmaker, sim, spelling
) -> None:
    sim.variations_key = spelling
    provider = vt.registry.get("vtpass")
    async with sessionmaker() as session, session.begin():
        session.add_all(
            [  # an old price for a plan that still exists, and a plan the provider no longer lists
                Plan(provider_slug="vtpass", service_id="mtn-data", variation_code="mtn-1gb-1day",
                     name="old name", provider_price_kobo=30_000, active=True),
                Plan(provider_slug="vtpass", service_id="mtn-data", variation_code="mtn-500mb-legacy",
                     name="MTN 500MB", provider_price_kobo=15_000, active=True),
            ]
        )  # fmt: skip
    async with sessionmaker() as session:
        report = await sync_plans(session, provider, "mtn-data")
    listed = {code for code, _, _ in DATA_PLANS["mtn-data"]}
    assert report.fetched == len(listed) and not report.empty
    assert report.price_changes == [("mtn-1gb-1day", 30_000, 35_000)]
    assert report.deactivated == ["mtn-500mb-legacy"] and len(report.created) == len(listed) - 1
    stored = await plans(sessionmaker)
    assert {c for c, p in stored.items() if p.active} == listed
    assert stored["mtn-500mb-legacy"].active is False  # kept, never deleted
    assert stored["mtn-1gb-1day"].name == "MTN 1GB - 1 Day" and stored["mtn-1gb-1day"].last_synced_at
    async with sessionmaker() as session:
        changes = (await session.execute(select(PlanPriceChange))).scalars().all()
    assert [(c.old_price_kobo, c.new_price_kobo, c.source) for c in changes] == [(30_000, 35_000, "sync")]
    # A second sync changes nothing.
    async with sessionmaker() as session:
        again = await sync_plans(session, provider, "mtn-data")
    assert (again.created, again.price_changes, again.deactivated, again.updated) == ([], [], [], [])


async def test_empty_upstream_changes_nothing_and_is_reported(db, sessionmaker) -> None:
    class EmptyCatalog(StubProvider):
        async def list_variations(self, service_id: str) -> list[Variation]:
            return []

    async with sessionmaker() as session:
        await sync_plans(session, StubProvider(), "glo-data")
    before = {
        c: (p.active, p.provider_price_kobo)
        for c, p in (await plans(sessionmaker, "glo-data", "stub")).items()
    }
    async with sessionmaker() as session:
        report = await sync_plans(session, EmptyCatalog(), "glo-data")
    assert report.empty and "nothing changed" in report.summary()
    after = {
        c: (p.active, p.provider_price_kobo)
        for c, p in (await plans(sessionmaker, "glo-data", "stub")).items()
    }
    assert after == before and all(active for active, _ in after.values())


async def test_sync_refuses_airtime_and_unknown_services(db, sessionmaker) -> None:
    for service_id in ("mtn", "not-a-service"):
        async with sessionmaker() as session:
            with pytest.raises(PlanSyncError):
                await sync_plans(session, StubProvider(), service_id)


async def test_data_purchase_uses_the_plan_price_and_tier(vt: Harness, sessionmaker, sim) -> None:
    async with sessionmaker() as session:
        await sync_plans(session, vt.registry.get("vtpass"), "mtn-data")
    async with sessionmaker() as session, session.begin():
        session.add(PriceRule(tier="customer", service_id="mtn-data", variation_code="mtn-1gb-1day",
                              fixed_price_kobo=34_000))  # fmt: skip
    customer = await new_buyer(sessionmaker, fund=1_000_000)
    reseller = await new_buyer(sessionmaker, fund=1_000_000, tier="reseller")
    bought = await vt.service.buy(
        customer, PurchaseRequest("mtn-data", "08011111111", variation_code="mtn-1gb-1day")
    )
    assert bought.status == SUCCESSFUL and (bought.amount_kobo, bought.face_amount_kobo) == (34_000, 35_000)
    assert bought.product_name == "MTN 1GB - 1 Day"
    pay = sim.pay_requests(bought.request_id)[0].body
    assert pay["variation_code"] == "mtn-1gb-1day" and pay["billersCode"] == "08011111111"
    cheap = await vt.service.buy(
        reseller, PurchaseRequest("mtn-data", "08011111111", variation_code="mtn-7gb-30days")
    )
    assert cheap.amount_kobo == 350_000 - 3_500  # reseller default: 1 % off data
    async with sessionmaker() as session:
        listed = await priced_plans(
            session, slug="vtpass", service_id="mtn-data", tier="customer", config=VtuConfig()
        )
    prices = {p.variation_code: p.price_kobo for p in listed}
    assert prices["mtn-1gb-1day"] == 34_000 and prices["mtn-7gb-30days"] == 350_000
    with pytest.raises(InvalidPurchase) as caught:
        await vt.service.buy(customer, PurchaseRequest("mtn-data", "08011111111", variation_code="mtn-999gb"))
    assert "variation_code" in caught.value.fields
    assert (await money(sessionmaker, customer.id)).wallet == 1_000_000 - 34_000
    await assert_reconciled(sessionmaker)


def test_plans_sync_cli(db, sessionmaker) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "plans", "sync", "--service-id", "airtel-data",
         "--provider-slug", "stub"],
        capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"airtel-data from stub: {len(DATA_PLANS['airtel-data'])} listed" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "app", "plans", "sync", "--service-id", "mtn"],
        capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1 and "airtime" in bad.stderr


async def test_sync_data_bundles_cron_task(db, sessionmaker, settings) -> None:
    config = VtuConfig(plan_sync_services=("mtn-data", "dstv"))
    runtime = VtuRuntime(dataclasses.replace(settings, vtu_provider="stub"), sessionmaker, config=config)
    try:
        results = await sync_data_bundles({"vtu": runtime, "sessionmaker": sessionmaker})
    finally:
        await runtime.aclose()
    assert set(results) == {"mtn-data", "dstv"} and all("listed" in r for r in results.values())
    assert len(await plans(sessionmaker, "dstv", "stub")) == 6


async def test_listed_prices_are_what_buying_charges_under_every_rule(db, sessionmaker) -> None:
    """`priced_plans` (one statement for the buy forms and the API's plan list) applies the same precedence as
    the purchase's own pricing (`price_for`): the plan's active rule, else the service's, else the tier's
    defaults; inactive rules and the other tier's rules never count."""
    async with sessionmaker() as session:
        await sync_plans(session, StubProvider(), "mtn-data")
    async with sessionmaker() as session, session.begin():
        codes = list(
            (
                await session.execute(select(Plan.variation_code).where(Plan.service_id == "mtn-data"))
            ).scalars()
        )
        assert len(codes) >= 3
        own, inactive, _rest = codes[0], codes[1], codes[2:]
        session.add_all([
            PriceRule(tier="customer", service_id="mtn-data", variation_code="", discount_bps=250),
            PriceRule(tier="customer", service_id="mtn-data", variation_code=own, fixed_price_kobo=12_345),
            PriceRule(tier="customer", service_id="mtn-data", variation_code=inactive, fixed_price_kobo=1,
                      active=False),
            PriceRule(tier="reseller", service_id="mtn-data", variation_code=own, fixed_price_kobo=99),
        ])  # fmt: skip
    config = VtuConfig()
    for tier in ("customer", "reseller"):
        async with sessionmaker() as session:
            listed = await priced_plans(session, slug="stub", service_id="mtn-data", tier=tier, config=config)
            assert {p.variation_code for p in listed} == set(codes)
            for plan in listed:
                charged = await price_for(
                    session, tier=tier, service_id="mtn-data", kind=ServiceKind.DATA,
                    face_kobo=plan.face_kobo, variation_code=plan.variation_code, config=config,
                )  # fmt: skip
                assert plan.price_kobo == charged.selling_kobo, (tier, plan)
        prices = {p.variation_code: p for p in listed}
        if tier == "customer":
            assert prices[own].price_kobo == 12_345
            assert prices[inactive].price_kobo == prices[inactive].face_kobo * 9750 // 10000
        else:
            assert prices[own].price_kobo == 99
