"""Customer pages under load: 32 signed-in customers on the dashboard, the statement and the buy-data page
vs a bare Litestar app rendering a trivial Jinja template, both served by `litestar run` the same way.

    uv run just bench pages [--seconds 15] [--concurrency 32] [--client raw|httpx] [--client-processes 1]

1. A throwaway database migrated by the project's migrations; data plans synced from the stub provider
   (the `vtu seed` hook, `sync_plans`), so /buy/data lists plans. `--concurrency` customers, each signed
   up through `UserService.register` (argon2 password, wallet), funded by `--fundings` Monnify webhooks
   through `receive_event` (the webhook's own `monnify_receive` path: the statement names the sender), then
   `--purchases` purchases through `PurchaseService.buy` with the stub provider: airtime and data bundles
   delivered, electricity tokens, cable, failed ones (refunded), and a few left pending.
2. The real app (`vtu run --wc <CPUs>`, the `app_server` of bench/common.py like the other benchmarks).
   Each customer logs in through the real log-in form in an httpx client of its own (its own cookie jar):
   throttles stay on; a right password gives its per-IP attempt back, so 32 log-ins from one address pass
   (app/accounts/throttle.py). Each session then GETs each page once with httpx, which must answer 200 with
   the customer's own name or e-mail on it (a lost session would answer the log-in page).
3. For `--seconds` (after a 2 s warm-up), `--concurrency` sessions at once, each on its own keep-alive
   connection with its own cookies, GET /dashboard, /statement and /buy/data round robin. The load runs in
   `--client-processes` processes of its own (not the server's). Per page: requests/s, p50, p99, errors; any
   answer but 200 is an error and fails the run (exit status 1, after the last line).
4. The anchor, in the same run: bench/bare_app.py (one route, a trivial Jinja template through Litestar's
   template engine) served by `litestar run` with the same workers, loop, HTTP implementation and access
   log level as `vtu run`, driven by the same client setup for the same time at the same concurrency.
The last line: the app's total requests/s over the bare app's (`ratio pages: ...`, target in TARGETS).

The client (`--client`): `raw` (default) is bench.common.RawHttpPool, a few dozen µs of CPU per request,
sending each session's cookies (and taking any Set-Cookie back, as a cookie jar does). `httpx` sends the
load through each session's own httpx.AsyncClient instead; on this 2-core machine httpx costs ~1.2-1.7 ms of
CPU per request, more than the bare app's whole request, so it benches the client rather than the servers
(bench/README.md, "pages").
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from bench.common import (
    ROOT,
    RawHttpPool,
    app_server,
    free_port,
    percentile,
    ratio_line,
    run_async,
    server,
    throwaway_database,
)

PASSWORD = "bench-Customer-password-1"
PAGES: list[tuple[str, str]] = [
    ("dashboard", "/dashboard"),
    ("statement", "/statement"),
    ("buy data", "/buy/data"),
]
BARE_PAGES: list[tuple[str, str]] = [("bare template", "/")]
FLOOR_PAGES: list[tuple[str, str]] = [("signed-in", "/signed-in")]
WARM_UP_SECONDS = 2.0
DELIVERED_PHONE = (
    "08011111111"  # the stub delivers airtime and data to this number (app/vtu/providers/stub.py)
)
PENDING_PHONE = "201000000000"  # the stub answers pending; no requery runs here, so it stays pending
FAILED_PHONES = ("08031234567", "08107654321", "07069990000")  # any other number: failed (016), refunded
PREPAID_METER = "1111111111111"
SMARTCARD = "1212121212"
PLAN_MARKER = "MTN 1GB - 1 Day"  # a stub data plan: the buy-data page lists the synced plans
SENDERS = (("ADEBAYO OLUWASEUN", "058", "Guaranty Trust Bank"), ("CHIOMA OKAFOR", "044", "Access Bank"))


@dataclasses.dataclass(frozen=True, slots=True)
class Customer:
    id: uuid.UUID
    email: str
    full_name: str
    tier: str = "customer"


# -- the data -------------------------------------------------------------------------------------------
def _settings(url: str) -> Any:
    from app.config.settings import load_settings
    from app.core.logging import configure_logging

    os.environ["DATABASE_URL"] = url
    os.environ["VTU_PROVIDER"] = "stub"
    os.environ["KYC_LIMITS"] = ""  # seeded customers buy far more than a level-0 customer may
    settings = dataclasses.replace(load_settings(), vtu_provider="stub", log_level="WARNING")
    configure_logging(settings)
    return settings


def _webhook(
    customer: Customer, account_reference: str, kobo: int, paid_on: datetime, n: int
) -> dict[str, Any]:
    """A SUCCESSFUL_TRANSACTION webhook body as Monnify sends it for a transfer into a reserved account."""
    naira = f"{kobo / 100:.2f}"
    name, bank_code, _bank = SENDERS[n % len(SENDERS)]
    reference = f"MNFY|BENCH|{uuid.uuid4().hex[:16].upper()}"
    return {
        "eventType": "SUCCESSFUL_TRANSACTION",
        "eventData": {
            "product": {"reference": account_reference, "type": "RESERVED_ACCOUNT"},
            "transactionReference": reference,
            "paymentReference": reference,
            "paidOn": paid_on.strftime("%Y-%m-%d %H:%M:%S.000"),
            "paymentDescription": f"Transfer from {name}",
            "metaData": {},
            "paymentSourceInformation": [
                {
                    "bankCode": bank_code,
                    "amountPaid": naira,
                    "accountName": name,
                    "sessionId": reference[-12:],
                    "accountNumber": f"01{n:08d}",
                },
            ],
            "destinationAccountInformation": {
                "bankCode": "035",
                "bankName": "Wema bank",
                "accountNumber": f"5{n:09d}",
            },
            "amountPaid": naira,
            "totalPayable": naira,
            "cardDetails": {},
            "paymentMethod": "ACCOUNT_TRANSFER",
            "currency": "NGN",
            "settlementAmount": f"{kobo * 0.99 / 100:.2f}",
            "paymentStatus": "PAID",
            "customer": {"name": customer.full_name, "email": customer.email},
        },
    }


def _orders(rng: random.Random, count: int, data_codes: list[tuple[str, str]]) -> list[Any]:
    """`count` purchase requests in a realistic mix: mostly airtime and data that deliver, some electricity
    and cable, ~16% failed (refunded), ~4% pending."""
    from app.vtu.orders import PurchaseRequest

    orders: list[Any] = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.36:
            amount = rng.choice((10_000, 20_000, 50_000, 100_000, 150_000))
            orders.append(PurchaseRequest(rng.choice(("mtn", "glo", "airtel", "etisalat")),
                                          phone=DELIVERED_PHONE, amount_kobo=amount))  # fmt: skip
        elif roll < 0.66:
            service, code = rng.choice(data_codes)
            orders.append(PurchaseRequest(service, phone=DELIVERED_PHONE, variation_code=code))
        elif roll < 0.74:
            amount = rng.choice((200_000, 500_000))
            orders.append(PurchaseRequest("ikeja-electric", phone=DELIVERED_PHONE, meter_number=PREPAID_METER,
                                          meter_type="prepaid", amount_kobo=amount))  # fmt: skip
        elif roll < 0.80:
            cable = {
                "smartcard_number": SMARTCARD,
                "variation_code": "gotv-smallie",
                "subscription_type": "change",
            }
            orders.append(PurchaseRequest("gotv", phone=DELIVERED_PHONE, **cable))
        elif roll < 0.96 or i == 0:
            orders.append(PurchaseRequest("mtn", phone=rng.choice(FAILED_PHONES), amount_kobo=20_000))
        else:
            orders.append(PurchaseRequest("airtel", phone=PENDING_PHONE, amount_kobo=10_000))
    return orders


async def _seed(url: str, args: argparse.Namespace, say: Any) -> list[Customer]:
    from sqlalchemy import select

    from app.accounts.services import SignUp, UserService
    from app.core.db import make_engine, make_sessionmaker
    from app.payments.funding import receive_event
    from app.vtu.config import VtuConfig
    from app.vtu.demo import sync_stub_plans
    from app.vtu.models import Plan
    from app.vtu.providers import StubProvider
    from app.vtu.registry import ProviderRegistry
    from app.vtu.scheduling import NoScheduler
    from app.vtu.service import PurchaseService

    settings = _settings(url)
    engine = make_engine(settings, pool_size=8, max_overflow=0)
    sessionmaker = make_sessionmaker(engine)
    registry = ProviderRegistry(settings, VtuConfig(), providers={"stub": StubProvider()})
    rng = random.Random(13)
    began = time.perf_counter()
    try:
        async with sessionmaker() as session:
            await sync_stub_plans(session)
            await session.commit()
            plans = (await session.execute(select(Plan.service_id, Plan.variation_code))).all()
        data_codes = [(s, c) for s, c in plans if s.endswith("-data")]
        if not data_codes:
            raise RuntimeError("no data plans were synced from the stub provider")
        tag = uuid.uuid4().hex[:6]
        customers: list[Customer] = []
        references: dict[uuid.UUID, str] = {}
        async with sessionmaker() as session:
            users = UserService(session=session)
            for n in range(args.concurrency):
                name = f"{rng.choice(('Ngozi', 'Tunde', 'Bola', 'Emeka', 'Aisha', 'Chidi'))} Bench{n:02d}"
                user = await users.register(
                    SignUp(email=f"bench{n:02d}-{tag}@example.ng", password=PASSWORD, full_name=name,
                           phone=f"0803{rng.randrange(10**7):07d}", email_verified=True),
                    commit=False,
                )  # fmt: skip
                customers.append(Customer(user.id, user.email, user.full_name))
                references[user.id] = user.account_reference
            await session.commit()
        now = datetime.now(UTC)
        for i, customer in enumerate(customers):
            for f in range(args.fundings):
                kobo = rng.choice((3_000_000, 5_000_000, 10_000_000))  # ₦30,000-₦100,000
                payload = _webhook(customer, references[customer.id], kobo, now - timedelta(days=30 - 6 * f),
                                   i * 100 + f)  # fmt: skip
                body = json.dumps(payload).encode()
                async with sessionmaker() as session:
                    stored = await receive_event(session, settings, payload, body, "127.0.0.1")
                if stored.status != "credited":
                    raise RuntimeError(f"a funding webhook ended {stored.status}")
        service = PurchaseService(
            sessionmaker=sessionmaker, settings=settings, config=VtuConfig(), providers=registry,
            scheduler=NoScheduler(),
        )  # fmt: skip
        statuses: dict[str, int] = {}

        async def buy_all(customer: Customer) -> None:
            for order in _orders(random.Random(str(customer.id)), args.purchases, data_codes):
                view = await service.buy(customer, order)
                statuses[view.status] = statuses.get(view.status, 0) + 1

        queue = list(customers)

        async def buyer() -> None:
            while queue:
                await buy_all(queue.pop())

        await asyncio.gather(*(buyer() for _ in range(6)))
        say(
            f"data: {len(customers)} customers, {len(data_codes)} data plans, {args.fundings} fundings and "
            f"{args.purchases} purchases each (by status: {dict(sorted(statuses.items()))}) "
            f"in {time.perf_counter() - began:.0f} s"
        )
        return customers
    finally:
        await registry.aclose()
        await engine.dispose()


# -- sessions -------------------------------------------------------------------------------------------
def _content_problem(path: str, html: str, customer: Customer) -> str | None:
    """What is missing from a page that should be this customer's (None: it is there)."""
    if path == "/dashboard" and customer.email not in html:
        return "not this customer's dashboard"
    if path == "/statement" and (lines := html.count('class="purchase entry')) < 20:
        return f"the statement has only {lines} lines"
    if path == "/buy/data" and PLAN_MARKER not in html:
        return f"no data plan listed ({PLAN_MARKER!r})"
    return None


async def _log_in_all(base: str, customers: list[Customer]) -> list[dict[str, str]]:
    """Each customer logs in through the log-in form in an httpx client of its own, then opens each page
    once (200 with its own name or e-mail on it). Returns each session's cookie jar."""
    import httpx

    jars: list[dict[str, str]] = []
    for customer in customers:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            page = await client.get("/login")
            token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
            assert token, "no CSRF token on /login"
            data = {"email": customer.email, "password": PASSWORD, "_csrf_token": token.group(1)}
            answer = await client.post("/login", data=data, follow_redirects=False)
            if answer.status_code not in (302, 303):
                raise RuntimeError(f"log-in of {customer.email} failed: HTTP {answer.status_code}")
            for name, path in PAGES:
                check = await client.get(path, follow_redirects=False)
                if check.status_code != 200:
                    raise RuntimeError(f"{customer.email}: {name} answered HTTP {check.status_code}")
                if (problem := _content_problem(path, check.text, customer)) is not None:
                    raise RuntimeError(f"{customer.email}: {name}: {problem}")
            jars.append(dict(client.cookies.items()))
    return jars


# -- the load -------------------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class Share:
    """One client process's work: its sessions' cookie jars, the pages, when to start."""

    base: str
    jars: list[dict[str, str]]
    pages: list[tuple[str, str]]
    offset: int  # the first session's index (spreads the round robin over the pages)
    seconds: float
    start_at: float  # time.time() at which the warm-up starts (all processes together)
    client: str


@dataclasses.dataclass(slots=True)
class PageStats:
    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class ShareResult:
    stats: dict[str, PageStats]
    seconds: float
    client_cpu: float


_SET_COOKIE = re.compile(rb"^set-cookie:\s*([^=;\s]+)=([^;\r\n]*)", re.IGNORECASE | re.MULTILINE)


class _RawSessions:
    """One keep-alive connection per session over RawHttpPool, each sending its own cookies and taking
    Set-Cookie answers back (what a browser's cookie jar does: a rotated session id is followed)."""

    def __init__(self, base: str, jars: list[dict[str, str]]) -> None:
        parsed = urlparse(base)
        self.pool = RawHttpPool(parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.jars = [dict(jar) for jar in jars]

    async def open(self) -> None:
        await self.pool.connect(len(self.jars))

    async def get(self, session: int, path: str) -> tuple[int, bytes]:
        jar = self.jars[session]
        headers = {"accept-encoding": "gzip, deflate", "accept": "text/html"}
        if jar:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        status, head, body = await self.pool.exchange(session, "GET", path, headers=headers)
        for name, value in _SET_COOKIE.findall(head):
            jar[name.decode()] = value.decode()
        return status, body

    async def aclose(self) -> None:
        await self.pool.aclose()


class _HttpxSessions:
    """One httpx.AsyncClient (its own cookie jar and connection) per session."""

    def __init__(self, base: str, jars: list[dict[str, str]]) -> None:
        import httpx

        self.clients = [httpx.AsyncClient(base_url=base, cookies=jar, timeout=60) for jar in jars]

    async def open(self) -> None:
        return None

    async def get(self, session: int, path: str) -> tuple[int, bytes]:
        answer = await self.clients[session].get(path)
        return answer.status_code, answer.content

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


async def _drive(share: Share) -> ShareResult:
    import resource

    sessions: _RawSessions | _HttpxSessions = (
        _RawSessions(share.base, share.jars)
        if share.client == "raw"
        else _HttpxSessions(share.base, share.jars)
    )
    pages = share.pages
    stats = {name: PageStats() for name, _ in pages}
    await asyncio.sleep(max(0.0, share.start_at - time.time()))
    await sessions.open()

    async def session_loop(index: int, until: float, record: bool) -> None:
        turn = share.offset + index
        clock = time.perf_counter
        while (began := clock()) < until:
            name, path = pages[turn % len(pages)]
            turn += 1
            try:
                status, _ = await sessions.get(index, path)
            except Exception as exc:
                if record:
                    errors = stats[name].errors
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if not record:
                continue
            if status != 200:
                errors = stats[name].errors
                errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
            else:
                stats[name].latencies.append(clock() - began)

    try:
        warm_until = time.perf_counter() + WARM_UP_SECONDS
        await asyncio.gather(*(session_loop(i, warm_until, False) for i in range(len(share.jars))))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_before, began = usage.ru_utime + usage.ru_stime, time.perf_counter()
        until = began + share.seconds
        await asyncio.gather(*(session_loop(i, until, True) for i in range(len(share.jars))))
        seconds = time.perf_counter() - began
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return ShareResult(stats, seconds, usage.ru_utime + usage.ru_stime - cpu_before)
    finally:
        await sessions.aclose()


def _client_process(share: Share) -> ShareResult:
    return run_async(_drive(share))


@dataclasses.dataclass(slots=True)
class Measured:
    stats: dict[str, PageStats]
    seconds: float
    client_cpu: float
    processes: int

    @property
    def ok(self) -> int:
        return sum(len(s.latencies) for s in self.stats.values())

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return sum(sum(s.errors.values()) for s in self.stats.values())


def _load(
    base: str, jars: list[dict[str, str]], pages: list[tuple[str, str]], args: argparse.Namespace
) -> Measured:
    """The sessions split over `--client-processes` processes (spawned: none shares the server's process),
    started together; their figures merged."""
    processes = max(1, min(args.client_processes, len(jars)))
    start_at = time.time() + 2 + processes  # every process imported and ready
    shares, first = [], 0
    for p in range(processes):
        count = len(jars) // processes + (p < len(jars) % processes)
        shares.append(
            Share(base, jars[first : first + count], pages, first, args.seconds, start_at, args.client)
        )
        first += count
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        parts = pool.map(_client_process, shares)
    merged = {name: PageStats() for name, _ in pages}
    for part in parts:
        for name, stats in part.stats.items():
            merged[name].latencies.extend(stats.latencies)
            for error, count in stats.errors.items():
                merged[name].errors[error] = merged[name].errors.get(error, 0) + count
    return Measured(merged, max(p.seconds for p in parts), sum(p.client_cpu for p in parts), processes)


# -- the anchor's server --------------------------------------------------------------------------------
@contextmanager
def bare_server(web_workers: int, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """bench/bare_app.py under `litestar run --wc N`: the command `vtu run` is (app/__main__.py: Litestar's
    CLI, which hands over to `uvicorn --workers N --factory`), with the same FORWARDED_ALLOW_IPS.
    `extra_env`: BARE_DATABASE_URL and BARE_REDIS_URL turn its signed-in floor (`/signed-in`) on."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "litestar", "--app", "bench.bare_app:create_app", "run"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--wc", str(web_workers)]
    env = {**os.environ, "FORWARDED_ALLOW_IPS": "", **(extra_env or {})}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"the bare app exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the bare app did not become ready")
        yield base
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _floor_sessions(base: str, customers: list[Customer]) -> list[dict[str, str]]:
    """A signed-in floor session per customer (bench/bare_app.py `/sign-in/{id}`), checked once."""
    import httpx

    jars: list[dict[str, str]] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for customer in customers:
            client.cookies.clear()
            client.get(f"/sign-in/{customer.id}").raise_for_status()
            jar = dict(client.cookies.items())
            check = client.get("/signed-in")
            if check.status_code != 200 or customer.full_name not in check.text:
                problem = f"HTTP {check.status_code}"
                raise RuntimeError(f"the signed-in floor did not show {customer.full_name}: {problem}")
            jars.append(jar)
    return jars


# -- report ---------------------------------------------------------------------------------------------
def _report(label: str, result: Measured, say: Any) -> None:
    for name, stats in result.stats.items():
        errors = ", ".join(f"{k}={v}" for k, v in sorted(stats.errors.items())) or "0"
        say(
            f"  {label} {name:<14} {len(stats.latencies) / result.seconds:>8,.1f}/s  "
            f"p50 {percentile(stats.latencies, 50) * 1000:>7.1f} ms  "
            f"p99 {percentile(stats.latencies, 99) * 1000:>7.1f} ms  errors: {errors}"
        )
    cpu = result.client_cpu / result.ok * 1e6 if result.ok else 0.0
    say(
        f"  {label} total          {result.rate:>8,.1f}/s  ({result.ok:,} in {result.seconds:.1f} s; client: "
        f"{result.processes} process(es), {cpu:.0f} µs CPU/request, "
        f"{result.client_cpu / result.seconds:.0%} of a core)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15, help="length of each timed run (15 s)")
    parser.add_argument("--concurrency", type=int, default=32, help="signed-in sessions at once (32)")
    parser.add_argument("--purchases", type=int, default=50, help="purchases per customer (50)")
    parser.add_argument("--fundings", type=int, default=5, help="Monnify fundings per customer (5)")
    parser.add_argument("--web-workers", type=int, default=os.cpu_count() or 1, help="web processes (CPUs)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load client (raw)")
    parser.add_argument("--client-processes", type=int, default=1, help="load generator processes (1)")
    parser.add_argument(
        "--no-floor", dest="floor", action="store_false", help="skip the signed-in floor (second anchor)"
    )
    args = parser.parse_args()

    def say(line: str) -> None:
        print(line, flush=True)

    srv = server()
    say(
        f"server: {srv.host}:{srv.port} ({os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}); {args.concurrency} sessions for "
        f"{args.seconds:g} s "
        f"after {WARM_UP_SECONDS:g} s of warm-up, `{args.client}` client in {args.client_processes} "
        f"process(es); servers: `litestar run --wc {args.web_workers}` (uvicorn)"
    )
    env = {"VTU_PROVIDER": "stub", "LOG_LEVEL": "WARNING"}
    floor: Measured | None = None
    with throwaway_database(srv, "pages", migrate=True) as url:
        customers = asyncio.run(_seed(url, args, say))
        with app_server(url, env, web_workers=args.web_workers) as base:
            jars = asyncio.run(_log_in_all(base, customers))
            say(f"sessions: {len(jars)} customers logged in through /login, each page checked once")
            app = _load(base, jars, PAGES, args)
        if args.floor:
            from app.core.embedded import ensure_services

            floor_env = {"BARE_DATABASE_URL": url, "BARE_REDIS_URL": ensure_services(export=False).redis_url}
            with bare_server(args.web_workers, floor_env) as base:
                floor = _load(base, _floor_sessions(base, customers), FLOOR_PAGES, args)
    say(f"app ({', '.join(path for _, path in PAGES)} round robin):")
    _report("app", app, say)
    with bare_server(args.web_workers) as base:
        bare = _load(base, [{} for _ in range(args.concurrency)], BARE_PAGES, args)
    if floor is not None:
        say("signed-in floor (bench/bare_app.py /signed-in: Redis session, one user row, trivial template):")
        _report("floor", floor, say)
    say("anchor (bench/bare_app.py, one trivial Jinja template):")
    _report("bare", bare, say)
    if floor is not None and bare.rate and floor.rate:
        say(
            f"signed-in floor / bare: {floor.rate / bare.rate:.2f} (no signed-in page can reach more); "
            f"app / signed-in floor: {app.rate / floor.rate:.2f}"
        )
    say(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say(ratio_line("pages", app.rate / bare.rate if bare.rate else 0.0))
    if app.errors or bare.errors or (floor is not None and floor.errors):
        sys.exit(1)


if __name__ == "__main__":
    main()
