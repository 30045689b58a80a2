"""Safe provider failover and the VTpass 019 hold (docs/architecture.md, "Provider failover"), end to end:
PurchaseService -> the real VTpass and ClubKonnect adapters -> HTTP -> both simulators, real PostgreSQL.

A purchase moves to the next provider only when the current one definitely placed no order; anything
ambiguous stays pending on the first. One purchase, one debit, at most one refund, reconcile clean."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from app.vtu.models import FAILED, PENDING, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import Outcome, ProviderResult
from app.vtu.transitions import exchange_record, utcnow
from tests.integration.failover_fixtures import Servers, attempt_rows, both_servers, two_provider_harness
from tests.integration.purchase_fixtures import (
    Harness,
    age_pay_attempt,
    assert_reconciled,
    load,
    money,
    new_buyer,
    postings_for,
)

__all__ = ["both_servers"]  # the module-scoped simulators fixture

START = 1_000_000
AMOUNT = 20_000
PHONE = "08031234567"
VT_FIRST = {"mtn": ("vtpass", "clubkonnect")}
CK_FIRST = {"mtn": ("clubkonnect", "vtpass")}


@pytest.fixture
def servers(both_servers: Servers) -> Servers:
    vt, _, ck, _ = both_servers
    vt.reset()
    ck.reset()
    vt.configure(outcome="delivered")  # ordinary numbers deliver (the sandbox would fail them)
    return both_servers


@pytest_asyncio.fixture(loop_scope="session")
async def shop(db: Any, sessionmaker: Any, settings: Any, servers: Servers) -> AsyncIterator[Harness]:
    harness = two_provider_harness(sessionmaker, settings, servers, order=VT_FIRST)
    try:
        yield harness
    finally:
        await harness.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def ck_first(db: Any, sessionmaker: Any, settings: Any, servers: Servers) -> AsyncIterator[Harness]:
    harness = two_provider_harness(sessionmaker, settings, servers, order=CK_FIRST)
    try:
        yield harness
    finally:
        await harness.aclose()


def airtime(phone: str = PHONE, amount: int = AMOUNT) -> PurchaseRequest:
    return PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=amount)


async def _settle(h: Harness, purchase_id: uuid.UUID, rounds: int = 4) -> Any:
    """Run the purchase's next scheduled requeries (as the worker would) until it is final."""
    current = await h.service.get(purchase_id)
    for _ in range(rounds):
        if current.status != PENDING:
            break
        current = await h.service.requery(purchase_id, source="worker", attempt=current.attempts + 1)
    return current


async def test_vtpass_018_fails_over_to_clubkonnect_one_debit_no_refund(shop, sessionmaker, servers) -> None:
    vt, _, ck, _ = servers
    vt.configure(PHONE, pay_code="018")
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(buyer, airtime())
    # VTpass refused with nothing placed: the same purchase went on to ClubKonnect at once (order received).
    assert (purchase.status, purchase.provider_slug, purchase.attempt_no) == (PENDING, "clubkonnect", 2)
    assert purchase.provider_code == "100" and purchase.send_at is None
    done = await _settle(shop, purchase.id)
    assert done.status == SUCCESSFUL
    rows = await attempt_rows(sessionmaker, purchase.id)
    assert [(r.n, r.provider_slug, r.outcome, r.code) for r in rows] == [
        (1, "vtpass", "nothing_placed", "018"),
        (2, "clubkonnect", None, None),
    ]
    first_id, second_id = rows[0].request_id, rows[1].request_id
    assert first_id != second_id == done.request_id and rows[1].started_at is not None
    assert len(vt.pay_requests(first_id)) == 1 and vt.transactions == {}
    assert len(ck.order_requests(second_id)) == 1 and ck.duplicates == 0
    # Each attempt's exchanges name its request id; the customer sees one purchase.
    assert {x.get("request_id") for x in done.exchanges if x["kind"] == "pay"} == {first_id, second_id}
    assert len(await shop.service.list_for_user(buyer.id)) == 1
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"delivery:{purchase.id}",
    ]
    ck_money = await money(sessionmaker, buyer.id, "clubkonnect")
    assert (ck_money.wallet, ck_money.in_flight, ck_money.float_) == (START - AMOUNT, 0, done.cost_kobo)
    assert (await money(sessionmaker, buyer.id, "vtpass")).float_ == 0
    # A callback about the first attempt still finds the purchase (and changes nothing).
    from app.vtu import reads

    async with sessionmaker() as session:
        assert await reads.by_request_id(session, first_id) == purchase.id
    await assert_reconciled(sessionmaker)


async def test_clubkonnect_4xx_fails_over_to_vtpass(ck_first, sessionmaker, servers) -> None:
    vt, _, ck, _ = servers
    ck.configure(PHONE, order_code="417")
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await ck_first.service.buy(buyer, airtime())
    assert (purchase.status, purchase.provider_slug, purchase.attempt_no) == (SUCCESSFUL, "vtpass", 2)
    assert ck.orders == {} and len(vt.delivered_to(PHONE)) == 1
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"delivery:{purchase.id}",
    ]
    assert (await money(sessionmaker, buyer.id, "vtpass")).float_ == purchase.cost_kobo
    await assert_reconciled(sessionmaker)


@pytest.mark.parametrize(
    "knobs",
    [
        {"hang": 3.0, "process": False},  # timeout: it did not place the order, but we cannot know
        {"hang": 3.0, "process": True},  # timeout that placed it
        {"http_status": 503, "process": False},
        {"pay_code": "099"},
    ],
    ids=["timeout-not-placed", "timeout-placed", "http-503", "code-099"],
)
async def test_ambiguous_vtpass_answers_stay_pending_on_vtpass(shop, sessionmaker, servers, knobs) -> None:
    vt, _, ck, _ = servers
    vt.configure(PHONE, outcome="delivered", **knobs)
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(buyer, airtime())
    assert (purchase.status, purchase.provider_slug, purchase.attempt_no) == (PENDING, "vtpass", 1)
    # Requeries inside the 015 grace never fail over.
    after = await shop.service.requery(purchase.id, source="worker", attempt=1)
    assert after is not None and after.provider_slug == "vtpass" and after.attempt_no == 1
    assert after.status in (PENDING, SUCCESSFUL)
    assert ck.order_requests() == [] and await attempt_rows(sessionmaker, purchase.id) == []
    assert (await money(sessionmaker, buyer.id)).wallet == START - AMOUNT
    await assert_reconciled(sessionmaker)


@pytest.mark.parametrize(
    "knobs",
    [
        {"outcome": "pending", "pending_code": "100"},  # ORDER_RECEIVED for ever
        {"http_status": 500, "process": False},  # IIS page, nothing placed (we cannot know)
        {"hang": 3.0, "process": False},
        {"outcome": "pending", "pending_code": "600"},  # ON_HOLD
    ],
    ids=["100", "iis-500", "timeout", "600"],
)
async def test_ambiguous_clubkonnect_answers_stay_pending_on_clubkonnect(
    ck_first, sessionmaker, servers, knobs
) -> None:
    vt, _, ck, _ = servers
    ck.configure(PHONE, **knobs)
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await ck_first.service.buy(buyer, airtime())
    assert (purchase.status, purchase.provider_slug) == (PENDING, "clubkonnect")
    after = await ck_first.service.requery(purchase.id, source="worker", attempt=1)
    assert after is not None and (after.status, after.provider_slug, after.attempt_no) == (
        PENDING,
        "clubkonnect",
        1,
    )
    assert vt.pay_requests() == [] and await attempt_rows(sessionmaker, purchase.id) == []
    await assert_reconciled(sessionmaker)


async def test_unknown_request_id_after_the_grace_fails_over(shop, sessionmaker, servers) -> None:
    vt, _, ck, _ = servers
    vt.configure(PHONE, http_status=503, process=False)  # /pay never reached VTpass's books
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(buyer, airtime())
    early = await shop.service.requery(purchase.id, source="worker", attempt=1)
    assert early is not None and (early.status, early.provider_code, early.attempt_no) == (PENDING, "015", 1)
    await age_pay_attempt(sessionmaker, purchase.id, 40)
    moved = await shop.service.requery(purchase.id, source="worker", attempt=2)
    assert moved is not None and (moved.provider_slug, moved.attempt_no, moved.status) == (
        "clubkonnect",
        2,
        PENDING,
    )
    # The failing-over requery counts as done: the new attempt's requeries number after it.
    assert moved.attempts == 2 and moved.requery_base == 2
    assert shop.scheduler.calls[-1][:2] == (purchase.id, 3)
    done = await _settle(shop, purchase.id)
    assert done.status == SUCCESSFUL and len(ck.delivered_to(PHONE)) == 1
    rows = await attempt_rows(sessionmaker, purchase.id)
    assert [(r.provider_slug, r.outcome, r.code) for r in rows] == [
        ("vtpass", "nothing_placed", "015"),
        ("clubkonnect", None, None),
    ]
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"delivery:{purchase.id}",
    ]
    await assert_reconciled(sessionmaker)


async def test_no_candidate_left_fails_with_one_refund(shop, sessionmaker, servers) -> None:
    vt, _, ck, _ = servers
    vt.configure(PHONE, pay_code="091")
    ck.configure(PHONE, order_code="409")
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(buyer, airtime())
    assert (purchase.status, purchase.provider_slug, purchase.provider_code) == (FAILED, "clubkonnect", "409")
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"refund:{purchase.id}",
    ]
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight) == (START, 0)
    assert [r.outcome for r in await attempt_rows(sessionmaker, purchase.id)] == ["nothing_placed", None]
    # Late requeries of the failed purchase change nothing.
    again = await shop.service.requery(purchase.id, source="staff")
    assert again is not None and again.status == FAILED
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"refund:{purchase.id}",
    ]
    await assert_reconciled(sessionmaker)


async def test_single_provider_nothing_placed_fails_and_refunds_as_before(
    db, sessionmaker, settings, servers
) -> None:
    vt, *_ = servers
    vt.configure(PHONE, pay_code="016")
    h = two_provider_harness(sessionmaker, settings, servers, order={"mtn": ("vtpass",)})
    try:
        buyer = await new_buyer(sessionmaker, fund=START)
        purchase = await h.service.buy(buyer, airtime())
        assert (purchase.status, purchase.attempt_no) == (FAILED, 1)
        assert (await money(sessionmaker, buyer.id)).wallet == START
        assert await attempt_rows(sessionmaker, purchase.id) == []
    finally:
        await h.aclose()
    await assert_reconciled(sessionmaker)


async def test_racing_answers_start_one_attempt(shop, sessionmaker, servers) -> None:
    """The requery job, the sweep (twice), staff "check now" and a callback all learn at once that VTpass
    holds no such order: exactly one starts attempt 2 and sends it; ClubKonnect gets one order."""
    vt, _, ck, _ = servers
    vt.configure(PHONE, http_status=503, process=False)
    ck.configure(PHONE, latency=0.2)  # the new attempt's /pay is in flight while the others answer
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(buyer, airtime())
    await age_pay_attempt(sessionmaker, purchase.id, 40)
    callback = {"type": "transaction-update", "data": {"requestId": purchase.request_id, "code": "000"}}
    results = await asyncio.gather(
        shop.service.requery(purchase.id, source="worker", attempt=1),
        shop.service.requery(purchase.id, source="staff"),
        shop.service.handle_callback(callback),
        shop.service.sweep(inline=True, grace_seconds=0),
        shop.service.sweep(inline=True, grace_seconds=0),
        return_exceptions=True,
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    rows = await attempt_rows(sessionmaker, purchase.id)
    assert [(r.n, r.provider_slug) for r in rows] == [(1, "vtpass"), (2, "clubkonnect")]
    assert len(ck.order_requests()) == 1 and ck.duplicates == 0
    current = await load(sessionmaker, purchase.id)
    assert current.attempt_no == 2 and current.request_id == rows[1].request_id
    done = await _settle(shop, purchase.id)
    assert done.status == SUCCESSFUL
    # Losers logged their answers as not applied.
    assert any(x.get("applied") is False for x in done.exchanges)
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"delivery:{purchase.id}",
    ]
    await assert_reconciled(sessionmaker)


async def test_late_answers_about_an_earlier_attempt_change_nothing(shop, sessionmaker, servers) -> None:
    vt, _, ck, _ = servers
    vt.configure(PHONE, pay_code="018")
    ck.configure(PHONE, outcome="pending")
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(buyer, airtime())
    rows = await attempt_rows(sessionmaker, purchase.id)
    old_id = rows[0].request_id
    settlement = shop.service._settlement
    # A late "failed" for attempt 1 must not fail the purchase whose attempt 2 is in flight ...
    failed = ProviderResult(Outcome.FAILED, "016", "late", nothing_placed=True)
    record = exchange_record("requery", "worker", utcnow(), failed, request_id=old_id)
    applied = await settlement.apply(purchase.id, failed, record, attempt=None, request_id=old_id)
    assert applied is not None and not applied.changed and applied.purchase.status == PENDING
    # ... and a provider that now claims attempt 1 delivered gets the purchase flagged, not delivered twice.
    lie = ProviderResult(Outcome.DELIVERED, "000", "late delivered")
    record = exchange_record("requery", "worker", utcnow(), lie, request_id=old_id)
    applied = await settlement.apply(purchase.id, lie, record, attempt=None, request_id=old_id)
    assert applied is not None and not applied.changed
    current = await load(sessionmaker, purchase.id)
    assert (current.status, current.attempt_no, current.needs_attention) == (PENDING, 2, True)
    assert "earlier attempt" in (current.attention_reason or "")
    assert len(await attempt_rows(sessionmaker, purchase.id)) == 2
    assert await postings_for(sessionmaker, purchase.id) == [f"purchase:{purchase.id}"]
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight) == (START - AMOUNT, AMOUNT)
    await assert_reconciled(sessionmaker)


async def test_019_is_held_then_sent_again_and_delivered(db, sessionmaker, settings, servers) -> None:
    vt = servers[0]
    vt.duplicate_window = 2.0  # VTpass: 30 s; the same rule, shorter
    h = two_provider_harness(
        sessionmaker, settings, servers, order={"mtn": ("vtpass",)}, duplicate_hold_seconds=3
    )
    try:
        buyer = await new_buyer(sessionmaker, fund=START)
        first = await h.service.buy(buyer, airtime())
        second = await h.service.buy(buyer, airtime())
        assert first.status == SUCCESSFUL
        # Not the customer's error: held, not refunded, a new attempt due after the window.
        assert (second.status, second.attempt_no, second.provider_slug) == (PENDING, 2, "vtpass")
        assert second.send_at is not None and second.paid_at is None
        assert vt.duplicates_refused == 1
        assert h.scheduler.calls[-1][0] == second.id and h.scheduler.calls[-1][2] == second.send_at
        # The job firing early sends nothing.
        early = await h.service.requery(second.id, source="worker", attempt=second.attempts + 1)
        assert early is not None and early.send_at is not None and len(vt.pay_requests()) == 2
        await asyncio.sleep(max(0.0, (second.send_at - utcnow()).total_seconds()) + 0.1)
        sent = await h.service.requery(second.id, source="worker", attempt=second.attempts + 1)
        assert sent is not None and sent.status == SUCCESSFUL and sent.send_at is None
        assert len(vt.delivered_to(PHONE)) == 2 and len(vt.pay_requests()) == 3
        rows = await attempt_rows(sessionmaker, second.id)
        assert [(r.provider_slug, r.outcome, r.code) for r in rows] == [
            ("vtpass", "held", "019"),
            ("vtpass", None, None),
        ]
        for p in (first, second):
            assert await postings_for(sessionmaker, p.id) == [f"purchase:{p.id}", f"delivery:{p.id}"]
        assert (await money(sessionmaker, buyer.id)).wallet == START - 2 * AMOUNT
    finally:
        await h.aclose()
    await assert_reconciled(sessionmaker)


async def test_019_goes_to_the_next_provider_at_once_when_there_is_one(shop, sessionmaker, servers) -> None:
    vt, _, ck, _ = servers
    vt.duplicate_window = 30.0
    buyer = await new_buyer(sessionmaker, fund=START)
    first = await shop.service.buy(buyer, airtime())
    second = await shop.service.buy(buyer, airtime())
    assert first.status == SUCCESSFUL and first.provider_slug == "vtpass"
    assert (second.provider_slug, second.attempt_no, second.send_at) == ("clubkonnect", 2, None)
    done = await _settle(shop, second.id)
    assert done.status == SUCCESSFUL and len(ck.delivered_to(PHONE)) == 1
    assert len(vt.delivered_to(PHONE)) == 1
    await assert_reconciled(sessionmaker)


async def test_the_sweep_sends_a_due_attempt_whose_sender_died(shop, sessionmaker, servers) -> None:
    """The decision is committed before /pay: if the process dies in between, the sweep sends it (once)."""
    from app.vtu import failover

    vt, _, ck, _ = servers
    ck.configure(PHONE, outcome="pending")
    vt.configure(PHONE, http_status=503, process=False)
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await shop.service.buy(buyer, airtime())
    view = await shop.service.get(purchase.id)
    result = ProviderResult(Outcome.FAILED, "015", "unknown", nothing_placed=True)
    async with shop.service._ctx.engine.begin() as conn:  # the decision alone, as if we died right after
        switched = await failover.switch(
            conn, view, result, exchange_record("requery", "worker", utcnow(), result),
            slug="clubkonnect", new_request_id="202612071200abcdefabcdef", send_at=utcnow(), attempt=None,
            held=False,
        )  # fmt: skip
    assert switched is not None and switched.send_at is not None
    assert ck.order_requests() == []
    reports = await asyncio.gather(
        shop.service.sweep(inline=True, grace_seconds=0), shop.service.sweep(inline=True, grace_seconds=0)
    )
    assert sum(r.requeried for r in reports) >= 1
    assert len(ck.order_requests()) == 1 and ck.duplicates == 0
    current = await load(sessionmaker, purchase.id)
    assert (
        current.send_at is None and current.paid_at is not None and current.request_id == switched.request_id
    )
    await assert_reconciled(sessionmaker)


async def test_failover_is_not_offered_for_a_plan_the_next_provider_does_not_sell(
    db, sessionmaker, settings, servers
) -> None:
    """Data plan codes are per provider: a VTpass plan is never sent to ClubKonnect."""
    from app.vtu.plans import sync_plans

    vt, *_ = servers
    number = "08031112222"
    vt.configure(number, pay_code="018")
    h = two_provider_harness(sessionmaker, settings, servers, order={"mtn-data": ("vtpass", "clubkonnect")})
    try:
        async with sessionmaker() as session:
            await sync_plans(session, h.registry.get("vtpass"), "mtn-data")
        async with sessionmaker() as session:
            from sqlalchemy import text

            code = (
                await session.execute(
                    text(
                        "SELECT variation_code FROM plans WHERE provider_slug = 'vtpass'"
                        " AND service_id = 'mtn-data' AND active ORDER BY provider_price_kobo LIMIT 1"
                    )
                )
            ).scalar_one()
        buyer = await new_buyer(sessionmaker, fund=START)
        purchase = await h.service.buy(
            buyer, PurchaseRequest(service_id="mtn-data", phone=number, variation_code=code)
        )
        assert (purchase.status, purchase.attempt_no) == (FAILED, 1)
        assert (await money(sessionmaker, buyer.id)).wallet == START
    finally:
        await h.aclose()
    await assert_reconciled(sessionmaker)


async def test_the_pay_answer_racing_checks_and_callbacks_starts_one_attempt(
    shop, sessionmaker, servers
) -> None:
    """A slow /pay that ends in 018 while staff, the sweep and a callback ask about the purchase: while /pay
    is in flight VTpass's 015 is not final, so only the /pay answer moves it on; one ClubKonnect order."""
    vt, _, ck, _ = servers
    vt.configure(PHONE, pay_code="018", latency=0.6)
    buyer = await new_buyer(sessionmaker, fund=START)
    buying = asyncio.ensure_future(shop.service.buy(buyer, airtime()))
    for _ in range(50):  # wait until the purchase is recorded and its /pay is on the wire
        found = await shop.service.list_for_user(buyer.id)
        if found and vt.pay_requests():
            break
        await asyncio.sleep(0.02)
    (opened,) = found
    callback = {"type": "transaction-update", "data": {"requestId": opened.request_id}}
    others = await asyncio.gather(
        shop.service.requery(opened.id, source="staff"),
        shop.service.handle_callback(callback),
        shop.service.sweep(inline=True, grace_seconds=0),
        return_exceptions=True,
    )
    assert not [r for r in others if isinstance(r, BaseException)], others
    purchase = await buying
    assert (purchase.provider_slug, purchase.attempt_no) == ("clubkonnect", 2)
    done = await _settle(shop, purchase.id)
    assert done.status == SUCCESSFUL
    assert len(ck.order_requests()) == 1 and ck.duplicates == 0 and len(vt.pay_requests()) == 1
    assert len(await attempt_rows(sessionmaker, purchase.id)) == 2
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"delivery:{purchase.id}",
    ]
    await assert_reconciled(sessionmaker)


async def test_a_held_exam_purchase_is_sent_again_with_its_quantity(
    db, sessionmaker, settings, servers
) -> None:
    """The quantity is stored with the purchase (purchase_open's p_quantity): a later attempt buys the same
    number of PINs the customer paid for, never the provider's default of one."""
    from app.vtu.plans import sync_plans

    vt = servers[0]
    vt.duplicate_window = 2.0
    h = two_provider_harness(
        sessionmaker, settings, servers, order={"waec": ("vtpass",)}, duplicate_hold_seconds=3
    )
    try:
        async with sessionmaker() as session:
            await sync_plans(session, h.registry.get("vtpass"), "waec")
        buyer = await new_buyer(sessionmaker, fund=START * 10)
        order = PurchaseRequest(service_id="waec", variation_code="waecdirect", phone=PHONE, quantity=3)
        first = await h.service.buy(buyer, order)
        second = await h.service.buy(buyer, order)
        assert first.status == SUCCESSFUL and first.quantity == 3
        assert (second.status, second.attempt_no, second.quantity) == (PENDING, 2, 3)
        await asyncio.sleep(max(0.0, (second.send_at - utcnow()).total_seconds()) + 0.1)
        sent = await h.service.requery(second.id, source="worker", attempt=second.attempts + 1)
        assert sent is not None and sent.status == SUCCESSFUL
        [resent] = vt.pay_requests(sent.request_id)
        assert resent.body["quantity"] == 3  # the held attempt buys three PINs, as paid for
        assert (
            await money(sessionmaker, buyer.id)
        ).wallet == START * 10 - first.amount_kobo - second.amount_kobo
    finally:
        await h.aclose()
    await assert_reconciled(sessionmaker)
