"""Ledger throughput: wallet-to-wallet transfers through the posting API, `ledger_post` driven by pgbench, and
pgbench tpcb-like.

    uv run just bench ledger [--seconds 15] [--workers 20] [--rounds 1]

In one run, on the same PostgreSQL server:
1. Python path: 20 concurrent asyncio workers post transfers between 50 funded wallets, each its own
   committed transaction through app.ledger.posting.transfer (a session, BEGIN, one `ledger_post`
   statement, COMMIT).
2. SQL path: pgbench runs a custom script calling the same `ledger_post(...)` directly, with the same
   arguments (kind, memo, created_by, two legs of 1-100 kobo between two of the same 50 wallets, a unique
   idempotency key per call), as many clients, for as long, statements prepared once (`-M prepared`, as
   asyncpg does). What the SQL costs, without any Python; the gap to step 1 is the client's cost. Every
   call must move money: postings are counted in the ledger afterwards, and a replayed key would be shown
   (and not counted).
3. Anchor: pgbench's tpcb-like script with as many clients, at a scale factor of at least the number of
   clients (see bench.common.Pgbench.initialise).
Then the same transfers with 1,000 wallets, and purchase-like postings (wallet -> the shared
purchases-in-flight system account: a system account is not a hot row). With --rounds N steps 1-3
alternate N times, so background load on a shared machine hits all three alike. The line before last is
the ratio of `ledger_post` from pgbench to tpcb-like tps; the last line the ratio of the Python path
(50 wallets) to tpcb-like tps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.common import (
    LoadResult,
    Pgbench,
    PgbenchResult,
    describe,
    describe_pgbench,
    pgbench_database,
    ratio_line,
    run_async,
    run_workers,
    server,
    throwaway_database,
)

FUNDING_KOBO = 10_000_000_000  # per wallet: transfers of <= 100 kobo never run a wallet dry
KEY_PREFIX = "pgbench:"
# One transfer as app.ledger.posting.transfer posts it (same ledger_post arguments): source i and target j,
# two different wallets drawn uniformly (like random.sample), legs in account-id order (the wallet ids are
# given sorted, so index order is id order), the debit on the source. The key: the client and a random
# 63-bit number (a repeat would be a replay that moves nothing: the ledger count afterwards shows it).
LEDGER_POST_SCRIPT = """\
\\set i random(1, {count})
\\set j random(1, {count} - 1)
\\set j CASE WHEN :j >= :i THEN :j + 1 ELSE :j END
\\set lo least(:i, :j)
\\set hi greatest(:i, :j)
\\set amount random(1, 100)
\\set first CASE WHEN :i < :j THEN -:amount ELSE :amount END
\\set second -:first
\\set key random(1, 9223372036854775806)
SELECT tx_id FROM ledger_post('{prefix}' || :client_id || ':' || :key, 'transfer', '', NULL, NULL, 'system',
    ARRAY[('{ids}'::bigint[])[:lo], ('{ids}'::bigint[])[:hi]], ARRAY[:first::bigint, :second::bigint]);
"""


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


async def _postings_from_pgbench(sessionmaker: Any) -> int:
    from sqlalchemy import text

    async with sessionmaker() as session:
        stmt = text("SELECT count(*) FROM ledger_transactions WHERE idempotency_key LIKE :prefix")
        return int((await session.execute(stmt, {"prefix": KEY_PREFIX + "%"})).scalar_one())


async def _ledger_post_from_pgbench(
    sessionmaker: Any, bench: Pgbench, script: Path, seconds: int
) -> tuple[PgbenchResult, int]:
    """One pgbench run of the ledger_post script: (its result, postings it made in the ledger)."""
    before = await _postings_from_pgbench(sessionmaker)
    result = await asyncio.to_thread(bench.run, seconds, script=script, prepared=True)
    return result, await _postings_from_pgbench(sessionmaker) - before


async def _run(srv: Any, url: str, args: argparse.Namespace) -> None:
    from app.config.settings import load_settings
    from app.core.db import make_engine, make_sessionmaker
    from app.ledger.reconcile import run_reconcile

    os.environ["DATABASE_URL"] = url
    engine = make_engine(load_settings(), pool_size=args.workers, max_overflow=0)
    direct = Pgbench(srv, urlparse(url).path.lstrip("/"), clients=args.workers, threads=args.pgbench_threads)
    try:
        sessionmaker = make_sessionmaker(engine)
        small = await _create_wallets(sessionmaker, 50)
        big = await _create_wallets(sessionmaker, 1000)
        ids = "{" + ",".join(str(i) for i in sorted(small)) + "}"
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / "ledger_post.sql"
            script.write_text(LEDGER_POST_SCRIPT.format(count=len(small), ids=ids, prefix=KEY_PREFIX))
            # Warm the pool and the prepared statements so the timed runs measure steady state.
            await _transfers(sessionmaker, small, workers=args.workers, seconds=1)
            await asyncio.to_thread(direct.run, 1, script=script, prepared=True)
            fifty: list[LoadResult] = []
            sql: list[tuple[PgbenchResult, int]] = []
            pgbench: list[PgbenchResult] = []
            with pgbench_database(srv, clients=args.workers, threads=args.pgbench_threads) as tpcb:
                for _ in range(args.rounds):
                    fifty.append(
                        await _transfers(sessionmaker, small, workers=args.workers, seconds=args.seconds)
                    )
                    sql.append(await _ledger_post_from_pgbench(sessionmaker, direct, script, args.seconds))
                    pgbench.append(await asyncio.to_thread(tpcb.run, args.seconds))
        thousand = await _transfers(sessionmaker, big, workers=args.workers, seconds=args.seconds)
        purchases = await _purchases(sessionmaker, big, workers=args.workers, seconds=args.seconds)
        reconciled = (await run_reconcile(sessionmaker)).lines()[0]
    finally:
        await engine.dispose()

    ledger = _combined(fifty)
    tps = sum(p.transactions for p in pgbench) / sum(p.seconds for p in pgbench)
    # Postings/s of the SQL path: pgbench's rate, less any call that replayed a key (moved nothing).
    calls, postings = sum(r.transactions for r, _ in sql), sum(n for _, n in sql)
    direct_rate = sum(r.tps for r, _ in sql) / len(sql) * (postings / calls if calls else 0.0)
    if args.rounds > 1:
        for n, (ours, (direct_run, moved), theirs) in enumerate(zip(fifty, sql, pgbench, strict=True), 1):
            rate = direct_run.tps * moved / direct_run.transactions
            print(
                f"round {n}: ledger {ours.rate:,.0f}/s, ledger_post from pgbench {rate:,.0f}/s,"
                f" pgbench {theirs.tps:,.0f} tps, ratio {ours.rate / theirs.tps:.2f}"
            )
    print(describe("ledger transfers, 50 wallets", ledger))
    latency = sum(r.latency_ms for r, _ in sql) / len(sql)
    print(
        f"ledger_post from pgbench, 50 wallets: {direct_rate:,.0f}/s ({postings:,} postings, "
        f"{calls - postings} replayed keys; {args.workers} clients, -M prepared, "
        f"avg latency {latency:.2f} ms)"
    )
    print(describe("ledger transfers, 1,000 wallets", thousand))
    print(describe("ledger purchase-like (wallet -> purchases_in_flight), 1,000 wallets", purchases))
    print(f"after the runs: {reconciled}")
    anchor = PgbenchResult(
        tps,
        sum(p.latency_ms for p in pgbench) / len(pgbench),
        sum(p.transactions for p in pgbench),
        sum(p.seconds for p in pgbench),
        args.workers,
        pgbench[0].scale,
    )
    print(describe_pgbench("pgbench tpcb-like", anchor))
    if args.load_before > 0.5:
        print(f"note: the machine was busy before the start (load {args.load_before:.2f}): figures are noisy")
    if direct_rate:
        print(f"Python path / ledger_post from pgbench: {ledger.rate / direct_rate:.2f}")
    print(ratio_line("ledger_post from pgbench/pgbench", direct_rate / tps))
    print(ratio_line("ledger/pgbench", ledger.rate / tps))


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
