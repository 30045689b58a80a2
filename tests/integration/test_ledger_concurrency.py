"""Invariants under concurrency: every posting in its own session and transaction, committed for real, on
separate connections (a private pool of 25, so up to 25 postings are in flight at once)."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import func, select

from app.ledger.accounts import PURCHASES_IN_FLIGHT, system_account_id
from app.ledger.errors import InsufficientFunds
from app.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from app.ledger.posting import transfer
from app.ledger.reconcile import run_reconcile
from tests.integration.ledger_fixtures import balance_of, make_wallets, racing_sessionmaker


async def _post(sessionmaker, **kwargs):
    """One posting in its own session and transaction: 'ok', 'replayed', or the exception."""
    try:
        async with sessionmaker() as session:
            async with session.begin():
                result = await transfer(session, **kwargs)
            return "replayed" if result.replayed else "ok"
    except Exception as exc:
        return exc


async def _in_flight(sessionmaker) -> int:
    async with sessionmaker() as session, session.begin():
        return await system_account_id(session, PURCHASES_IN_FLIGHT)


async def test_200_concurrent_debits_of_100_against_1000_exactly_10_succeed(db, sessionmaker, settings):
    (wallet,) = await make_wallets(sessionmaker, 1, fund=1_000)
    in_flight = await _in_flight(sessionmaker)
    async with racing_sessionmaker(settings) as racing:
        outcomes = await asyncio.gather(
            *(
                _post(
                    racing,
                    key=f"purchase:{i}",
                    from_account=wallet,
                    to_account=in_flight,
                    amount=100,
                    kind="purchase",
                )
                for i in range(200)
            )
        )
    others = [o for o in outcomes if o != "ok" and not isinstance(o, InsufficientFunds)]
    assert others == []
    assert outcomes.count("ok") == 10
    assert sum(isinstance(o, InsufficientFunds) for o in outcomes) == 190
    assert await balance_of(sessionmaker, wallet) == 0
    assert await balance_of(sessionmaker, in_flight) == 1_000
    assert (await run_reconcile(sessionmaker)).ok


async def test_20_concurrent_postings_with_one_key_make_one_transaction(db, sessionmaker, settings):
    a, b = await make_wallets(sessionmaker, 2, fund=10_000)
    key = "api:reseller-7:abc"
    async with racing_sessionmaker(settings) as racing:
        outcomes = await asyncio.gather(
            *(
                _post(racing, key=key, from_account=a, to_account=b, amount=2_500, kind="transfer")
                for _ in range(20)
            )
        )
    assert sorted(map(str, outcomes)) == ["ok"] + ["replayed"] * 19
    count = (
        select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.idempotency_key == key)
    )
    assert (await db.execute(count)).scalar_one() == 1
    assert await balance_of(sessionmaker, a) == 7_500
    assert await balance_of(sessionmaker, b) == 12_500


async def test_crossing_transfers_do_not_deadlock(db, sessionmaker, settings):
    """A->B and B->A at once lock the two wallets in the same (id) order, so none waits on the other."""
    wallets = await make_wallets(sessionmaker, 4, fund=100_000)
    rng = random.Random(7)
    pairs = [rng.sample(wallets, 2) for _ in range(200)]
    async with racing_sessionmaker(settings) as racing:
        outcomes = await asyncio.gather(
            *(
                _post(
                    racing,
                    key=f"x:{i}",
                    from_account=s,
                    to_account=t,
                    amount=rng.randint(1, 500),
                    kind="transfer",
                )
                for i, (s, t) in enumerate(pairs)
            )
        )
    assert [o for o in outcomes if o != "ok"] == []
    total = select(func.sum(LedgerAccount.balance)).where(LedgerAccount.id.in_(wallets))
    assert (await db.execute(total)).scalar_one() == 400_000
    assert (await run_reconcile(sessionmaker)).ok


async def test_concurrent_get_or_create_of_a_system_account_makes_one_row(db, settings):
    async with racing_sessionmaker(settings) as racing:

        async def resolve() -> int:
            async with racing() as session, session.begin():
                return await system_account_id(session, "suspense")

        ids = await asyncio.gather(*(resolve() for _ in range(20)))
    assert len(set(ids)) == 1
    rows = select(func.count()).select_from(LedgerAccount).where(LedgerAccount.code == "suspense")
    assert (await db.execute(rows)).scalar_one() == 1


async def test_system_account_takes_no_row_lock(db, sessionmaker):
    """While one posting to purchases-in-flight is uncommitted, others to it still go through at once."""
    wallets = await make_wallets(sessionmaker, 3, fund=1_000)
    in_flight = await _in_flight(sessionmaker)
    async with sessionmaker() as holder:
        await transfer(
            holder, key="held", from_account=wallets[0], to_account=in_flight, amount=10, kind="purchase"
        )
        # holder's transaction stays open; a hot row would make these wait on it
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(
                    _post(
                        sessionmaker,
                        key=f"p:{w}",
                        from_account=w,
                        to_account=in_flight,
                        amount=10,
                        kind="purchase",
                    )
                    for w in wallets[1:]
                )
            ),
            timeout=5,
        )
        assert outcomes == ["ok", "ok"]
        await holder.commit()
    entries = select(func.count()).select_from(LedgerEntry).where(LedgerEntry.account_id == in_flight)
    assert (await db.execute(entries)).scalar_one() == 3
