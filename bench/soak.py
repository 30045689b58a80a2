"""Soak: mixed traffic at a steady rate for minutes, per-minute figures, memory of every process, reconcile.

    uv run just bench soak [--minutes 10] [--rate 40] [--warm-up 30] [--customers 16] [--resellers 40]

Not in CI (it runs for minutes). bench/README.md "soak" describes the run and keeps its figures.

1. A throwaway database migrated by the project's migrations (bench/common.py), seeded like bench/pages.py
   (`--customers` customers signed up through UserService, funded by Monnify webhooks through
   `receive_event`, a couple of dozen purchases each) plus `--resellers` resellers (tier reseller, funded
   the same way, one reseller API key each). A Redis database of its own (`--redis-db`, default the
   highest-numbered empty one; emptied afterwards).
2. The processes production runs: `vtu run --workers 2` (APP_ENV=dev, stub provider, DATABASE_POOL_SIZE 10
   as README.md "Running in production" advises for 2 cores) and one `vtu workers run` (the SAQ worker,
   short VTU_REQUERY_SCHEDULE_SECONDS so pending purchases are requeried within seconds), plus the Monnify
   simulator (tests/fakes/monnify.py) so a sign-up's reserved accounts are created offline by the worker,
   and an SMTP sink (aiosmtpd) so the e-mail outbox drains as it does in production.
   The customers log in through the log-in form (bench/pages.py `_log_in_all`, each page checked once).
3. Open-loop load: one request every 1/`--rate` s whatever the answers (a slow server shows as latency and
   requests in flight, not as less offered load), for `--warm-up` s (not counted) then `--minutes`. Latency
   is measured from the moment a request was due, so time spent waiting for a free connection counts.
   The mix (weights in MIX): signed-in page views (dashboard, statement, buy airtime, buy data: the
   sessions of the customers and of everyone who signed up during the run), reseller API purchases (N100
   airtime to the stub's delivering number; one in ~7 to its pending number 201000000000, which the
   worker requeries), API reads (wallet, purchase list, one purchase), signed Monnify funding webhooks to
   any user's account reference, sign-ups through the form (GET /signup, then the POST). Any answer but
   the expected one (200; 201 with the expected purchase status; 303 to /dashboard for a sign-up) or no
   answer within `--timeout` s is an error.
4. Every minute a line: requests completed in that minute, errors, p50 / p99, in flight, RSS. At the end:
   error rate, p50 / p99 overall and per kind, the RSS of each process (web supervisor, each web worker,
   the SAQ worker) at the start (after the warm-up), the middle and the end, and whether it still grows
   (end vs middle above TREND_LIMIT), the pending purchases settled by the worker, consistency checks, and
   `vtu ledger reconcile` on the soak database. The last line is the reconcile result. Exit status 1 when
   more than 1% of requests failed, a check failed or the reconcile did.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import hmac
import itertools
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

from bench.common import ROOT, RawHttpPool, app_server, free_port, percentile, run_async, server
from bench.common import throwaway_database as _throwaway_database
from bench.pages import PASSWORD, Customer, _log_in_all, _seed, _webhook

MONNIFY = {
    "MONNIFY_API_KEY": "MK_TEST_SOAKBENCH01",
    "MONNIFY_SECRET_KEY": "SOAKSECRETKEY0123456789ABCDEFGHJ",
    "MONNIFY_CONTRACT_CODE": "7059707855",
    "MONNIFY_VERIFY_BEFORE_CREDIT": "false",  # as bench/webhooks.py: credited in the request
}
DELIVERED_PHONE = "08011111111"  # the stub delivers to this number (app/vtu/providers/stub.py)
PENDING_PHONE = "201000000000"  # the stub answers pending; the worker's requery delivers it
AIRTIME_KOBO = 10_000  # N100
FUNDING_KOBO = 10_000_000  # N100,000 per seed webhook
REQUERY_SCHEDULE = "5,10,20,40"  # VTU_REQUERY_SCHEDULE_SECONDS: pending settles within seconds
DEFAULT_RATE = 15.0  # bench/README.md "soak": what this shared 2-core machine sustains with room to spare
TREND_LIMIT = 0.10
RSS_READINGS = 5  # RSS growth from the middle to the end above this: still growing
ERROR_LIMIT = 0.01  # more than 1% of requests failing fails the run
IDLE_REOPEN_SECONDS = 4.0  # uvicorn closes a keep-alive connection idle for 5 s: reopen before that

# (kind, weight): operations per 100 scheduled. A sign-up is two requests (its form, then the POST).
MIX: list[tuple[str, int]] = [
    ("dashboard", 15),
    ("statement", 15),
    ("buy airtime", 10),
    ("buy data", 10),
    ("api purchase", 17),
    ("api purchase pending", 3),
    ("api wallet", 6),
    ("api purchases list", 6),
    ("api purchase get", 6),
    ("webhook", 10),
    ("signup", 2),
]
PAGE_PATHS = {
    "dashboard": "/dashboard",
    "statement": "/statement",
    "buy airtime": "/buy/airtime",
    "buy data": "/buy/data",
}
API_KINDS = ("api purchase", "api purchase pending", "api wallet", "api purchases list", "api purchase get")
_SET_COOKIE = re.compile(rb"^set-cookie:\s*([^=;\s]+)=([^;\r\n]*)", re.IGNORECASE | re.MULTILINE)
_CSRF = re.compile(rb'name="_csrf_token" value="([^"]+)"')


def say(line: str = "") -> None:
    print(line, flush=True)


def machine_load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


# -- data -------------------------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class Reseller:
    key: str
    purchase_ids: deque[str] = dataclasses.field(default_factory=lambda: deque(maxlen=20))


async def _resellers(url: str, count: int, fundings: int) -> tuple[list[Reseller], list[str]]:
    """`count` resellers signed up through UserService (tier reseller), each funded by `fundings` Monnify
    webhooks through `receive_event` and given one API key. Returns them and their account references."""
    from app.accounts.apikeys import ApiKeyService
    from app.accounts.services import SignUp, UserService
    from app.core.db import make_engine, make_sessionmaker
    from app.payments.funding import receive_event
    from bench.pages import _settings

    settings = _settings(url)
    engine = make_engine(settings, pool_size=2, max_overflow=0)
    sessionmaker = make_sessionmaker(engine)
    tag = uuid.uuid4().hex[:6]
    try:
        async with sessionmaker() as session:
            users = UserService(session=session)
            made = []
            for n in range(count):
                user = await users.register(
                    SignUp(email=f"reseller{n:03d}-{tag}@example.ng", password=PASSWORD,
                           full_name=f"Kola Reseller{n:03d}", phone=f"0805{n:07d}", tier="reseller",
                           email_verified=True),
                    commit=False,
                )  # fmt: skip
                made.append(user)
            keys = ApiKeyService(session, is_prod=False, allowed_tiers=settings.api_key_tiers)
            secrets = [(await keys.create(user, name="soak")).secret for user in made]
            await session.commit()
            people = [(Customer(u.id, u.email, u.full_name, "reseller"), u.account_reference) for u in made]
        now = datetime.now(UTC)
        for i, (person, reference) in enumerate(people):
            for f in range(fundings):
                payload = _webhook(person, reference, FUNDING_KOBO, now, 50_000 + i * 100 + f)
                async with sessionmaker() as session:
                    stored = await receive_event(
                        session, settings, payload, json.dumps(payload).encode(), None
                    )
                if stored.status != "credited":
                    raise RuntimeError(f"a reseller's funding webhook ended {stored.status}")
        return [Reseller(secret) for secret in secrets], [reference for _, reference in people]
    finally:
        await engine.dispose()


async def _account_references(url: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT account_reference FROM users")]
    finally:
        await conn.close()


# -- processes --------------------------------------------------------------------------------------------
def _redis_db(base_url: str, wanted: str) -> int:
    """`wanted` as a number, or (auto) the highest-numbered Redis database holding no key."""
    import redis

    client = redis.Redis.from_url(base_url)
    try:
        if wanted != "auto":
            return int(wanted)
        databases = int(client.config_get("databases").get("databases", 16))
        used = {int(name[2:]) for name in client.info("keyspace")}
        free = [db for db in range(databases - 1, 0, -1) if db not in used]
        if not free:
            raise RuntimeError("no empty Redis database: pass --redis-db")
        return free[0]
    finally:
        client.close()


def _redis_url(base_url: str, db: int) -> str:
    parsed = urlparse(base_url)
    return parsed._replace(path=f"/{db}").geturl()


def _flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@contextmanager
def _process(
    command: list[str], env: dict[str, str], log: Any, ready_port: int | None = None
) -> Iterator[int]:
    """A child process in its own process group (stopped as a whole with SIGTERM), its output in `log`;
    yields its pid once `ready_port` accepts connections (if given)."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    name = " ".join(command[2:5])
    try:
        deadline = time.monotonic() + 30
        while ready_port is not None:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", ready_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not listen on {ready_port}") from None
                time.sleep(0.1)
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        yield process.pid
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=40)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _web_supervisor(port: int) -> int:
    """The pid of `vtu run` (app_server's child of this process, serving `port`)."""
    import psutil

    for child in psutil.Process().children():
        command = child.cmdline()
        if "run" in command and str(port) in command:
            return child.pid
    raise RuntimeError("the `vtu run` process was not found")


@dataclasses.dataclass(slots=True)
class Memory:
    """RSS samples of the soak's server processes, by role."""

    web_pid: int
    worker_pid: int
    samples: dict[str, dict[str, tuple[int, int]]] = dataclasses.field(
        default_factory=dict
    )  # -> role: pid, rss

    def roles(self) -> dict[str, tuple[int, int]]:
        import psutil

        def rss(pid: int) -> int:
            return int(psutil.Process(pid).memory_info().rss)

        out = {"web supervisor": (self.web_pid, rss(self.web_pid))}
        children = [
            c
            for c in psutil.Process(self.web_pid).children()
            if "resource_tracker" not in " ".join(c.cmdline())
        ]
        for n, child in enumerate(sorted(children, key=lambda c: c.pid), start=1):
            out[f"web worker {n}"] = (child.pid, rss(child.pid))
        out["SAQ worker"] = (self.worker_pid, rss(self.worker_pid))
        for n, child in enumerate(sorted(psutil.Process(self.worker_pid).children(), key=lambda c: c.pid), 1):
            out[f"SAQ worker child {n}"] = (child.pid, rss(child.pid))
        return out

    async def sample(self, label: str) -> dict[str, tuple[int, int]]:
        """Each process's smallest RSS over RSS_READINGS readings 0.5 s apart: a password hash (argon2, 64 MiB
        for the time it runs: every sign-up and log-in) caught in one reading would read as growth."""
        readings = [self.roles()]
        for _ in range(RSS_READINGS - 1):
            await asyncio.sleep(0.5)
            readings.append(self.roles())
        taken = {
            role: min((r[role] for r in readings if role in r), key=lambda pid_rss: pid_rss[1])
            for role in readings[-1]
        }
        self.samples[label] = taken
        return taken


def _mb(value: int) -> str:
    return f"{value / 2**20:,.1f}"


# -- the load ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class Record:
    kind: str
    due: float  # seconds since the measured part began (negative: warm-up)
    done: float
    latency: float
    error: str | None


class Connections:
    """Keep-alive connections handed out least recently used first (so the load spreads over every
    connection, and so over both web processes); opened one at a time up front, more when all are busy,
    reopened after IDLE_REOPEN_SECONDS idle (uvicorn closes them at 5 s)."""

    def __init__(self, base: str, size: int, cap: int = 512) -> None:
        parsed = urlparse(base)
        self.pool = RawHttpPool(parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.size, self.free, self.opened = size, deque(range(size)), size
        self.limit = asyncio.Semaphore(cap)
        self.used: dict[int, float] = {}

    async def open(self) -> None:
        await self.pool.connect(self.size, spacing_seconds=0.02)

    async def exchange(
        self, method: str, path: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes, bytes]:
        async with self.limit:
            if self.free:
                slot = self.free.popleft()
            else:
                slot, self.opened = self.opened, self.opened + 1
            now = time.monotonic()
            if now - self.used.get(slot, now) > IDLE_REOPEN_SECONDS:
                self.pool.discard(slot)
            healthy = False
            try:
                answer = await asyncio.wait_for(
                    self.pool.exchange(slot, method, path, body, headers), timeout
                )
                healthy = True
                return answer
            finally:
                if not healthy:
                    self.pool.discard(slot)  # a timed-out exchange leaves the connection mid-answer
                self.used[slot] = time.monotonic()
                self.free.append(slot)

    async def aclose(self) -> None:
        await self.pool.aclose()


class Soak:
    def __init__(
        self,
        base: str,
        args: argparse.Namespace,
        jars: list[dict[str, str]],
        resellers: list[Reseller],
        references: list[str],
        memory: Memory,
    ) -> None:
        self.args, self.memory = args, memory
        self.connections = Connections(base, size=max(4, min(32, int(args.rate))))
        self.jars, self.resellers, self.references = jars, resellers, references
        self.records: list[Record] = []
        self.pending_ids: list[str] = []
        self.signups = self.signups_unanswered = 0
        self.webhooks_ok = self.webhooks_unanswered = 0
        self.in_flight = 0
        self.rng = random.Random(15)
        self.turn = {"page": itertools.count(), "key": itertools.count(), "webhook": itertools.count(1)}
        self.t0 = 0.0  # time.monotonic() when the measured part begins
        self.minute_lines: list[str] = []
        self.seq = int(time.time())

    # one request ---------------------------------------------------------------------------------------
    async def _http(
        self, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, bytes]:
        return await self.connections.exchange(method, path, body, headers or {}, self.args.timeout)

    def _record(self, kind: str, due: float, error: str | None) -> None:
        now = time.monotonic()
        self.records.append(Record(kind, due - self.t0, now - self.t0, now - due, error))

    async def _page(self, kind: str) -> str | None:
        session = next(self.turn["page"]) % len(self.jars)
        jar = self.jars[session]
        headers = {"accept-encoding": "gzip, deflate", "accept": "text/html"}
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        status, head, _ = await self._http("GET", PAGE_PATHS[kind], headers=headers)
        for name, value in _SET_COOKIE.findall(head):
            jar[name.decode()] = value.decode()
        return None if status == 200 else f"HTTP {status}"

    def _reseller(self) -> Reseller:
        return self.resellers[next(self.turn["key"]) % len(self.resellers)]

    async def _api(self, kind: str) -> str | None:
        reseller = self._reseller()
        headers = {"authorization": f"Bearer {reseller.key}"}
        if kind in ("api purchase", "api purchase pending"):
            phone, expected = (
                (PENDING_PHONE, "pending")
                if kind == "api purchase pending"
                else (DELIVERED_PHONE, "successful")
            )
            service = "airtel" if phone == PENDING_PHONE else "mtn"
            body = json.dumps({"service_id": service, "phone": phone, "amount_kobo": AIRTIME_KOBO}).encode()
            headers |= {"idempotency-key": uuid.uuid4().hex, "content-type": "application/json"}
            status, _, payload = await self._http("POST", "/api/v1/purchases", body=body, headers=headers)
            if status != 201:
                return f"HTTP {status}"
            answer = json.loads(payload)
            reseller.purchase_ids.append(answer["id"])
            if answer["status"] != expected:
                return f"purchase {answer['status']}"
            if expected == "pending":
                self.pending_ids.append(answer["id"])
            return None
        if kind == "api purchase get" and reseller.purchase_ids:
            path = f"/api/v1/purchases/{self.rng.choice(reseller.purchase_ids)}"
        elif kind == "api wallet" or kind == "api purchase get":
            path = "/api/v1/wallet/"
        else:
            path = "/api/v1/purchases/?limit=20"
        status, _, _ = await self._http("GET", path, headers=headers)
        return None if status == 200 else f"HTTP {status}"

    async def _webhook(self) -> str | None:
        n = next(self.turn["webhook"])
        reference = self.rng.choice(self.references)
        person = Customer(uuid.uuid4(), "payer@example.ng", "Soak Payer")
        kobo = self.rng.choice((100_000, 200_000, 500_000, 1_000_000))  # N1,000-N10,000
        body = json.dumps(_webhook(person, reference, kobo, datetime.now(UTC), 900_000 + n)).encode()
        signature = hmac.new(MONNIFY["MONNIFY_SECRET_KEY"].encode(), body, hashlib.sha512).hexdigest()
        headers = {"content-type": "application/json", "monnify-signature": signature}
        try:
            status, _, _ = await self._http("POST", "/payments/webhooks/monnify/", body=body, headers=headers)
        except Exception:
            self.webhooks_unanswered += 1  # it may still have been credited
            raise
        if status != 200:
            return f"HTTP {status}"
        self.webhooks_ok += 1
        return None

    async def _signup(self, due: float) -> None:
        """GET /signup (recorded as "signup form"), then POST it ("signup", timed from when it is sent);
        the new customer's session joins the page views."""
        try:
            status, head, page = await self._http("GET", "/signup", headers={"accept": "text/html"})
        except Exception as exc:
            self._record("signup form", due, type(exc).__name__)
            return
        jar = {k.decode(): v.decode() for k, v in _SET_COOKIE.findall(head)}
        token = _CSRF.search(page)
        if status != 200 or token is None:
            self._record("signup form", due, f"HTTP {status}" if status != 200 else "no CSRF token")
            return
        self._record("signup form", due, None)
        self.seq += 1
        form = {
            "full_name": f"Amaka Soak{self.seq}",
            "email": f"soak{self.seq}-{uuid.uuid4().hex[:6]}@example.ng",
            "phone": f"0816{self.seq % 10**7:07d}",
            "password": PASSWORD,
            "referral_code": "",
            "_csrf_token": token.group(1).decode(),
        }
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
            "accept": "text/html",
        }
        due = time.monotonic()
        try:
            status, head, _ = await self._http(
                "POST", "/signup", body=urlencode(form).encode(), headers=headers
            )
        except Exception as exc:
            self.signups_unanswered += 1  # it may still have made the user
            self._record("signup", due, type(exc).__name__)
            return
        jar |= {k.decode(): v.decode() for k, v in _SET_COOKIE.findall(head)}
        if status != 303 or b"location: /dashboard" not in head.lower():
            self._record("signup", due, f"HTTP {status}")
            return
        self.signups += 1
        self.jars.append(jar)
        self._record("signup", due, None)

    async def _one(self, kind: str, due: float) -> None:
        self.in_flight += 1
        try:
            if kind == "signup":
                await self._signup(due)
                return
            if kind in PAGE_PATHS:
                error = await self._page(kind)
            elif kind in API_KINDS:
                error = await self._api(kind)
            else:
                error = await self._webhook()
        except Exception as exc:
            error = type(exc).__name__
        finally:
            self.in_flight -= 1
        self._record(kind, due, error)

    # the run ---------------------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.connections.open()
        rate, warm_up, seconds = self.args.rate, self.args.warm_up, self.args.minutes * 60
        kinds = [kind for kind, weight in MIX for _ in range(weight)]
        loop_start = time.monotonic() + 0.5
        self.t0 = loop_start + warm_up
        reporter = asyncio.create_task(self._report_minutes(seconds))
        tasks: set[asyncio.Task[None]] = set()
        for i in itertools.count():
            due = loop_start + i / rate
            if due >= self.t0 + seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._one(self.rng.choice(kinds), due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await reporter
        if tasks:
            await asyncio.gather(*tasks)
        await self.connections.aclose()

    async def _report_minutes(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, self.t0 - time.monotonic()))
        await self.memory.sample("start")
        say(
            f"warm-up done ({self.args.warm_up:g} s); "
            f"RSS at start: {self._rss_text(self.memory.samples['start'])}"
        )
        middle_at, middle_done = seconds / 2, False
        minutes = math.ceil(seconds / 60)
        for minute in range(1, minutes + 1):
            until = min(minute * 60.0, seconds)
            while (now := time.monotonic() - self.t0) < until:
                if not middle_done and now >= middle_at:
                    await self.memory.sample("middle")
                    middle_done = True
                await asyncio.sleep(min(1.0, until - now))
            if not middle_done and until >= middle_at:
                await self.memory.sample("middle")
                middle_done = True
            taken = await self.memory.sample("end" if until >= seconds else f"minute {minute}")
            window = [r for r in self.records if until - 60 <= r.done < until and r.due >= 0]
            ok = [r.latency for r in window if r.error is None]
            errors, span = len(window) - len(ok), until - (minute - 1) * 60
            say(
                f"minute {minute:>2}: {len(window):>5,} requests ({len(window) / span:.1f}/s), "
                f"{errors} errors, p50 {percentile(ok, 50) * 1000:,.1f} ms, "
                f"p99 {percentile(ok, 99) * 1000:,.1f} ms; "
                f"in flight {self.in_flight}; RSS {self._rss_text(taken)}; load {os.getloadavg()[0]:.2f}"
            )

    @staticmethod
    def _rss_text(taken: dict[str, tuple[int, int]]) -> str:
        web = sum(rss for role, (_, rss) in taken.items() if role.startswith("web"))
        worker = sum(rss for role, (_, rss) in taken.items() if role.startswith("SAQ"))
        return f"web {_mb(web)} MB, SAQ worker {_mb(worker)} MB"


# -- after the run ----------------------------------------------------------------------------------------
async def _settle(url: str, ids: list[str], wait_seconds: float) -> tuple[dict[str, int], float]:
    """Wait (up to `wait_seconds`) until the worker has settled every purchase sold pending."""
    import asyncpg

    conn = await asyncpg.connect(url)
    began = time.monotonic()
    try:
        while True:
            rows = await conn.fetch(
                "SELECT status, count(*) FROM purchases WHERE id::text = ANY($1::text[]) GROUP BY status", ids
            )
            statuses = {row[0]: int(row[1]) for row in rows}
            if not statuses.get("pending") or time.monotonic() - began > wait_seconds:
                return statuses, time.monotonic() - began
            await asyncio.sleep(1)
    finally:
        await conn.close()


async def _counts(url: str, since: Any = None) -> dict[str, Any]:
    """What the database holds; purchases by status made since `since` (a database timestamp)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        purchases = await conn.fetch(
            "SELECT status, count(*) FROM purchases"
            " WHERE created_at >= coalesce($1::timestamptz, '-infinity') GROUP BY status",
            since,
        )
        return {
            "now": await conn.fetchval("SELECT now()"),
            "purchases": {row[0]: int(row[1]) for row in purchases},
            "events": await conn.fetchval("SELECT count(*) FROM monnify_events"),
            "credited": await conn.fetchval("SELECT count(*) FROM monnify_events WHERE status = 'credited'"),
            "users": await conn.fetchval("SELECT count(*) FROM users"),
            "reserved": await conn.fetchval("SELECT count(*) FROM reserved_accounts WHERE status = 'active'"),
            "mail": dict(await conn.fetch("SELECT status, count(*) FROM outgoing_mail GROUP BY status")),
        }
    finally:
        await conn.close()


def _reconcile(url: str, redis_url: str) -> tuple[bool, str]:
    """`vtu ledger reconcile` against the soak database: (ok, the last line to print)."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "APP_ENV": "dev",
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app", "ledger", "reconcile"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in done.stdout.splitlines():
        say(f"  {line}")
    transactions = re.search(r"transactions checked: (\d+)", done.stdout)
    entries = re.search(r"entries checked: (\d+)", done.stdout)
    if done.returncode == 0 and "reconcile: OK" in done.stdout and transactions and entries:
        return (
            True,
            f"reconcile: ok ({int(transactions.group(1)):,} transactions, {int(entries.group(1)):,} entries)",
        )
    drift = re.search(r"drift: (.+)", done.stdout)
    detail = drift.group(1) if drift else (done.stderr.strip().splitlines() or ["no output"])[-1]
    return False, f"reconcile: FAILED (exit {done.returncode}; drift: {detail})"


def _log_errors(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Error lines in the servers' logs by event (or the line's start), and the operator alerts raised
    (app/alerts: logged at error level, by alert key up to its colon)."""
    errors: dict[str, int] = {}
    alerts: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(("ERROR", "CRITICAL")):
            continue
        if "'event': 'alert_raised'" in line and (key := re.search(r"'key': '([^':]+)", line)):
            alerts[key.group(1)] = alerts.get(key.group(1), 0) + 1
            continue
        event = re.search(r"'event': '([^']+)'", line)
        name = event.group(1) if event else line[:60]
        if "QueuePool limit" in line:
            name += " (database pool exhausted)"
        errors[name] = errors.get(name, 0) + 1
    return errors, alerts


def _summary(soak: Soak, seconds: float) -> float:
    """Print the totals and per-kind figures; return the error rate."""
    measured = [r for r in soak.records if r.due >= 0]
    ok = [r.latency for r in measured if r.error is None]
    errors: dict[str, int] = {}
    for r in measured:
        if r.error is not None:
            errors[f"{r.kind}: {r.error}"] = errors.get(f"{r.kind}: {r.error}", 0) + 1
    rate = (len(measured) - len(ok)) / len(measured) if measured else 1.0
    warm = [r for r in soak.records if r.due < 0]
    say(
        f"total: {len(measured):,} requests in {seconds:,.0f} s ({len(measured) / seconds:.1f}/s; "
        f"offered {soak.args.rate:g} operations/s), errors {len(measured) - len(ok):,} ({rate:.2%})"
        + (": " + ", ".join(f"{k}={v}" for k, v in sorted(errors.items())) if errors else "")
        + f"; warm-up: {len(warm):,} requests, {sum(r.error is not None for r in warm)} errors"
    )
    say(f"overall: p50 {percentile(ok, 50) * 1000:,.1f} ms, p99 {percentile(ok, 99) * 1000:,.1f} ms")
    say(f"  {'kind':<22} {'requests':>8} {'errors':>6} {'p50 ms':>9} {'p99 ms':>9}")
    kinds = [k for k, _ in MIX if k != "signup"] + ["signup form", "signup"]
    for kind in kinds:
        rows = [r for r in measured if r.kind == kind]
        lat = [r.latency for r in rows if r.error is None]
        say(
            f"  {kind:<22} {len(rows):>8,} {len(rows) - len(lat):>6} "
            f"{percentile(lat, 50) * 1000:>9,.1f} {percentile(lat, 99) * 1000:>9,.1f}"
        )
    return rate


def _memory_report(memory: Memory) -> bool:
    """Print RSS at start / middle / end per process and the verdict; True when nothing still grows."""
    start, middle, end = (memory.samples.get(k, {}) for k in ("start", "middle", "end"))
    say(f"RSS (MB)                 {'start':>9} {'middle':>9} {'end':>9}  start->middle  middle->end")
    growing, worst = [], ("", -1.0)
    for role in end:
        pids = {s[role][0] for s in (start, middle, end) if role in s}
        values = [s[role][1] if role in s else 0 for s in (start, middle, end)]
        first = (values[1] - values[0]) / values[0] if values[0] else 0.0
        second = (values[2] - values[1]) / values[1] if values[1] else 0.0
        restarted = f" (pid changed: {sorted(pids)})" if len(pids) > 1 else ""
        say(
            f"  {role:<22} {_mb(values[0]):>9} {_mb(values[1]):>9} {_mb(values[2]):>9}"
            f"  {first:>+12.1%}  {second:>+10.1%}  pid {max(pids)}{restarted}"
        )
        if second > worst[1]:
            worst = (role, second)
        if second >= TREND_LIMIT or len(pids) > 1:
            growing.append(role)
    total = [sum(rss for _, rss in s.values()) for s in (start, middle, end)]
    say(f"  {'all':<22} {_mb(total[0]):>9} {_mb(total[1]):>9} {_mb(total[2]):>9}")
    if growing:
        say(
            f"memory verdict: UPWARD TREND in {', '.join(growing)} "
            f"(middle->end >= {TREND_LIMIT:.0%} or restarted)"
        )
        return False
    say(
        f"memory verdict: no upward trend (largest middle->end growth {worst[1]:+.1%}, {worst[0]}; "
        f"limit {TREND_LIMIT:.0%})"
    )
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10, help="length of the measured run (10)")
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help=f"operations/s offered, all kinds ({DEFAULT_RATE:g})"
    )
    parser.add_argument("--warm-up", type=float, default=30, help="seconds of load before measuring (30)")
    parser.add_argument("--customers", type=int, default=16, help="signed-in customers viewing pages (16)")
    parser.add_argument(
        "--resellers",
        type=int,
        default=0,
        help="resellers, an API key each (0: enough for ~30 API calls/min/key)",
    )
    parser.add_argument("--web-workers", type=int, default=2, help="`vtu run --workers` (2)")
    parser.add_argument("--stub-latency-ms", type=int, default=50, help="stub provider latency (50)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds before a request is an error (30)")
    parser.add_argument("--redis-db", default="auto", help="Redis database number (auto: an empty one)")
    args = parser.parse_args()

    seconds = args.minutes * 60
    api_per_minute = args.rate * 60 * sum(w for k, w in MIX if k in API_KINDS) / sum(w for _, w in MIX)
    # The API's own limit (API_RATE_LIMIT_PER_MINUTE, 60 per key) stays on: enough keys for ~30/min each.
    args.resellers = args.resellers or max(8, math.ceil(api_per_minute / 30))
    buys = args.rate * (seconds + args.warm_up) * 20 / sum(w for _, w in MIX) / args.resellers
    fundings = max(1, math.ceil(buys * AIRTIME_KOBO * 2 / FUNDING_KOBO))

    srv = server()
    redis_base = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    redis_db = _redis_db(redis_base, args.redis_db)
    redis_url = _redis_url(redis_base, redis_db)
    say(f"uptime before: {machine_load()}")
    say(
        f"soak: {args.rate:g} operations/s open-loop for {args.minutes:g} min "
        f"after {args.warm_up:g} s of warm-up; "
        f"{args.customers} customers, {args.resellers} resellers; PostgreSQL {srv.host}:{srv.port}, Redis db "
        f"{redis_db}; {os.cpu_count()} CPUs"
    )
    say("mix (per 100 operations): " + ", ".join(f"{k} {w}" for k, w in MIX))
    env = {
        **os.environ,
        **MONNIFY,
        "REDIS_URL": redis_url,
        "APP_ENV": "dev",
        "LOG_LEVEL": "WARNING",
        "VTU_PROVIDER": "stub",
        "VTU_STUB_LATENCY_MS": str(args.stub_latency_ms),
        "VTU_REQUERY_SCHEDULE_SECONDS": REQUERY_SCHEDULE,
        "DATABASE_POOL_SIZE": "10",
        "KYC_LIMITS": "",  # soak customers buy far more than a level-0 customer may (figures comparable)
    }
    failed = False
    with _throwaway_database(srv, "soak", migrate=True) as url:
        env["DATABASE_URL"] = url
        os.environ["REDIS_URL"] = redis_url  # the seeding's own settings
        began = time.perf_counter()
        seed = argparse.Namespace(concurrency=args.customers, purchases=24, fundings=3)
        customers = asyncio.run(_seed(url, seed, say))
        resellers, _ = asyncio.run(_resellers(url, args.resellers, fundings))
        references = asyncio.run(_account_references(url))
        say(f"data: {len(resellers)} resellers, {fundings} fundings of N100,000 each, API keys; "
            f"{time.perf_counter() - began:.0f} s in all")  # fmt: skip
        sim_port = free_port()
        env["MONNIFY_BASE_URL"] = f"http://127.0.0.1:{sim_port}"
        sim = [sys.executable, "-m", "uvicorn", "--factory", "tests.fakes.monnify:create_dev_app"]
        sim += ["--host", "127.0.0.1", "--port", str(sim_port), "--log-level", "warning"]
        smtp_port = free_port()  # an SMTP sink (aiosmtpd, a dev dependency) so the outbox drains as in prod
        env |= {"SMTP_URL": f"smtp://127.0.0.1:{smtp_port}", "MAIL_FROM": "TopUp NG <no-reply@example.ng>"}
        smtp = [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink"]
        smtp += ["-l", f"127.0.0.1:{smtp_port}"]
        worker = [sys.executable, "-m", "app", "workers", "run", "--workers", "1"]
        web_env = {k: v for k, v in env.items() if k != "DATABASE_URL"}
        log_path = Path(tempfile.gettempdir()) / f"bench-soak-{os.getpid()}.log"
        say(f"server logs (web, SAQ worker, Monnify simulator, SMTP sink): {log_path}")
        try:
            with (
                log_path.open("wb") as log,
                _process(sim, env, log, ready_port=sim_port),
                _process(smtp, env, log, ready_port=smtp_port),
                _process(worker, env, log) as worker_pid,
                app_server(url, web_env, web_workers=args.web_workers, stderr=log) as base,
            ):
                web_pid = _web_supervisor(int(urlparse(base).port or 0))
                jars = asyncio.run(_log_in_all(base, customers))
                say(
                    f"processes: `vtu run --workers {args.web_workers}` (pid {web_pid}), `vtu workers run` "
                    f"(pid {worker_pid}), Monnify simulator, SMTP sink; {len(jars)} customers logged in"
                )
                memory = Memory(web_pid, worker_pid)
                before = asyncio.run(_counts(url))
                since = before["now"]
                soak = Soak(base, args, jars, resellers, references, memory)
                run_async(soak.run())
                settle_wait = sum(int(s) for s in REQUERY_SCHEDULE.split(",")) + 30
                statuses, waited = asyncio.run(_settle(url, soak.pending_ids, settle_wait))
            after = asyncio.run(_counts(url, since))
        finally:
            _flush(redis_url)
        say(f"uptime after: {machine_load()}")
        error_rate = _summary(soak, seconds)
        _memory_report(memory)
        still = statuses.get("pending", 0)
        say(
            f"sold pending (to {PENDING_PHONE}): {len(soak.pending_ids):,}; after the load, by status "
            f"{dict(sorted(statuses.items()))} ({waited:.0f} s waited for the worker's requeries)"
        )
        credited = after["credited"] - before["credited"]
        new_users = after["users"] - before["users"]
        say(
            "purchases made during the run (warm-up included), by status: "
            f"{dict(sorted(after['purchases'].items()))}"
        )
        say(
            f"warm-up included: webhooks answered 200: {soak.webhooks_ok:,} (no answer: "
            f"{soak.webhooks_unanswered}); events credited during the run: {credited:,}; "
            f"sign-ups answered 303: {soak.signups:,} (no answer: "
            f"{soak.signups_unanswered}), users created: {new_users:,}; reserved accounts active: "
            f"{after['reserved']:,} of {after['users']:,} users; e-mail outbox by status: "
            f"{dict(sorted(after['mail'].items()))}"
        )
        logged, alerts = _log_errors(log_path)
        detail = f" {logged}" if logged else ""
        say(
            f"server logs: {sum(logged.values())} error lines{detail}; "
            f"operator alerts raised (app/alerts): {alerts or 'none'}"
        )
        checks = {
            # a request that got no answer may or may not have been carried out
            "every webhook answered 200 credited once": 0
            <= credited - soak.webhooks_ok
            <= soak.webhooks_unanswered,
            "every sign-up answered 303 made one user": 0
            <= new_users - soak.signups
            <= soak.signups_unanswered,
            "every purchase sold pending settled by the worker": still == 0,
        }
        for name, passed in checks.items():
            say(f"check: {name}: {'ok' if passed else 'FAILED'}")
        failed = not all(checks.values())
        if error_rate > ERROR_LIMIT:
            say(f"error rate {error_rate:.2%} is above {ERROR_LIMIT:.0%}: FAILED")
            failed = True
        ok, last = _reconcile(url, redis_url)
        say(last)
    if failed or not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
