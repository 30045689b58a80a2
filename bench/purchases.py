"""Purchase throughput: airtime purchases through the reseller API vs pgbench tpcb-like.

    uv run just bench purchases [--seconds 15] [--buyers 64] [--wallets 500] [--latency-ms 50] [--via api]

Default (`--via api`): 64 concurrent buyers POST /api/v1/purchases (Bearer key, fresh Idempotency-Key) over
keep-alive HTTP to the real app (`vtu run --wc <CPUs>`, stub provider with 50 ms of latency, rate and
spend limits off) across 500 funded wallets, each with its own API key. Each purchase is the full
production path: key lookup, strict parsing, validation, pricing, `purchase_open` (purchase row + wallet
debit through the ledger, one statement that is its own transaction), the provider call (outside any
transaction), then `purchase_deliver` (guarded transition + delivery posting), and the 201 answer with the
final status.
`--via service` calls PurchaseService.buy directly instead (no HTTP or API layer), split over one process
per CPU with a pool of --pool connections each.
pgbench's tpcb-like script then runs on the same PostgreSQL server with as many clients as buyers, at a
scale factor of as many (pgbench: scale >= clients, see bench.common.Pgbench.initialise); the last line is
the ratio of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import random
import time
import uuid
from typing import Any

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

FUNDING_KOBO = 10_000_000_000  # per wallet: enough that no purchase in the run is refused
AIRTIME_KOBO = 10_000  # N100
DELIVERED_PHONE = "08011111111"  # the stub (like the VTpass sandbox) delivers to this number


@dataclasses.dataclass(frozen=True)
class Buyer:
    id: uuid.UUID
    tier: str = "customer"


async def _create_buyers(sessionmaker: Any, count: int) -> list[Buyer]:
    """`count` users with funded wallets (one multi-leg funding transaction from Monnify clearing)."""
    from sqlalchemy import text

    from app.ledger.accounts import MONNIFY_CLEARING, open_wallet, system_account_id
    from app.ledger.posting import Leg, post_transaction

    async with sessionmaker() as session, session.begin():
        rows = await session.execute(
            text(
                "INSERT INTO users (id, email, full_name, password_hash, account_reference, referral_code,"
                " created_at, updated_at)"
                " SELECT gen_random_uuid(), 'buyer' || g || '-' || :tag || '@example.ng', '', 'x',"
                " left(:tag || g, 32), left(:tag || g, 16), now(), now() FROM generate_series(1, :n) g"
                " RETURNING id"
            ),
            {"n": count, "tag": uuid.uuid4().hex[:8]},
        )
        user_ids = list(rows.scalars().all())
        wallets = [await open_wallet(session, user_id) for user_id in user_ids]
        clearing = await system_account_id(session, MONNIFY_CLEARING)
        await post_transaction(
            session,
            key=f"bench:funding:{uuid.uuid4()}",
            kind="funding",
            legs=[Leg(clearing, -FUNDING_KOBO * count), *(Leg(w, FUNDING_KOBO) for w in wallets)],
            memo="benchmark funding",
        )
    return [Buyer(user_id) for user_id in user_ids]


async def _purchases(service: Any, buyers: list[Buyer], *, workers: int, seconds: float) -> LoadResult:
    from app.vtu.models import SUCCESSFUL
    from app.vtu.orders import PurchaseRequest

    request = PurchaseRequest(service_id="mtn", phone=DELIVERED_PHONE, amount_kobo=AIRTIME_KOBO)

    async def one(_: int) -> None:
        purchase = await service.buy(random.choice(buyers), request)
        if purchase.status != SUCCESSFUL:
            raise RuntimeError(f"purchase ended {purchase.status}")

    return await run_workers(one, workers=workers, seconds=seconds)


def _settings(url: str, log_level: str) -> Any:
    from app.config.settings import load_settings
    from app.core.logging import configure_logging

    os.environ["DATABASE_URL"] = url
    # KYC_LIMITS off: bench users buy far more than a level-0 customer may
    settings = dataclasses.replace(load_settings(), vtu_provider="stub", log_level=log_level, kyc_limits=())
    configure_logging(settings)  # per-purchase INFO lines would measure the console, not the engine
    return settings


async def _load(
    url: str, args: argparse.Namespace, buyer_ids: list[str], workers: int, start_at: float
) -> LoadResult:
    """One process's share of the buyers: its own engine, provider and PurchaseService (like a web worker)."""
    from app.core.db import make_engine, make_sessionmaker
    from app.vtu.config import VtuConfig
    from app.vtu.providers import StubProvider
    from app.vtu.registry import ProviderRegistry
    from app.vtu.scheduling import NoScheduler
    from app.vtu.service import PurchaseService

    settings = _settings(url, args.log_level)
    engine = make_engine(settings, pool_size=min(workers, args.pool), max_overflow=0)
    config = VtuConfig()
    registry = ProviderRegistry(
        settings, config, providers={"stub": StubProvider(latency_seconds=args.latency_ms / 1000)}
    )
    buyers = [Buyer(uuid.UUID(b)) for b in buyer_ids]
    try:
        service = PurchaseService(
            sessionmaker=make_sessionmaker(engine), settings=settings, config=config, providers=registry,
            scheduler=NoScheduler(),
        )  # fmt: skip
        # Warm the pool and the prepared-statement caches so the timed run measures steady state.
        await _purchases(service, buyers, workers=workers, seconds=1)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        return await _purchases(service, buyers, workers=workers, seconds=args.seconds)
    finally:
        await registry.aclose()
        await engine.dispose()


def _process(
    url: str, args: argparse.Namespace, buyer_ids: list[str], workers: int, start_at: float
) -> LoadResult:
    return asyncio.run(_load(url, args, buyer_ids, workers, start_at))


async def _prepare(url: str, args: argparse.Namespace) -> list[str]:
    from app.core.db import make_engine, make_sessionmaker

    engine = make_engine(_settings(url, args.log_level), pool_size=2, max_overflow=0)
    try:
        return [str(b.id) for b in await _create_buyers(make_sessionmaker(engine), args.wallets)]
    finally:
        await engine.dispose()


async def _verify(url: str, args: argparse.Namespace) -> list[str]:
    from app.core.db import make_engine, make_sessionmaker
    from app.ledger.reconcile import run_reconcile

    engine = make_engine(_settings(url, args.log_level), pool_size=2, max_overflow=0)
    try:
        sessionmaker = make_sessionmaker(engine)
        report = await run_reconcile(sessionmaker)
        return [report.lines()[0], *await _checks(sessionmaker)]
    finally:
        await engine.dispose()


async def _api_keys(url: str, args: argparse.Namespace, buyer_ids: list[str]) -> list[str]:
    """One reseller API key per buyer, made by the accounts domain's own service."""
    from app.accounts.apikeys import ApiKeyService
    from app.accounts.models import User
    from app.core.db import make_engine, make_sessionmaker

    engine = make_engine(_settings(url, args.log_level), pool_size=2, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            service = ApiKeyService(session)
            keys = []
            for buyer_id in buyer_ids:
                user = await session.get(User, uuid.UUID(buyer_id))
                assert user is not None
                keys.append((await service.create(user, name="bench")).secret)
        return keys
    finally:
        await engine.dispose()


async def _api_load(base: str, keys: list[str], args: argparse.Namespace) -> LoadResult:
    from urllib.parse import urlparse

    parsed = urlparse(base)
    pool = RawHttpPool(parsed.hostname or "127.0.0.1", parsed.port or 80)
    body = json.dumps({"service_id": "mtn", "phone": DELIVERED_PHONE, "amount_kobo": AIRTIME_KOBO}).encode()

    async def one(worker: int) -> None:
        headers = {
            "authorization": f"Bearer {random.choice(keys)}",
            "idempotency-key": uuid.uuid4().hex,
            "content-type": "application/json",
        }
        status, answer = await pool.request(worker, "POST", "/api/v1/purchases", body, headers)
        if status != 201:
            raise RuntimeError(f"HTTP {status}: {answer[:200]!r}")
        if b'"status":"successful"' not in answer.replace(b" ", b""):
            raise RuntimeError(f"purchase not successful: {answer[:200]!r}")

    try:
        await pool.connect(args.buyers)
        await run_workers(one, workers=args.buyers, seconds=2)  # warm-up: connections, statement caches
        return await run_workers(one, workers=args.buyers, seconds=args.seconds)
    finally:
        await pool.aclose()


def _run_api(url: str, args: argparse.Namespace) -> tuple[LoadResult, list[str]]:
    buyer_ids = asyncio.run(_prepare(url, args))
    keys = asyncio.run(_api_keys(url, args, buyer_ids))
    env = {
        "VTU_PROVIDER": "stub",
        "VTU_STUB_LATENCY_MS": str(int(args.latency_ms)),
        "API_RATE_LIMIT_PER_MINUTE": "0",
        "API_DAILY_SPEND_LIMIT_KOBO": "0",
        "API_KEY_TIERS": "customer,reseller",  # the buyers are customers (the same as for --via service)
        "LOG_LEVEL": args.log_level,
    }
    with app_server(url, env, web_workers=args.processes) as base:
        result = asyncio.run(_api_load(base, keys, args))
    return result, asyncio.run(_verify(url, args))


def _shares(args: argparse.Namespace) -> list[int]:
    """Buyers per process."""
    return [args.buyers // args.processes + (i < args.buyers % args.processes) for i in range(args.processes)]


def _run(url: str, args: argparse.Namespace) -> tuple[LoadResult, list[str]]:
    """Buyers split over `--processes` processes (a web deployment runs several workers too)."""
    buyer_ids = asyncio.run(_prepare(url, args))
    shares = _shares(args)
    start_at = time.time() + 3 + args.processes  # after every process has warmed up
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.processes) as pool:
        parts = pool.starmap(_process, [(url, args, buyer_ids, n, start_at) for n in shares if n])
    merged = LoadResult(seconds=max(p.seconds for p in parts), client_cpu=sum(p.client_cpu for p in parts))
    for part in parts:
        merged.latencies.extend(part.latencies)
        for name, count in part.errors.items():
            merged.errors[name] = merged.errors.get(name, 0) + count
    return merged, asyncio.run(_verify(url, args))


async def _checks(sessionmaker: Any) -> list[str]:
    """After the run: nothing left in flight, every purchase settled, money where it should be."""
    from sqlalchemy import func, select

    from app.ledger.accounts import PURCHASES_IN_FLIGHT, provider_float
    from app.ledger.queries import system_balances
    from app.vtu.models import Purchase

    async with sessionmaker() as session:
        by_status = dict(
            (await session.execute(select(Purchase.status, func.count()).group_by(Purchase.status))).all()
        )
        systems = await system_balances(session)
    return [
        f"purchases by status: {by_status}",
        f"purchases in flight: {systems.get(PURCHASES_IN_FLIGHT, 0)} kobo; "
        f"stub float consumed: {systems.get(provider_float('stub'), 0):,} kobo",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=15, help="length of the timed run (default 15)")
    parser.add_argument("--buyers", type=int, default=64, help="concurrent buyers (default 64)")
    parser.add_argument("--wallets", type=int, default=500, help="funded wallets (default 500)")
    parser.add_argument("--latency-ms", type=float, default=50, help="stub provider latency (default 50)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="buyer processes (CPUs)")
    parser.add_argument(
        "--pool", type=int, default=16, help="DB connections per buyer process (16, like a web worker's pool)"
    )
    parser.add_argument(
        "--pgbench-clients", type=int, default=None, help="pgbench clients (default: --buyers)"
    )
    parser.add_argument("--pgbench-threads", type=int, default=2)
    parser.add_argument("--log-level", default="WARNING", help="app log level during the run (WARNING)")
    parser.add_argument(
        "--via", choices=["api", "service"], default="api", help="reseller API over HTTP, or direct calls"
    )
    args = parser.parse_args()

    srv = server()
    print(
        f"server: {srv.host} ({os.cpu_count()} CPUs); {args.buyers} buyers over {args.wallets} wallets, "
        f"stub provider {args.latency_ms:g} ms, {args.seconds} s, {args.processes} buyer processes "
        f"with up to {args.pool} DB connections each"
    )
    if args.via == "api":
        print(f"path: POST /api/v1/purchases over HTTP to `vtu run --wc {args.processes}` (reseller API)")
    else:
        print("path: direct PurchaseService.buy calls (no HTTP or API layer)")
    with throwaway_database(srv, "purchases", migrate=True) as url:
        result, checks = _run_api(url, args) if args.via == "api" else _run(url, args)
    print(describe("airtime purchases", result))
    for line in checks:
        print(f"after the run: {line}")
    clients = args.pgbench_clients or args.buyers  # as many concurrent clients as buyers (like bench.ledger)
    pg = pgbench_tpcb(srv, clients=clients, threads=args.pgbench_threads, seconds=args.seconds)
    print(describe_pgbench("pgbench tpcb-like", pg))
    print(ratio_line("purchases/pgbench", result.rate / pg.tps))


if __name__ == "__main__":
    main()
