"""The router and provider health together, as the processes wire them (app/vtu/runtime.py: VtuRuntime with
a Redis client): an open breaker, a float too low and a staff order each decide where a NEW purchase goes,
over real HTTP to both simulators, on real PostgreSQL and Redis (docs/architecture.md, "Provider
failover")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from app.audit.service import Actor
from app.vtu.config import VtuConfig
from app.vtu.models import SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.provider_health import BreakerState
from app.vtu.provider_routes import set_order
from app.vtu.providers import VTPassProvider
from app.vtu.runtime import VtuRuntime, provider_http_client
from tests.integration.failover_fixtures import (
    Servers,
    both_servers,
    two_provider_adapters,
    two_provider_settings,
)
from tests.integration.purchase_fixtures import assert_reconciled, money, new_buyer, sim_settings

__all__ = ["both_servers"]

START = 1_000_000
AMOUNT = 20_000
ERRORS = 3


@pytest_asyncio.fixture(loop_scope="session")
async def runtime(
    db: Any, redis: Any, sessionmaker: Any, settings: Any, both_servers: Servers
) -> AsyncIterator[VtuRuntime]:
    vt, _, ck, _ = both_servers
    vt.reset()
    ck.reset()
    vt.configure(outcome="delivered")
    wired = two_provider_settings(settings, both_servers, vtu_breaker_errors=ERRORS)
    config = VtuConfig(provider_order={"mtn": ("vtpass", "clubkonnect")})
    http = provider_http_client()
    adapters = two_provider_adapters(wired, http)
    runtime = VtuRuntime(wired, sessionmaker, config=config, providers=adapters, redis=redis)
    try:
        yield runtime
    finally:
        await runtime.aclose()
        await http.aclose()


async def settled(runtime: VtuRuntime, purchase: Any) -> Any:
    """ClubKonnect answers "order received" (100): the worker's requeries settle it."""
    for _ in range(4):
        if purchase.status != "pending":
            break
        purchase = await runtime.purchases.requery(
            purchase.id, source="worker", attempt=purchase.attempts + 1
        )
    return purchase


def airtime(phone: str = "08031234567") -> PurchaseRequest:
    return PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=AMOUNT)


async def test_an_open_breaker_sends_new_purchases_to_the_next_provider(
    runtime: VtuRuntime, sessionmaker: Any, both_servers: Servers
) -> None:
    vt, _, ck, _ = both_servers
    assert runtime.health is not None
    buyer = await new_buyer(sessionmaker, fund=START)
    first = await runtime.purchases.buy(buyer, airtime())
    assert (first.status, first.provider_slug) == (SUCCESSFUL, "vtpass")  # the configured first
    for _ in range(ERRORS):
        await runtime.health.record_failure("vtpass", "test: no answer")
    assert (await runtime.health.breaker("vtpass")).state is BreakerState.OPEN
    paid_before = len(vt.pay_requests())
    second = await settled(runtime, await runtime.purchases.buy(buyer, airtime("08031234568")))
    assert (second.status, second.provider_slug, second.attempt_no) == (SUCCESSFUL, "clubkonnect", 1)
    assert len(vt.pay_requests()) == paid_before  # VTpass was not called at all
    assert len(ck.delivered_to("08031234568")) == 1
    assert (await money(sessionmaker, buyer.id)).wallet == START - 2 * AMOUNT
    await assert_reconciled(sessionmaker)


async def test_a_float_too_low_and_a_staff_order_decide_the_provider(
    runtime: VtuRuntime, sessionmaker: Any
) -> None:
    assert runtime.health is not None
    buyer = await new_buyer(sessionmaker, fund=START)
    await runtime.health.remember_float("vtpass", AMOUNT - 1)  # cannot cover this purchase
    low = await settled(runtime, await runtime.purchases.buy(buyer, airtime("08031234569")))
    assert (low.status, low.provider_slug) == (SUCCESSFUL, "clubkonnect")
    await runtime.health.remember_float("vtpass", 10 * AMOUNT)
    back = await runtime.purchases.buy(buyer, airtime("08031234570"))
    assert back.provider_slug == "vtpass"
    async with sessionmaker() as session:
        staff = Actor(None, "ops@example.ng", "operations")
        await set_order(
            session, service_id="mtn", slugs=["clubkonnect", "vtpass"], actor=staff, settings=runtime.settings
        )
        await session.commit()
    runtime.health.forget_routes()  # this process's 5 s cache (the staff page clears it the same way)
    staff_first = await runtime.purchases.buy(buyer, airtime("08031234571"))
    assert staff_first.provider_slug == "clubkonnect"
    assert (await money(sessionmaker, buyer.id)).wallet == START - 3 * AMOUNT
    await assert_reconciled(sessionmaker)


async def test_opening_a_purchase_never_asks_the_pool_for_a_second_connection(
    db: Any, redis: Any, settings: Any, sessionmaker: Any, both_servers: Servers
) -> None:
    """The staff order is read on the connection the opening already holds: with a ONE-connection pool and
    the routes cache cold, a purchase still opens (a second checkout would wait out the pool timeout)."""
    from app.core.db import make_engine, make_sessionmaker

    vt, vt_server, _, _ = both_servers
    vt.reset()
    vt.configure(outcome="delivered")
    wired = sim_settings(settings, vt_server.url, vt)
    engine = make_engine(wired, pool_size=1, max_overflow=0, pool_timeout=3)
    http = provider_http_client()
    adapters = {"vtpass": VTPassProvider(wired, http_client=http, pay_read_timeout=1.0, read_timeout=5.0)}
    config = VtuConfig(provider_order={"mtn": ("vtpass",)})
    runtime = VtuRuntime(wired, make_sessionmaker(engine), config=config, providers=adapters, redis=redis)
    try:
        assert runtime.health is not None
        runtime.health.forget_routes()
        buyer = await new_buyer(sessionmaker, fund=START)
        bought = await runtime.purchases.buy(buyer, airtime("08031234572"))
        assert (bought.status, bought.provider_slug) == (SUCCESSFUL, "vtpass")
    finally:
        await runtime.aclose()
        await http.aclose()
        await engine.dispose()
    await assert_reconciled(sessionmaker)
