"""Ledger throughput: wallet-to-wallet transfers through the posting API vs pgbench tpcb-like.

    uv run just bench ledger [--seconds 15] [--workers 20] [--rounds 1]

In one run, on the same PostgreSQL server: 20 concurrent asyncio workers post transfers between 50 funded
wallets (each posting its own committed transaction through app.ledger.posting.transfer, i.e. a session,
BEGIN, one `ledger_post` statement, COMMIT), then pgbench's tpcb-like script with as many clients
(`pgbench -i`, then `-c 20 -j 2 -T 15`). Then the same transfers with 1,000 wallets, and purchase-like
postings (wallet -> the shared purchases-in-flight system account: a system account is not a hot row).
With --rounds N the 50-wallet run and pgbench alternate N times, so background load on a shared machine
hits both alike. The last line is the ratio of ledger postings/s (50 wallets) to pgbench tps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import uuid
from typing import Any

from bench.common import (
    LoadResult,
    PgbenchResult,
    describe,
    pgbench_database,
    run_async,
    run_workers,
    server,
    throwaway_database,
)

FUNDING_KOBO = 10_000_000_000  # per wallet: transfers of <= 100 kobo never run a wallet dry


async def _create_wallets(sessionmaker: Any, count: int) -> list[int]:
    """`count` users with funded wallets (one multi-leg funding transaction from Monnify clearing)."""
    from sqlalchemy import text

    from app.ledger.accounts import MONNIFY_CLEARING, resolve_accounts, system_account_id
    from app.ledger.posting import Leg, post_transaction

    async with sessionmaker() as session, session.begin():
        rows = await session.execute(
            text(
                "INSERT INTO users (id, email, full_name, password_hash, account_reference, referral_code,"
                " created_at, updated_at)"
                " SELECT gen_random_uuid(), 'bench' || g || '-' || :tag || '@example.ng', '', 'x',"
                " left(:tag || g, 32), left(:tag || g, 16), now(), now() FROM generate_series(1, :n) g"
                " RETURNING id"
            ),
            {"n": count, "tag": uuid.uuid4().hex[:8]},
        )
        opened = await resolve_accounts(session, wallets=rows.scalars().all())
        wallets = list(opened.wallets.values())
        clearing = await system_account_id(session, MONNIFY_CLEARING)
        await post_transaction(
            session,
            key=f"bench:funding:{uuid.uuid4()}",
            kind="funding",
            legs=[Leg(clearing, -FUNDING_KOBO * count), *(Leg(w, FUNDING_KOBO) for w in wallets)],
            memo="benchmark funding",
        )
    return wallets


async def _transfers(sessionmaker: Any, wallets: list[int], *, workers: int, seconds: float) -> LoadResult:
    from app.ledger.posting import transfer

    async def one(_: int) -> None:
        source, target = random.sample(wallets, 2)
        async with sessionmaker() as session, session.begin():
            await transfer(
                session,
                key=f"bench:{uuid.uuid4()}",
                from_account=source,
                to_account=target,
                amount=random.randint(1, 100),
                kind="transfer",
            )

    return await run_workers(one, workers=workers, seconds=seconds)


async def _purchases(sessionmaker: Any, wallets: list[int], *, workers: int, seconds: float) -> LoadResult:
    from app.ledger.accounts import PURCHASES_IN_FLIGHT, system_account_id
    from app.ledger.posting import transfer

    async with sessionmaker() as session, session.begin():
        in_flight = await system_account_id(session, PURCHASES_IN_FLIGHT)

    async def one(_: int) -> None:
        async with sessionmaker() as session, session.begin():
            await transfer(
                session,
                key=f"bench:purchase:{uuid.uuid4()}",
                from_account=random.choice(wallets),
                to_account=in_flight,
                amount=random.randint(1, 100),
                kind="purchase",
            )

    return await run_workers(one, workers=workers, seconds=seconds)


def _combined(results: list[LoadResult]) -> LoadResult:
    total = LoadResult(seconds=sum(r.seconds for r in results))
    for r in results:
        total.latencies += r.latencies
        total.client_cpu += r.client_cpu
        for name, count in r.errors.items():
            total.errors[name] = total.errors.get(name, 0) + count
    return total


async def _run(srv: Any, url: str, args: argparse.Namespace) -> None:
    from app.config.settings import load_settings
    from app.core.db import make_engine, make_sessionmaker
    from app.ledger.reconcile import run_reconcile

    os.environ["DATABASE_URL"] = url
    engine = make_engine(load_settings(), pool_size=args.workers, max_overflow=0)
    try:
        sessionmaker = make_sessionmaker(engine)
        small = await _create_wallets(sessionmaker, 50)
        big = await _create_wallets(sessionmaker, 1000)
        # Warm the pool and the prepared statements so the timed runs measure steady state.
        await _transfers(sessionmaker, small, workers=args.workers, seconds=1)
        fifty: list[LoadResult] = []
        pgbench: list[PgbenchResult] = []
        with pgbench_database(srv, clients=args.workers, threads=args.pgbench_threads) as tpcb:
            for _ in range(args.rounds):
                fifty.append(
                    await _transfers(sessionmaker, small, workers=args.workers, seconds=args.seconds)
                )
                pgbench.append(await asyncio.to_thread(tpcb.run, args.seconds))
        thousand = await _transfers(sessionmaker, big, workers=args.workers, seconds=args.seconds)
        purchases = await _purchases(sessionmaker, big, workers=args.workers, seconds=args.seconds)
        reconciled = (await run_reconcile(sessionmaker)).lines()[0]
    finally:
        await engine.dispose()

    ledger = _combined(fifty)
    tps = sum(p.transactions for p in pgbench) / sum(p.seconds for p in pgbench)
    if args.rounds > 1:
        for n, (ours, theirs) in enumerate(zip(fifty, pgbench, strict=True), 1):
            print(
                f"round {n}: ledger {ours.rate:,.0f}/s, pgbench {theirs.tps:,.0f} tps,"
                f" ratio {ours.rate / theirs.tps:.2f}"
            )
    print(describe("ledger transfers, 50 wallets", ledger))
    print(describe("ledger transfers, 1,000 wallets", thousand))
    print(describe("ledger purchase-like (wallet -> purchases_in_flight), 1,000 wallets", purchases))
    print(f"after the runs: {reconciled}")
    latency = sum(p.latency_ms for p in pgbench) / len(pgbench)
    print(f"pgbench tpcb-like: {tps:,.0f} tps ({args.workers} clients, avg latency {latency:.2f} ms)")
    if args.load_before > 0.5:
        print(f"note: the machine was busy before the start (load {args.load_before:.2f}): figures are noisy")
    print(f"ratio ledger/pgbench: {ledger.rate / tps:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=15, help="length of each timed run (default 15)")
    parser.add_argument("--workers", type=int, default=20, help="concurrent workers / pgbench clients (20)")
    parser.add_argument("--pgbench-threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternate ledger and pgbench runs N times")
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="event loop for the workers (default uvloop, what uvicorn uses in production)",
    )
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]

    srv = server()
    print(
        f"server: {srv.host} ({os.cpu_count()} CPUs, load average {args.load_before:.2f} before start); "
        f"{args.workers} workers on {args.loop}, {args.seconds} s per run"
    )
    with throwaway_database(srv, "ledger", migrate=True) as url:
        run_async(_run(srv, url, args), loop=args.loop)


if __name__ == "__main__":
    main()
