"""Provider health (app/vtu/provider_health.py) on real Redis, with the real VTpass adapter over HTTP to the
simulator (tests/fakes/vtpass.py): the circuit breaker counts only calls that got no usable answer, opens at
VTU_BREAKER_ERRORS, lets exactly one probe through when half-open (also under 20 concurrent callers in
separate "processes"), closes on the probe's answer and re-opens on its error; the probe cron; and float
awareness from the provider's balance."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from app.config.settings import Settings
from app.core.redis import make_redis
from app.vtu.balances import float_status
from app.vtu.config import VtuConfig
from app.vtu.orders import PurchaseRequest
from app.vtu.provider_health import BreakerState, ProviderHealth, remember_float
from app.vtu.providers import (
    CustomerVerificationFailed,
    Outcome,
    Provider,
    ProviderError,
    PurchaseOrder,
    VTPassProvider,
    new_request_id,
)
from app.vtu.registry import ProviderRegistry
from app.vtu.runtime import VtuRuntime, provider_http_client
from app.vtu.tasks import probe_providers
from tests.fakes.vtpass import VTPassSimulator
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import money, new_buyer, sim_settings

sim_server = purchase_fixtures.sim_server
sim = purchase_fixtures.sim

ERRORS = 3
COOLDOWN = 60


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Rig:
    health: ProviderHealth
    clock: Clock
    provider: Provider  # the instrumented VTpass adapter, reporting to `health`
    registry: ProviderRegistry
    settings: Settings
    sim: VTPassSimulator


@pytest_asyncio.fixture(loop_scope="session")
async def rig(
    db: Any, redis: Any, sessionmaker: Any, settings: Settings, sim_server: Any, sim: Any
) -> AsyncIterator[Rig]:
    vt_settings = sim_settings(
        settings, sim_server[1].url, sim, vtu_breaker_errors=ERRORS, vtu_breaker_cooldown_seconds=COOLDOWN
    )
    clock = Clock()
    health = ProviderHealth(redis, sessionmaker, vt_settings, clock=clock)
    http = provider_http_client()
    adapter = VTPassProvider(vt_settings, http_client=http, pay_read_timeout=1.0, read_timeout=5.0)
    registry = ProviderRegistry(
        vt_settings, VtuConfig(), http_client=http, providers={"vtpass": adapter}, recorder=health
    )
    try:
        yield Rig(health, clock, registry.get("vtpass"), registry, vt_settings, sim)
    finally:
        await registry.aclose()
        await http.aclose()


def order(phone: str = "08011111111") -> PurchaseOrder:
    return PurchaseOrder(request_id=new_request_id(), service_id="mtn", amount_kobo=10_000, phone=phone)


async def state(rig: Rig) -> BreakerState:
    return (await rig.health.breaker("vtpass")).state


async def test_breaker_opens_after_n_consecutive_errors_and_then_refuses(rig: Rig) -> None:
    rig.sim.configure(http_status=503, process=False)  # every /pay: an HTML 502-style page
    for n in range(1, ERRORS):
        result = await rig.provider.purchase(order())
        assert result.outcome is Outcome.PENDING and result.code is None
        breaker = await rig.health.breaker("vtpass")
        assert (breaker.state, breaker.errors) == (BreakerState.CLOSED, n)
        assert await rig.health.usable("vtpass", 10_000)
    await rig.provider.purchase(order())
    breaker = await rig.health.breaker("vtpass")
    assert breaker.state is BreakerState.OPEN
    assert breaker.open_until is not None and breaker.open_until.timestamp() == rig.clock.now + COOLDOWN
    assert "pay" in (breaker.last_error or "")
    assert not await rig.health.usable("vtpass", 10_000)
    rig.clock.now += COOLDOWN - 1
    assert not await rig.health.usable("vtpass", 10_000)  # still cooling down


async def test_malformed_bodies_and_timeouts_count_as_errors(rig: Rig) -> None:
    rig.sim.configure(malformed=True)
    await rig.provider.purchase(order())
    rig.sim.configure(hang=3.0)  # past the adapter's 1 s /pay read timeout
    await rig.provider.purchase(order())
    assert (await rig.health.breaker("vtpass")).errors == 2
    rig.sim.configure(http_status=500, on=("balance",))
    with pytest.raises(ProviderError):
        await rig.provider.balance()
    assert (await state(rig)) is BreakerState.OPEN


async def test_definite_business_answers_never_open_it(rig: Rig) -> None:
    rig.sim.configure(outcome="failed")  # 016: the provider answered "no"
    for _ in range(ERRORS + 2):
        result = await rig.provider.purchase(order())
        assert result.outcome is Outcome.FAILED
    rig.sim.configure(pay_code="018")  # low wallet: an answer too
    for _ in range(ERRORS + 2):
        assert (await rig.provider.purchase(order())).code == "018"
    for _ in range(ERRORS + 2):  # a rejected meter number
        with pytest.raises(CustomerVerificationFailed):
            await rig.provider.verify_customer("ikeja-electric", "9999999999999", "prepaid")
    breaker = await rig.health.breaker("vtpass")
    assert (breaker.state, breaker.errors) == (BreakerState.CLOSED, 0)
    assert await rig.health.usable("vtpass", 100)  # (018 said N100 is more than the float: below)


async def test_an_answer_between_errors_resets_the_count(rig: Rig) -> None:
    rig.sim.configure(http_status=503, process=False)
    for _ in range(ERRORS - 1):
        await rig.provider.purchase(order())
    rig.sim.configure()  # delivered
    assert (await rig.provider.purchase(order())).outcome is Outcome.DELIVERED
    rig.sim.configure(http_status=503, process=False)
    for _ in range(ERRORS - 1):
        await rig.provider.purchase(order())
    breaker = await rig.health.breaker("vtpass")
    assert (breaker.state, breaker.errors) == (BreakerState.CLOSED, ERRORS - 1)


async def test_a_purchase_through_the_engine_reports_to_the_breaker(rig: Rig, sessionmaker: Any) -> None:
    from app.vtu.service import PurchaseService
    from tests.integration.purchase_fixtures import RecordingScheduler

    service = PurchaseService(
        sessionmaker=sessionmaker,
        settings=rig.settings,
        config=VtuConfig(),
        providers=rig.registry,
        scheduler=RecordingScheduler(),
    )
    buyer = await new_buyer(sessionmaker, fund=100_000)
    rig.sim.configure(http_status=503, process=False)
    for _ in range(ERRORS):
        request = PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=10_000)
        assert (await service.buy(buyer, request)).status == "pending"  # never refunded blind
    assert (await state(rig)) is BreakerState.OPEN
    assert (await money(sessionmaker, buyer.id)).wallet == 100_000 - ERRORS * 10_000


async def open_breaker(rig: Rig) -> None:
    for _ in range(ERRORS):
        await rig.health.record_failure("vtpass", "test")
    assert (await state(rig)) is BreakerState.OPEN


async def test_half_open_lets_exactly_one_of_20_concurrent_callers_probe(
    rig: Rig, settings: Settings
) -> None:
    await open_breaker(rig)
    rig.clock.now += COOLDOWN
    assert (await state(rig)) is BreakerState.HALF_OPEN
    # 20 "processes": each its own ProviderHealth and Redis connection pool, asking at the same moment.
    clients = [make_redis(settings.redis_url) for _ in range(20)]
    try:
        others = [ProviderHealth(c, None, rig.settings, clock=rig.clock) for c in clients]
        answers = await asyncio.gather(*(h.usable("vtpass", 10_000) for h in others))
        assert sum(answers) == 1
        assert not await rig.health.usable("vtpass", 10_000)  # the probe is still out
        assert (await rig.health.breaker("vtpass")).probing
    finally:
        for c in clients:
            await c.aclose()


async def test_the_probe_purchase_answering_closes_the_breaker(rig: Rig) -> None:
    await open_breaker(rig)
    rig.clock.now += COOLDOWN
    assert await rig.health.usable("vtpass", 10_000)  # this caller holds the probe
    assert (await rig.provider.purchase(order())).outcome is Outcome.DELIVERED
    breaker = await rig.health.breaker("vtpass")
    assert (breaker.state, breaker.errors, breaker.probing) == (BreakerState.CLOSED, 0, False)
    assert await rig.health.usable("vtpass", 10_000)


async def test_the_probe_failing_reopens_for_another_cool_down(rig: Rig) -> None:
    await open_breaker(rig)
    rig.clock.now += COOLDOWN + 5
    assert await rig.health.usable("vtpass", 10_000)
    rig.sim.configure(http_status=503, process=False)
    await rig.provider.purchase(order())
    breaker = await rig.health.breaker("vtpass")
    assert breaker.state is BreakerState.OPEN and not breaker.probing
    assert breaker.open_until is not None and breaker.open_until.timestamp() == rig.clock.now + COOLDOWN
    assert not await rig.health.usable("vtpass", 10_000)


async def test_the_cron_probes_half_open_providers_with_balance(
    rig: Rig, redis: Any, sessionmaker: Any
) -> None:
    runtime = VtuRuntime(rig.settings, sessionmaker, providers={"vtpass": rig.provider})
    ctx = {"vtu": runtime, "redis": redis, "sessionmaker": sessionmaker, "provider_health": rig.health}
    try:
        await open_breaker(rig)
        balance_calls = lambda: len([r for r in rig.sim.requests if r.path == "/api/balance"])  # noqa: E731
        assert await probe_providers(ctx) == {"vtpass": "open"}  # cooling down: left alone
        assert balance_calls() == 0
        rig.clock.now += COOLDOWN
        rig.sim.configure(http_status=503, on=("balance",))
        assert await probe_providers(ctx) == {"vtpass": "reopened"}
        assert (await state(rig)) is BreakerState.OPEN
        rig.clock.now += COOLDOWN
        rig.sim.configure()
        rig.sim.balance_naira = "1500.00"
        assert await probe_providers(ctx) == {"vtpass": "closed"}
        assert (await state(rig)) is BreakerState.CLOSED
        known = await rig.health.known_float("vtpass")
        assert known is not None and known.kobo == 150_000
        assert await probe_providers(ctx) == {"vtpass": "refreshed"}  # closed: the float is refreshed
    finally:
        await runtime.aclose()


async def test_a_float_below_the_cost_makes_the_provider_unusable(
    rig: Rig, redis: Any, sessionmaker: Any
) -> None:
    assert await rig.health.usable("vtpass", 10**12)  # unknown float: usable
    rig.sim.balance_naira = "150.00"
    runtime = VtuRuntime(rig.settings, sessionmaker, providers={"vtpass": rig.provider})
    try:
        async with sessionmaker() as session:
            status = await float_status(redis, runtime, session, "vtpass", fresh=True)
        assert status.provider_kobo == 15_000
    finally:
        await runtime.aclose()
    assert not await rig.health.usable("vtpass", 15_001)
    assert await rig.health.usable("vtpass", 15_000)
    assert await rig.health.usable("vtpass", 100)
    # A refusal on float claims no probe and counts no error.
    assert (await rig.health.breaker("vtpass")).errors == 0
    # Only a fresh balance counts: it expires after VTU_FLOAT_FRESH_SECONDS.
    ttl = await redis.ttl("vtu:float:last:vtpass")
    assert 0 < ttl <= rig.settings.vtu_float_fresh_seconds
    await remember_float(redis, dataclasses.replace(rig.settings, vtu_float_fresh_seconds=1), "vtpass", 0)
    assert not await rig.health.usable("vtpass", 1)
    await asyncio.sleep(1.2)
    assert await rig.health.usable("vtpass", 10**12)


async def test_staff_reset_closes_it(rig: Rig) -> None:
    await open_breaker(rig)
    before = await rig.health.reset("vtpass")
    assert before.state is BreakerState.OPEN
    breaker = await rig.health.breaker("vtpass")
    assert (breaker.state, breaker.errors) == (BreakerState.CLOSED, 0)


async def test_a_low_float_answer_makes_the_provider_unusable_for_that_amount(rig: Rig) -> None:
    rig.sim.configure(pay_code="018")  # LOW WALLET BALANCE: nothing placed, an answer (not an error)
    result = await rig.provider.purchase(order())  # N100 (10,000 kobo)
    assert result.outcome is Outcome.FAILED and result.code == "018"
    breaker = await rig.health.breaker("vtpass")
    assert (breaker.state, breaker.errors) == (BreakerState.CLOSED, 0)
    known = await rig.health.known_float("vtpass")
    assert known is not None and known.kobo == 9_999
    assert not await rig.health.usable("vtpass", 10_000)
    assert await rig.health.usable("vtpass", 5_000)  # a smaller order may still go
    # The next balance answer tells the real figure.
    rig.sim.configure()
    rig.sim.balance_naira = "20000.00"
    await rig.health.remember_float("vtpass", await rig.provider.balance())
    assert await rig.health.usable("vtpass", 10_000)


async def test_without_redis_every_provider_is_usable(settings: Settings) -> None:
    """Health is advice: when Redis cannot be reached (the drill's Redis outage), a sale goes ahead on the
    configured provider instead of being refused (the provider's own answer still decides it)."""
    from app.core.redis import make_redis

    unreachable = make_redis("redis://127.0.0.1:9/0")  # nothing listens on the discard port
    try:
        health = ProviderHealth(unreachable, None, settings)
        assert await health.usable("vtpass", 10_000) is True
    finally:
        await unreachable.aclose()
