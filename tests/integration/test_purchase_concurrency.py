"""Money invariants under concurrency: no overspend, idempotent retries, one transition per purchase."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.ledger.models import LedgerAccount, LedgerTransaction
from app.vtu.config import VtuConfig
from app.vtu.errors import IdempotencyMismatch, InsufficientFunds
from app.vtu.models import FAILED, PENDING, REVERSED, SUCCESSFUL, Purchase
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import StubProvider
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    Buyer,
    Harness,
    age_pay_attempt,
    assert_reconciled,
    count_purchases,
    make_service,
    money,
    new_buyer,
    postings_for,
)

# pytest fixtures shared by the purchase-engine tests
sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt


TINY = VtuConfig(airtime_min_kobo=100)  # allow N1 airtime so 100 kobo purchases are valid


async def test_100_concurrent_purchases_from_1000_kobo_accept_exactly_10(db, sessionmaker, settings) -> None:
    harness = make_service(
        sessionmaker, dataclasses.replace(settings, vtu_provider="stub"), config=TINY,
        providers={"stub": StubProvider(latency_seconds=0.01)},
    )  # fmt: skip
    buyer = await new_buyer(sessionmaker, fund=1_000)
    request = PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=100)

    async def attempt() -> str:
        try:
            return (await harness.service.buy(buyer, request)).status
        except InsufficientFunds:
            return "insufficient"

    try:
        results = await asyncio.gather(*(attempt() for _ in range(100)))
    finally:
        await harness.aclose()
    assert results.count(SUCCESSFUL) == 10 and results.count("insufficient") == 90
    m = await money(sessionmaker, buyer.id, "stub")
    assert (m.wallet, m.in_flight, m.float_) == (0, 0, 1_000)
    assert await count_purchases(sessionmaker) == 10  # refused attempts left nothing behind
    await assert_reconciled(sessionmaker)


async def test_insufficient_funds_is_typed_and_writes_nothing(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=10_000)
    with pytest.raises(InsufficientFunds) as caught:
        await vt.service.buy(
            buyer, PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=50_000)
        )
    assert caught.value.price_kobo == 50_000 and caught.value.balance_kobo == 10_000
    assert await count_purchases(sessionmaker) == 0
    assert sim.pay_requests() == []  # the provider was never called
    async with sessionmaker() as session:
        kinds = (await session.execute(select(LedgerTransaction.kind))).scalars().all()
    assert kinds == ["funding"]
    await assert_reconciled(sessionmaker)


async def test_a_buyer_without_a_wallet_yet_gets_insufficient_funds(vt: Harness, sessionmaker, sim) -> None:
    """purchase_open finds no wallet: the wallet is opened and the purchase refused on its empty balance,
    not failed with a server error; nothing is recorded."""
    user_id = uuid.uuid4()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO users (id, email, full_name, password_hash, account_reference, referral_code,"
                " created_at, updated_at) VALUES (:id, :email, '', 'x', :ref, :code, now(), now())"
            ),
            {"id": user_id, "email": f"nowallet-{user_id.hex[:8]}@example.ng", "ref": f"W{user_id.hex[:20]}",
             "code": f"W{user_id.hex[:12]}"},
        )  # fmt: skip
    with pytest.raises(InsufficientFunds) as caught:
        await vt.service.buy(
            Buyer(user_id, "customer"),
            PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=10_000),
        )
    assert caught.value.balance_kobo == 0
    assert await count_purchases(sessionmaker) == 0
    assert sim.pay_requests() == []
    async with sessionmaker() as session:
        wallets = (
            await session.execute(
                select(func.count()).select_from(LedgerAccount).where(LedgerAccount.user_id == user_id)
            )
        ).scalar_one()
    assert wallets == 1  # opened on the way, empty
    await assert_reconciled(sessionmaker)


async def test_idempotency_key_replays_and_races_share_one_purchase(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    request = PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=50_000)
    racing = await asyncio.gather(
        *(vt.service.buy(buyer, request, channel="api", idempotency_key="order-42") for _ in range(8))
    )
    assert len({p.id for p in racing}) == 1  # every racer got THE purchase, none an error
    again = await vt.service.buy(buyer, request, channel="api", idempotency_key="order-42")
    assert again.id == racing[0].id and again.status == SUCCESSFUL
    assert len(sim.pay_requests()) == 1
    assert (await money(sessionmaker, buyer.id)).wallet == 950_000
    with pytest.raises(IdempotencyMismatch):
        other = dataclasses.replace(request, amount_kobo=60_000)
        await vt.service.buy(buyer, other, channel="api", idempotency_key="order-42")
    # The same key belongs to each user separately.
    stranger = await new_buyer(sessionmaker, fund=1_000_000)
    theirs = await vt.service.buy(stranger, request, channel="api", idempotency_key="order-42")
    assert theirs.id != again.id
    await assert_reconciled(sessionmaker)


@pytest.mark.parametrize("final", ["delivered", "failed"])
async def test_callback_job_and_sweep_racing_apply_one_transition(
    vt: Harness, sessionmaker, sim, final
) -> None:
    sim.configure("08055555555", pending_answers=1, outcome=final, latency=0.2, on=("requery",))
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await vt.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone="08055555555", amount_kobo=50_000)
    )
    assert purchase.status == PENDING
    await age_pay_attempt(sessionmaker, purchase.id, 120)  # the sweep sees the requery as overdue
    results = await asyncio.gather(
        vt.service.requery(purchase.id, source="worker", attempt=1),  # the scheduled job
        vt.service.requery(purchase.id, source="callback"),  # a transaction-update callback
        vt.service.sweep(grace_seconds=0, inline=True),  # the sweep, requerying inline
        vt.service.requery(purchase.id, source="staff"),  # a staff "check now"
    )
    assert results[0] is not None
    async with sessionmaker() as session:
        row = await session.get(Purchase, purchase.id)
        assert row is not None
        expected = SUCCESSFUL if final == "delivered" else FAILED
        assert row.status == expected
        sources = [e["source"] for e in row.exchanges if e["kind"] == "requery"]
        assert sorted(sources) == ["callback", "staff", "sweep", "worker"]  # all four really asked
        keys = await postings_for(sessionmaker, purchase.id)
    second = "delivery" if final == "delivered" else "refund"
    assert keys == [f"purchase:{purchase.id}", f"{second}:{purchase.id}"]  # one transition, one posting
    m = await money(sessionmaker, buyer.id)
    assert m.wallet == (950_000 if final == "delivered" else 1_000_000) and m.in_flight == 0
    await assert_reconciled(sessionmaker)


async def test_concurrent_reversal_notices_refund_once(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await vt.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=50_000)
    )
    assert purchase.status == SUCCESSFUL
    sim.reverse(purchase.request_id)
    done = await asyncio.gather(*(vt.service.requery(purchase.id, source="callback") for _ in range(10)))
    assert {p.status for p in done if p} == {REVERSED}
    async with sessionmaker() as session:
        refunds = (
            await session.execute(
                select(func.count()).where(LedgerTransaction.idempotency_key == f"refund:{purchase.id}")
            )
        ).scalar_one()
    assert refunds == 1
    assert (await money(sessionmaker, buyer.id)).wallet == 1_000_000
    await assert_reconciled(sessionmaker)


async def test_staff_decisions_racing_a_requery_apply_one_transition(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await vt.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone="500000000000", amount_kobo=50_000)
    )
    assert purchase.status == PENDING  # unexpected answer: unknown
    results = await asyncio.gather(
        vt.service.resolve_manually(
            purchase.id, delivered=False, staff="staff:ada", note="VTpass says failed"
        ),
        vt.service.resolve_manually(purchase.id, delivered=True, staff="staff:bayo", note="customer got it"),
        vt.service.requery(purchase.id, source="worker", attempt=1),
    )
    applied = [r for r in results[:2] if r is not None and r.changed]
    assert len(applied) == 1  # one decision won; the other found the purchase already final
    final = applied[0].purchase.status
    keys = await postings_for(sessionmaker, purchase.id)
    assert len(keys) == 2 and keys[0] == f"purchase:{purchase.id}"
    assert keys[1] == (f"delivery:{purchase.id}" if final == SUCCESSFUL else f"refund:{purchase.id}")
    m = await money(sessionmaker, buyer.id)
    assert m.in_flight == 0 and m.wallet == (950_000 if final == SUCCESSFUL else 1_000_000)
    await assert_reconciled(sessionmaker)


class _LockProbingStub(StubProvider):
    """While /pay (or a requery) is "on the wire", look at the database from another connection: the
    purchase must already be committed (visible) and neither its row nor the buyer's wallet may be held by
    any open transaction (FOR UPDATE NOWAIT would fail). Findings are collected, not raised, so the purchase
    path itself runs unchanged."""

    def __init__(self, engine: Any) -> None:
        super().__init__(latency_seconds=0.02)
        self.engine = engine
        self.findings: list[str] = []
        self.probes = 0

    async def _probe(self, request_id: str) -> None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT p.id, a.id AS wallet FROM purchases p JOIN ledger_accounts a"
                        " ON a.user_id = p.user_id AND a.kind = 'wallet' WHERE p.request_id = :rid"
                    ),
                    {"rid": request_id},
                )
            ).first()
            if row is None:
                self.findings.append(f"{request_id}: purchase not committed before the provider call")
                return
            for table, key in (("purchases", row.id), ("ledger_accounts", row.wallet)):
                try:
                    await conn.execute(
                        text(f"SELECT 1 FROM {table} WHERE id = :id FOR UPDATE NOWAIT"), {"id": key}
                    )
                except DBAPIError:
                    self.findings.append(f"{request_id}: {table} row locked during the provider call")
            await conn.rollback()
        self.probes += 1

    async def purchase(self, order):  # type: ignore[no-untyped-def]
        await self._probe(order.request_id)
        return await super().purchase(order)

    async def requery(self, request_id, *, paid_at, needs_token=False):  # type: ignore[no-untyped-def]
        await self._probe(request_id)
        return await super().requery(request_id, paid_at=paid_at)


async def test_no_transaction_is_open_across_a_provider_call(
    db, sessionmaker, owner_engine, settings
) -> None:
    """30 buyers purchase at once (delivered, failed and pending outcomes), then the pending ones are
    requeried: during every provider call the purchase is committed and nothing holds its rows."""
    probe = _LockProbingStub(owner_engine)  # locking ledger rows needs more than the app role
    harness = make_service(
        sessionmaker, dataclasses.replace(settings, vtu_provider="stub"), providers={"stub": probe}
    )
    buyers = [await new_buyer(sessionmaker, fund=100_000) for _ in range(30)]
    phones = ["08011111111", "201000000000", "08099999999"]  # delivered, pending, failed
    try:
        bought = await asyncio.gather(
            *(
                harness.service.buy(
                    b, PurchaseRequest(service_id="mtn", phone=phones[i % 3], amount_kobo=10_000)
                )
                for i, b in enumerate(buyers)
            )
        )
        pending = [p for p in bought if p.status == PENDING]
        await asyncio.gather(*(harness.service.requery(p.id, source="test") for p in pending))
    finally:
        await harness.aclose()
    assert {p.status for p in bought} == {SUCCESSFUL, PENDING, FAILED}
    assert probe.probes == 30 + len(pending)
    assert probe.findings == []
    await assert_reconciled(sessionmaker)
