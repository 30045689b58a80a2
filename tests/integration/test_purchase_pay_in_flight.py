"""VTpass's 015 "unknown request id" against a /pay still on its way, over real HTTP to the simulator.

VTpass may not know a request id until ~30 s after /pay reached it, and /pay itself can take the VTpass
client's longest wait (pool + connect + write + read). A 015 is final only 30 s after /pay finished (its
answer or error was logged), or, with nothing logged (still on the wire, or the process died), 30 s after
the longest /pay could have lasted. Scheduled requeries and the sweep leave a purchase alone while its /pay
may still be in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from app.vtu import settlement
from app.vtu.models import FAILED, PENDING, SUCCESSFUL, Purchase
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import StubProvider, VTPassProvider
from app.vtu.runtime import provider_http_client
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    Harness,
    age_pay_attempt,
    assert_reconciled,
    load,
    make_service,
    money,
    new_buyer,
    postings_for,
    sim_settings,
)

sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt

START = 1_000_000
SLOW_PAY = 6.0  # seconds the simulator takes to answer /pay (it learns the request id only then)


def airtime(phone: str) -> PurchaseRequest:
    return PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=50_000)


@pytest_asyncio.fixture(loop_scope="session")
async def patient(db, sessionmaker, settings, sim_server, sim) -> AsyncIterator[Harness]:
    """The real VTpass adapter with /pay timeouts long enough to wait for a slow simulator: 20 s for the
    pool, write and read, 5 s to connect, so /pay may take up to 65 s."""
    vt_settings = sim_settings(settings, sim_server[1].url, sim)
    http = provider_http_client()
    adapter = VTPassProvider(vt_settings, http_client=http, pay_read_timeout=20.0, read_timeout=5.0)
    assert adapter.max_pay_seconds == 65.0
    harness = make_service(sessionmaker, vt_settings, providers={"vtpass": adapter}, http=http)
    try:
        yield harness
    finally:
        await harness.aclose()


async def _purchase_on_the_wire(sessionmaker: Any, sim: Any) -> Purchase:
    """Wait until /pay has reached the simulator (which answers it SLOW_PAY seconds later)."""
    deadline = time.monotonic() + 15
    while not sim.pay_requests():
        assert time.monotonic() < deadline, "/pay never reached the simulator"
        await asyncio.sleep(0.02)
    request_id = sim.pay_requests()[0].body["request_id"]
    async with sessionmaker() as session:
        found = (
            await session.execute(select(Purchase).where(Purchase.request_id == request_id))
        ).scalar_one()
    return found


def _requeries(sim: Any) -> int:
    return sum(1 for r in sim.requests if r.path == "/api/requery")


async def test_015_while_pay_is_in_flight_neither_refunds_nor_is_swept(
    patient: Harness, sessionmaker, sim
) -> None:
    sim.configure("08012345678", latency=SLOW_PAY, on=("pay",), outcome="delivered")
    buyer = await new_buyer(sessionmaker, fund=START)
    buying = asyncio.ensure_future(patient.service.buy(buyer, airtime("08012345678")))
    on_the_wire = await _purchase_on_the_wire(sessionmaker, sim)
    # 40 s "ago": the first requery is overdue and 30 s have passed since paid_at, but /pay is still out.
    await age_pay_attempt(sessionmaker, on_the_wire.id, 40)

    report = await patient.service.sweep(grace_seconds=0, inline=True)
    assert (report.due, report.in_flight, report.requeried) == (0, 1, 0)
    job = await patient.service.requery(on_the_wire.id, source="worker", attempt=1)
    assert job is not None and job.status == PENDING and job.attempts == 0  # skipped: /pay is in flight
    assert _requeries(sim) == 0
    checked = await patient.service.requery(on_the_wire.id, source="staff")  # "check now" asks anyway
    assert checked is not None and checked.status == PENDING and checked.provider_code == "015"
    assert _requeries(sim) == 1
    assert not buying.done(), "the slow /pay answered before the checks ran: raise SLOW_PAY"
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight) == (START - 50_000, 50_000)  # held, not refunded

    bought = await buying
    assert bought.status == SUCCESSFUL and not bought.needs_attention
    assert len(sim.pay_requests(bought.request_id)) == 1
    assert await postings_for(sessionmaker, bought.id) == [f"purchase:{bought.id}", f"delivery:{bought.id}"]
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_) == (START - 50_000, 0, 50_000)  # charged once
    pay = next(e for e in (await load(sessionmaker, bought.id)).exchanges if e["kind"] == "pay")
    at, sent, finished = (datetime.fromisoformat(pay[k]) for k in ("at", "sent_at", "finished_at"))
    assert at <= sent <= finished and (finished - sent).total_seconds() >= SLOW_PAY
    await assert_reconciled(sessionmaker)


@pytest.mark.parametrize("phone", ["400000000000", "300000000000"], ids=["http-503", "timeout"])
async def test_015_is_final_only_30s_after_pay_finished(vt: Harness, sessionmaker, sim, phone) -> None:
    sim.configure("300000000000", hang=3.0, process=False)  # longer than the adapter's 1 s: never placed
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime(phone))  # 400000000000: HTTP 503, never placed
    assert purchase.status == PENDING
    # /pay was opened 5 minutes ago but only gave up 10 s ago (a long wait for a connection, then errors).
    await age_pay_attempt(sessionmaker, purchase.id, 300, finished_seconds=10)
    early = await vt.service.requery(purchase.id, source="worker", attempt=1)
    assert early is not None and early.status == PENDING and early.provider_code == "015"
    assert (await money(sessionmaker, buyer.id)).in_flight == 50_000
    await age_pay_attempt(sessionmaker, purchase.id, 0, finished_seconds=25)  # gave up 35 s ago
    late = await vt.service.requery(purchase.id, source="worker", attempt=2)
    assert late is not None and late.status == FAILED
    assert (await money(sessionmaker, buyer.id)).wallet == START
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"refund:{purchase.id}",
    ]
    await assert_reconciled(sessionmaker)


class _DiesDuringPay(VTPassProvider):
    async def purchase(self, order):  # type: ignore[no-untyped-def]
        raise asyncio.CancelledError  # the process went away with /pay unanswered: nothing is logged


async def test_a_pay_that_never_finished_is_failed_only_after_its_longest_wait(
    db, sessionmaker, settings, sim_server, sim
) -> None:
    vt_settings = sim_settings(settings, sim_server[1].url, sim)
    http = provider_http_client()
    adapter = _DiesDuringPay(vt_settings, http_client=http, pay_read_timeout=1.0, read_timeout=5.0)
    harness = make_service(sessionmaker, vt_settings, providers={"vtpass": adapter}, http=http)
    window = (settlement.PAY_START_LIMIT + timedelta(seconds=adapter.max_pay_seconds)).total_seconds()
    assert window == 18  # 10 s to leave + 1 pool + 5 connect + 1 write + 1 read
    try:
        buyer = await new_buyer(sessionmaker, fund=START)
        with pytest.raises(asyncio.CancelledError):
            await harness.service.buy(buyer, airtime("08012345679"))
        async with sessionmaker() as session:
            [purchase] = (await session.execute(select(Purchase))).scalars().all()
        assert purchase.status == PENDING and purchase.exchanges == []
        await age_pay_attempt(sessionmaker, purchase.id, 5)  # overdue, but /pay may still be in flight
        report = await harness.service.sweep(grace_seconds=0, inline=True)
        assert (report.due, report.in_flight) == (0, 1)
        await age_pay_attempt(sessionmaker, purchase.id, 30)  # 35 s: /pay is over, its 30 s grace is not
        report = await harness.service.sweep(grace_seconds=0, inline=True)
        assert (report.due, report.in_flight, report.requeried) == (1, 0, 1)
        current = await load(sessionmaker, purchase.id)
        assert current.status == PENDING and current.provider_code == "015"
        await age_pay_attempt(sessionmaker, purchase.id, 15)  # 50 s > 18 + 30
        done = await harness.service.requery(purchase.id, source="worker", attempt=2)
        assert done is not None and done.status == FAILED
    finally:
        await harness.aclose()
    assert sim.pay_requests() == []
    assert (await money(sessionmaker, buyer.id)).wallet == START
    await assert_reconciled(sessionmaker)


class _Stalls(StubProvider):
    max_pay_seconds = 0.5

    async def purchase(self, order):  # type: ignore[no-untyped-def]
        await asyncio.sleep(30)  # a body trickling in forever: every read within its timeout
        return await super().purchase(order)


async def test_pay_is_cut_off_at_its_longest_wait_and_stays_pending(db, sessionmaker, settings) -> None:
    import dataclasses

    harness = make_service(
        sessionmaker, dataclasses.replace(settings, vtu_provider="stub"), providers={"stub": _Stalls()}
    )
    buyer = await new_buyer(sessionmaker, fund=START)
    started = time.monotonic()
    try:
        purchase = await harness.service.buy(buyer, airtime("08011111111"))
    finally:
        await harness.aclose()
    assert time.monotonic() - started < 10
    assert purchase.status == PENDING and "0.5 s" in (purchase.provider_message or "")
    assert (await money(sessionmaker, buyer.id, "stub")).in_flight == 50_000  # never refunded blind
    await assert_reconciled(sessionmaker)


async def test_a_pay_that_cannot_leave_in_time_is_not_sent_and_refunded(
    vt: Harness, sessionmaker, sim, monkeypatch
) -> None:
    monkeypatch.setattr(settlement, "PAY_START_LIMIT", timedelta(0))  # recording it "took too long"
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("08011111111"))
    assert purchase.status == FAILED and "Not sent" in (purchase.provider_message or "")
    assert sim.pay_requests() == []
    assert (await money(sessionmaker, buyer.id)).wallet == START
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"refund:{purchase.id}",
    ]
    await assert_reconciled(sessionmaker)
