"""Webhook throughput: signed Monnify SUCCESSFUL_TRANSACTION webhooks, verified and credited, vs pgbench.

    uv run just bench webhooks [--seconds 15] [--clients 32] [--users 500]

In one run, on the same PostgreSQL server: the app runs as a real server (`vtu run --wc 2`) on a
throwaway database with 500 customers; 32 concurrent HTTP clients post correctly signed transfer webhooks
(each a new transactionReference, so each is stored and credited, verification off) for N seconds; then
every credit is checked against the ledger, and pgbench's tpcb-like script runs with 20 clients (at scale
20: pgbench wants a scale factor of at least the number of clients, see bench.common.Pgbench.initialise).
The last line is the ratio of credited webhooks/s to pgbench tps.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import random
import time
import uuid
from urllib.parse import urlparse

from bench.common import (
    LoadResult,
    RawHttpPool,
    app_server,
    describe,
    describe_pgbench,
    pgbench_tpcb,
    ratio_line,
    run_workers,
    server,
    throwaway_database,
)

SECRET = "BENCHSECRETKEY0123456789ABCDEFGH"


def _body(reference: str, sequence: int) -> bytes:
    now = time.strftime("%Y%m%d%H%M%S")
    naira = random.randint(100, 50_000)
    payload = {
        "eventType": "SUCCESSFUL_TRANSACTION",
        "eventData": {
            "product": {"reference": reference, "type": "RESERVED_ACCOUNT"},
            "transactionReference": f"MNFY|{sequence % 90 + 10}|{now}|{sequence:09d}",
            "paymentReference": f"MNFY|{sequence % 90 + 10}|{now}|{sequence:09d}",
            "paidOn": time.strftime("%Y-%m-%d %H:%M:%S.000"),
            "paymentDescription": "Wallet funding",
            "metaData": {},
            "paymentSourceInformation": [{"bankCode": "058", "amountPaid": naira, "accountName": "BENCH"}],
            "destinationAccountInformation": {
                "bankCode": "035",
                "bankName": "Wema bank",
                "accountNumber": "1",
            },
            "amountPaid": naira,
            "totalPayable": naira,
            "cardDetails": {},
            "paymentMethod": "ACCOUNT_TRANSFER",
            "currency": "NGN",
            "settlementAmount": f"{naira * 0.99:.2f}",
            "paymentStatus": "PAID",
            "customer": {"name": "Bench Customer", "email": "bench@example.ng"},
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


async def _create_users(url: str, count: int) -> list[str]:
    """Customers with wallets, inserted in bulk (no per-user argon2 hashing: not what is measured)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from app.config.settings import normalise_database_url
    from app.ledger.accounts import open_wallet

    engine = create_async_engine(normalise_database_url(url))
    tag = uuid.uuid4().hex[:6].upper()
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            rows = await session.execute(
                text(
                    "INSERT INTO users (id, email, full_name, password_hash, account_reference,"
                    " referral_code, created_at, updated_at)"
                    " SELECT gen_random_uuid(), 'wh' || g || lower(:tag) || '@example.ng', '',"
                    " 'x', 'VTB' || :tag || g, left(:tag || g, 16), now(), now()"
                    " FROM generate_series(1, :n) g RETURNING id, account_reference"
                ),
                {"n": count, "tag": tag},
            )
            users = rows.all()
            for user_id, _ in users:
                await open_wallet(session, user_id)
        return [reference for _, reference in users]
    finally:
        await engine.dispose()


async def _count_credits(url: str) -> tuple[int, int, int]:
    """(credited events, events total, ledger funding transactions)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        credited = await conn.fetchval("SELECT count(*) FROM monnify_events WHERE status = 'credited'")
        total = await conn.fetchval("SELECT count(*) FROM monnify_events")
        postings = await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'funding'")
        return credited, total, postings
    finally:
        await conn.close()


async def _load(base: str, references: list[str], clients: int, seconds: float) -> LoadResult:
    counter = itertools.count(int(time.time()) % 1_000_000 * 1000)
    parsed = urlparse(base)
    pool = RawHttpPool(parsed.hostname or "127.0.0.1", parsed.port or 80)

    async def post(worker: int) -> None:
        body = _body(random.choice(references), next(counter))
        signature = hmac.new(SECRET.encode(), body, hashlib.sha512).hexdigest()
        status, _ = await pool.request(
            worker,
            "POST",
            "/payments/webhooks/monnify/",
            body,
            {"content-type": "application/json", "monnify-signature": signature},
        )
        if status != 200:
            raise RuntimeError(f"HTTP {status}")

    try:
        await pool.connect(clients)
        await run_workers(post, workers=clients, seconds=2)  # warm-up: connections, caches, JIT-free plans
        return await run_workers(post, workers=clients, seconds=seconds)
    finally:
        await pool.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--pgbench-clients", type=int, default=20)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--web-workers", type=int, default=2, help="app processes (one per core)")
    args = parser.parse_args()

    srv = server()
    env = {
        "MONNIFY_SECRET_KEY": SECRET,
        "MONNIFY_API_KEY": "MK_TEST_BENCH",
        "MONNIFY_CONTRACT_CODE": "1",
        "MONNIFY_VERIFY_BEFORE_CREDIT": "false",
    }
    with throwaway_database(srv, "webhooks", migrate=True) as url:
        references = asyncio.run(_create_users(url, args.users))
        with app_server(url, env, web_workers=args.web_workers, port=args.port) as base:
            result = asyncio.run(_load(base, references, args.clients, args.seconds))
        credited, total, postings = asyncio.run(_count_credits(url))
    label = (
        f"webhooks verified + credited ({args.clients} clients, {args.users} users, "
        f"{args.web_workers} app processes)"
    )
    print(describe(label, result))
    print(f"stored events: {total:,}; credited: {credited:,}; ledger funding postings: {postings:,}")
    if not (credited == total == postings):
        print("WARNING: not every stored event was credited exactly once")
    pgbench = pgbench_tpcb(srv, clients=args.pgbench_clients, seconds=args.seconds)
    print(describe_pgbench("pgbench tpcb-like", pgbench))
    print(ratio_line("webhooks/pgbench", result.rate / pgbench.tps))


if __name__ == "__main__":
    main()
