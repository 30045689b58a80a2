"""`python -m drill` (`just drill`): the fault drill, README "Fault drill".

Starts drill/stack.py's stack, drives a scripted mix (web sign-ups, `vtu users create` resellers with API
keys, signed Monnify webhooks, reseller API purchases that are delivered, fail, or stay pending for a while)
and injects, one after the other: (a) kill -9 of a SAQ worker, (b) a PostgreSQL restart, (c) a Redis outage,
(d) a VTpass outage (5xx, then hanging). Each step checks outcomes (HTTP answers, purchase states, ledger
postings, balances); the end checks that nothing is left pending, the ledger reconciles and every webhook was
credited exactly once. Purchase and funding lifecycles: docs/architecture.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import psutil

from drill.stack import Proc, Stack
from tests.fakes.monnify import SIGNATURE_HEADER

BUDGET_SECONDS = 360
PASSWORD = "drill-Password-2024"
DELIVER = "08031110001"  # the simulator's default: delivered at once
SLOW = "08031110002"  # pending on /pay, delivered at the 3rd requery; each requery takes 2 s
FAILS = "08031110003"  # a definite failure: refunded once
SANDBOX_PENDING = "201000000000"  # VTpass's sandbox pending number: refused in prod (APP_ENV=prod)
AIRTIME_KOBO = 10_000  # N100
RESELLERS = 2


def _log(message: str) -> None:
    print(f"    {time.strftime('%H:%M:%S')} {message}", flush=True)


@dataclass
class Row:
    step: str
    done: str
    checked: str
    ok: bool = True
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def check(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.ok = False
            self.problems.append(problem)
        return condition


@dataclass
class User:
    email: str
    account_reference: str = ""
    id: str = ""
    api_key: str = ""
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class Attempt:
    step: str
    key: str
    phone: str
    status: int
    body: Any
    purchase_id: str | None = None


class Drill:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.rows: list[Row] = []
        self.resellers: list[User] = []
        self.customers: list[User] = []
        self.attempts: list[Attempt] = []
        self.webhooks: dict[str, tuple[str, int, int]] = {}  # ref -> (step, amount_kobo, answer status)
        self.http = httpx.AsyncClient(base_url=stack.base_url, timeout=httpx.Timeout(60, connect=5))
        self.web: Proc | None = None
        self.workers: list[Proc] = []
        self.deferred: list[asyncio.Task[None]] = []

    # -- database reads (the drill's own connection, as the superuser) ----------------------------------
    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """A fresh connection per query; while the drill itself has PostgreSQL stopped, wait for it."""
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = await asyncpg.connect(self.stack.database_dsn, timeout=10)
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def purchase_states(self, ids: list[str]) -> dict[str, str]:
        rows = await self.sql("SELECT id::text, status FROM purchases WHERE id = ANY($1::uuid[])", ids)
        return {r["id"]: r["status"] for r in rows}

    async def wait_final(self, ids: list[str], deadline: float) -> dict[str, str]:
        while True:
            states = await self.purchase_states(ids)
            if all(s != "pending" for s in states.values()) or time.monotonic() > deadline:
                return states
            await asyncio.sleep(1)

    async def credits(self, refs: list[str]) -> dict[str, int]:
        keys = [f"monnify:{r}" for r in refs]
        rows = await self.sql(
            "SELECT idempotency_key, count(*) AS n FROM ledger_transactions "
            "WHERE idempotency_key = ANY($1::text[]) GROUP BY 1",
            keys,
        )
        found = {r["idempotency_key"].removeprefix("monnify:"): r["n"] for r in rows}
        return {r: found.get(r, 0) for r in refs}

    async def wait_credited(self, refs: list[str], deadline: float) -> dict[str, int]:
        while True:
            counts = await self.credits(refs)
            if all(n >= 1 for n in counts.values()) or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(1)

    # -- clients --------------------------------------------------------------------------------------
    async def buy(self, step: str, user: User, phone: str, *, key: str | None = None) -> Attempt:
        key = key or f"drill-{uuid.uuid4().hex}"
        body = {"service_id": "mtn", "phone": phone, "amount_kobo": AIRTIME_KOBO}
        headers = {"Authorization": f"Bearer {user.api_key}", "Idempotency-Key": key}
        try:
            answer = await self.http.post("/api/v1/purchases", json=body, headers=headers)
            status, data = answer.status_code, _json_or_text(answer)
        except httpx.HTTPError as exc:
            status, data = 0, repr(exc)
        pid = data.get("id") if isinstance(data, dict) and status == 201 else None
        attempt = Attempt(step, key, phone, status, data, pid)
        self.attempts.append(attempt)
        return attempt

    async def transfer(self, step: str, user: User, naira: int) -> tuple[str, int]:
        """A bank transfer into the user's reserved account: Monnify's signed webhook to the site."""
        body, signature = self.stack.monnify.build_webhook(user.account_reference, naira * 100)
        ref = self.stack.monnify.last_transaction.transaction_reference  # type: ignore[union-attr]
        headers = {"content-type": "application/json", SIGNATURE_HEADER: signature}
        try:
            status = (
                await self.http.post("/payments/webhooks/monnify/", content=body, headers=headers)
            ).status_code
        except httpx.HTTPError:
            status = 0
        self.webhooks[ref] = (step, naira * 100, status)
        return ref, status

    async def signup(self, email: str, index: int) -> User:
        page = await self.http.get("/signup")
        cookies = _cookies(page)
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token, f"no CSRF token on /signup ({page.status_code})"
        form = {
            "full_name": "Drill Customer",
            "email": email,
            "phone": f"0803555{index:04d}",
            "password": PASSWORD,
        }
        answer = await self.http.post(
            "/signup",
            data={**form, "_csrf_token": token.group(1)},
            headers={"cookie": _cookie_header(cookies), "origin": self.stack.base_url},
        )
        assert answer.status_code == 303, f"sign-up answered {answer.status_code}: {answer.text[:300]}"
        cookies.update(_cookies(answer))
        return User(email, cookies=cookies)

    async def page(self, user: User, path: str = "/dashboard") -> httpx.Response:
        return await self.http.get(path, headers={"cookie": _cookie_header(user.cookies)})

    async def wallet(self, user: User) -> httpx.Response:
        return await self.http.get("/api/v1/wallet", headers={"Authorization": f"Bearer {user.api_key}"})

    # -- steps ----------------------------------------------------------------------------------------
    async def step(self, row: Row, body: Callable[[Row], Awaitable[Awaitable[None] | None]]) -> None:
        """Run a step. A step may hand back the waiting part of its checks (purchases settling, webhooks
        being credited): that runs on while the next fault is injected, and the row's seconds then count
        up to when it finished."""
        started = time.monotonic()
        self.rows.append(row)
        try:
            rest = await body(row)
        except Exception as exc:
            row.check(False, f"crashed: {exc!r}")
            rest = None
        if rest is None:
            self._finish(row, started)
            return

        async def finish() -> None:
            try:
                await rest
            except Exception as exc:
                row.check(False, f"crashed: {exc!r}")
            self._finish(row, started)

        self.deferred.append(asyncio.create_task(finish()))
        _log(f"{row.step}: fault injected, outcome checked in the background")

    def _finish(self, row: Row, started: float) -> None:
        row.seconds = time.monotonic() - started
        print(f"  {'PASS' if row.ok else 'FAIL'} {row.step} ({row.seconds:.0f} s)", flush=True)
        for problem in row.problems:
            print(f"      - {problem}", flush=True)

    async def start(self, row: Row) -> None:
        stack = self.stack
        stack.start_postgres()
        stack.start_redis()
        stack.start_simulators()
        _log("PostgreSQL, Redis and the simulators are up; migrating")
        stack.migrate()
        _log("migrated")
        self.web = stack.start_web()
        self.workers = [stack.start_worker(1), stack.start_worker(2)]
        nginx = stack.start_nginx()
        # the resellers are made with the CLI while the web and worker processes start
        emails = [f"reseller{i}-{uuid.uuid4().hex[:6]}@drill.test" for i in range(RESELLERS)]
        creating = asyncio.gather(*(asyncio.to_thread(self._create_reseller, e) for e in emails))
        await asyncio.to_thread(stack.wait_http, f"http://127.0.0.1:{stack.web_port}/health", self.web)
        if nginx is not None:
            await asyncio.to_thread(stack.wait_http, f"{stack.base_url}/health", nginx)
        row.done += (
            f" (nginx on :{stack.nginx_port} -> web :{stack.web_port})" if nginx else " (no nginx: direct)"
        )
        _log("web is up")
        ready = await self.http.get("/ready")
        row.check(ready.status_code == 200, f"/ready answered {ready.status_code}: {ready.text[:200]}")
        row.check(len(_uvicorn_children(self.web)) == 2, "vtu run --workers 2 did not start 2 processes")
        keys = await creating
        self.resellers = [User(e, api_key=k) for e, k in zip(emails, keys, strict=True)]
        _log("resellers created")

    def _create_reseller(self, email: str) -> str:
        """`vtu users create --tier reseller` then `vtu apikeys create`: the key is the last line printed."""
        made = self.stack.cli(
            "users", "create", "--email", email, "--password", PASSWORD, "--tier", "reseller"
        )
        assert made.returncode == 0, made.stderr[-500:]
        key = self.stack.cli("apikeys", "create", "--email", email, "--name", "drill")
        assert key.returncode == 0, key.stderr[-500:]
        return key.stdout.strip().splitlines()[-1]

    async def seed(self, row: Row) -> None:
        self.customers = list(
            await asyncio.gather(
                *(self.signup(f"customer{i}-{uuid.uuid4().hex[:6]}@drill.test", i) for i in range(3))
            )
        )
        for user in self.resellers + self.customers:
            found = await self.sql(
                "SELECT id::text, account_reference FROM users WHERE email = $1", user.email
            )
            user.id, user.account_reference = found[0]["id"], found[0]["account_reference"]
        for user in self.customers:
            dashboard = await self.page(user)
            row.check(
                dashboard.status_code == 200, f"signed-up customer's /dashboard: {dashboard.status_code}"
            )
        sent = await asyncio.gather(
            *(self.transfer("seed", u, 200_000) for u in self.resellers),
            *(self.transfer("seed", u, 5_000) for u in self.customers),
        )
        row.check(all(s == 200 for _, s in sent), f"webhook answers {[s for _, s in sent]}")
        counts = await self.wait_credited([r for r, _ in sent], time.monotonic() + 60)
        row.check(all(n == 1 for n in counts.values()), f"credits per webhook: {sorted(counts.values())}")
        for user in self.resellers:
            wallet = await self.wallet(user)
            row.check(
                wallet.status_code == 200 and wallet.json()["balance_kobo"] == 20_000_000,
                f"reseller wallet after funding: {wallet.status_code} {wallet.text[:120]}",
            )
        # the mix: delivered, failed (refunded once), pending then delivered; the sandbox number is refused
        self.stack.vtpass.configure(None, outcome="delivered")  # ordinary numbers are delivered
        self.stack.vtpass.configure(FAILS, outcome="failed")
        self.stack.vtpass.configure(
            SLOW, pending_answers=3, outcome="delivered", latency=2.0, on=("requery",)
        )
        mix = [DELIVER] * 6 + [FAILS] * 3 + [SLOW] * 3
        bought = await asyncio.gather(
            *(self.buy("seed", self.resellers[i % RESELLERS], phone) for i, phone in enumerate(mix))
        )
        row.check(all(a.status == 201 for a in bought), f"purchase answers {[a.status for a in bought]}")
        sandbox = await self.buy("seed-sandbox", self.resellers[0], SANDBOX_PENDING)
        row.check(sandbox.status == 400, f"sandbox number in prod answered {sandbox.status} (400 expected)")
        states = await self.wait_final(
            [a.purchase_id for a in bought if a.purchase_id], time.monotonic() + 60
        )
        want = {DELIVER: "successful", FAILS: "failed", SLOW: "successful"}
        wrong = [
            (a.phone, states.get(a.purchase_id or ""))
            for a in bought
            if states.get(a.purchase_id or "") != want[a.phone]
        ]
        row.check(not wrong, f"purchases not in their expected final state: {wrong}")

    async def kill_worker(self, row: Row) -> Awaitable[None]:
        victim = self.workers[0]
        bought = await asyncio.gather(
            *(self.buy("a", self.resellers[i % RESELLERS], SLOW) for i in range(12))
        )
        row.check(
            all(a.status == 201 and a.body["status"] == "pending" for a in bought),
            "SLOW purchases not 201 pending",
        )
        await asyncio.sleep(3.0)  # the first requeries (due at +2 s, 2 s each) are running in both workers
        in_flight = self._requeries_in_flight()
        victim.kill9()
        row.done += f" ({in_flight} requeries in flight at the kill)"
        await asyncio.sleep(2)
        victim.start()
        ids = [a.purchase_id for a in bought if a.purchase_id]
        row.check(victim.alive() and self.workers[1].alive(), "a worker is not running after the restart")

        async def settled() -> None:
            # a requery killed mid-flight stays "active" in SAQ until its timeout (25 s here), then the
            # minute's sweep revives it (docs/architecture.md, purchase lifecycle step 7)
            states = await self.wait_final(ids, time.monotonic() + 150)
            row.check(
                all(s == "successful" for s in states.values()), f"after kill -9: {sorted(states.values())}"
            )
            refunds = await self.sql(
                "SELECT count(*) AS n FROM ledger_transactions WHERE idempotency_key = ANY($1::text[])",
                [f"refund:{i}" for i in ids],
            )
            row.check(refunds[0]["n"] == 0, f"{refunds[0]['n']} refunds of delivered purchases")

        return settled()

    def _requeries_in_flight(self) -> int:
        now = time.monotonic()
        return sum(1 for r in self.stack.vtpass.requests if r.path == "/api/requery" and now - r.at < 2.0)

    async def restart_postgres(self, row: Row) -> None:
        assert self.web is not None
        before = (self.web.pid, sorted(p.pid for p in _uvicorn_children(self.web)))
        customer, reseller = self.customers[0], self.resellers[0]
        stop = asyncio.Event()
        # (kind, started, status, content-type, body, finished)
        seen: list[tuple[str, float, int, str, str, float]] = []

        async def probe() -> None:
            while not stop.is_set():
                for kind, call in (
                    ("api-wallet", lambda: self.wallet(reseller)),
                    ("api-buy", lambda: self.buy("b", reseller, DELIVER)),
                    ("page", lambda: self.page(customer)),
                    ("ready", lambda: self.http.get("/ready")),
                ):
                    t = time.monotonic()
                    try:
                        answer = await call()
                    except httpx.HTTPError as exc:
                        seen.append((kind, t, 0, "", repr(exc), time.monotonic()))
                        continue
                    if isinstance(answer, Attempt):
                        seen.append(
                            (
                                kind,
                                t,
                                answer.status,
                                "json" if isinstance(answer.body, dict) else "?",
                                str(answer.body)[:300],
                                time.monotonic(),
                            )
                        )
                    else:
                        seen.append(
                            (
                                kind,
                                t,
                                answer.status_code,
                                answer.headers.get("content-type", ""),
                                answer.text[:4000],
                                time.monotonic(),
                            )
                        )
                await asyncio.sleep(0.2)

        loader = asyncio.create_task(probe())
        await asyncio.sleep(2)
        down_at = time.monotonic()
        await asyncio.to_thread(self.stack.stop_postgres)
        stopped_at = time.monotonic()
        await asyncio.sleep(5)
        # PostgreSQL accepts connections before start_postgres returns (it then checks the roles), so the
        # outage, for judging answers, ends when the start begins
        starting_at = time.monotonic()
        await asyncio.to_thread(self.stack.start_postgres)
        up_at = time.monotonic()
        # recovered: every kind answers 2xx again (checked on several requests: both web processes)
        recovered_at = None
        while time.monotonic() < up_at + 30:
            await asyncio.sleep(1)
            recent = [s for s in seen if s[1] > time.monotonic() - 3]
            if len(recent) >= 8 and all(200 <= s[2] < 300 for s in recent):
                recovered_at = time.monotonic()
                break
        stop.set()
        await loader
        # judged: the requests that began after PostgreSQL had stopped and ended before it was started again
        during = [s for s in seen if stopped_at < s[1] and s[5] < starting_at]
        row.done += f" ({len(during)} requests during the outage)"
        api = [s for s in during if s[0].startswith("api")]
        row.check(any(s[2] == 503 for s in api), f"no API 503 during the outage: {[s[2] for s in api]}")
        bad_api = [s for s in api if s[2] >= 500 and (s[2] != 503 or (s[3] != "json" and "json" not in s[3]))]
        row.check(
            not bad_api, f"API answers other than 503 JSON: {[(s[0], s[2], s[4][:120]) for s in bad_api][:4]}"
        )
        pages = [s for s in during if s[0] == "page"]
        row.check(bool(pages), "no page request during the outage")
        bad_pages = [
            s
            for s in pages
            if s[2] != 503
            or "text/html" not in s[3]
            or "Traceback" in s[4]
            or "briefly unavailable" not in s[4]
        ]
        row.check(
            not bad_pages,
            "pages not a friendly 503 (seconds after the stop, status, type, body): "
            f"{[(round(s[1] - stopped_at, 2), s[2], s[3], s[4][:160]) for s in bad_pages][:3]}",
        )
        ready = [s[2] for s in during if s[0] == "ready"]
        row.check(
            bool(ready) and all(s == 503 for s in ready),
            f"/ready during the outage ({starting_at - stopped_at:.1f} s): {ready}",
        )
        row.check(
            not any(s[2] == 0 for s in seen if down_at < s[1] < up_at),
            "connections dropped (no HTTP answer) during the outage",
        )
        row.check(recovered_at is not None, "not recovered 30 s after PostgreSQL came back")
        if recovered_at is not None:
            row.done += f"; recovered {recovered_at - up_at:.1f} s after the restart"
        after = (self.web.pid, sorted(p.pid for p in _uvicorn_children(self.web)))
        row.check(after == before, f"web processes were restarted: {before} -> {after}")

    async def stop_redis(self, row: Row, seconds: float) -> Awaitable[None]:
        reseller, customer = self.resellers[1], self.customers[1]
        await asyncio.to_thread(self.stack.stop_redis)
        t0 = time.monotonic()
        ready = await self.http.get("/ready")
        row.check(ready.status_code == 503, f"/ready with Redis down: {ready.status_code} {ready.text[:200]}")
        sent = []
        bought: list[Attempt] = []
        pages: list[int] = []
        while time.monotonic() < t0 + seconds - 1:
            sent.append(await self.transfer("c", customer, 1_000))
            bought.append(await self.buy("c", reseller, DELIVER))
            pages.append((await self.page(customer)).status_code)
            await asyncio.sleep(2)
        await asyncio.sleep(max(0.0, t0 + seconds - time.monotonic()))
        await asyncio.to_thread(self.stack.start_redis)
        row.done += f" (outage {time.monotonic() - t0:.0f} s: {len(sent)} webhooks, {len(bought)} purchases)"
        row.check(
            all(s == 200 for _, s in sent), f"webhook answers during the outage: {[s for _, s in sent]}"
        )
        odd = [(a.status, str(a.body)[:100]) for a in bought if a.status != 201 and not _api_503(a)]
        row.check(not odd, f"purchase answers other than 201 / 503 JSON: {odd[:3]}")
        row.check(all(p in (200, 503) for p in pages), f"pages during the outage: {pages}")
        refused = [a.key for a in bought if a.status != 201]
        debited = await self.sql(
            "SELECT idempotency_key FROM purchases WHERE idempotency_key = ANY($1::text[])", refused
        )
        row.check(not debited, f"{len(debited)} refused purchases were opened (debited) all the same")
        ok = len(bought) - len(refused)
        row.checked += f" [{ok} purchases went through, {len(refused)} refused]"
        ready = await self.http.get("/ready")
        row.check(ready.status_code == 200, f"/ready after: {ready.status_code}")
        refs = [r for r, _ in sent]
        ids = [a.purchase_id for a in bought if a.purchase_id]

        async def settled() -> None:
            # webhooks stored while the queue was down are credited by the worker's funding sweep (every
            # minute), after verification with Monnify (docs/architecture.md, funding lifecycle)
            counts = await self.wait_credited(refs, time.monotonic() + 100)
            row.check(
                all(n == 1 for n in counts.values()), f"credits per webhook after Redis returned: {counts}"
            )
            verified = [self.stack.monnify.calls(f"/api/v2/transactions/{quote(r, safe='')}") for r in refs]
            row.check(all(n >= 1 for n in verified), f"webhooks credited without verification: {verified}")
            states = await self.wait_final(ids, time.monotonic() + 90)
            row.check(all(s == "successful" for s in states.values()), f"purchases of the outage: {states}")

        return settled()

    async def provider_outage(self, row: Row, seconds_5xx: float, seconds_hang: float) -> None:
        sim = self.stack.vtpass
        sim.configure(None, outcome="delivered", http_status=503, process=True, on=("pay", "requery"))
        t0 = time.monotonic()
        tasks: list[asyncio.Task[Attempt]] = []
        i = 0
        while time.monotonic() < t0 + seconds_5xx:
            tasks.append(asyncio.create_task(self.buy("d", self.resellers[i % RESELLERS], DELIVER)))
            i += 1
            await asyncio.sleep(2.5)
        sim.configure(None, outcome="delivered", hang=60.0, process=True, on=("pay", "requery"))
        t1 = time.monotonic()
        while time.monotonic() < t1 + seconds_hang:
            tasks.append(asyncio.create_task(self.buy("d", self.resellers[i % RESELLERS], DELIVER)))
            i += 1
            await asyncio.sleep(3)
        early = await asyncio.gather(*[t for t in tasks if t.done()])
        during = await self.purchase_states([a.purchase_id for a in early if a.purchase_id])
        row.check(all(s == "pending" for s in during.values()), f"settled while VTpass was down: {during}")
        sim.configure(None, outcome="delivered")  # VTpass answers again
        row.done += f" ({time.monotonic() - t0:.0f} s of faults, {len(tasks)} purchases)"
        bought = await asyncio.gather(*tasks)
        row.check(all(a.status == 201 for a in bought), f"answers: {[a.status for a in bought]}")
        ids = [a.purchase_id for a in bought if a.purchase_id]
        states = await self.wait_final(ids, time.monotonic() + 120)
        row.check(all(s == "successful" for s in states.values()), f"after the outage: {states}")
        refunds = await self.sql(
            "SELECT count(*) AS n FROM ledger_transactions WHERE idempotency_key = ANY($1::text[])",
            [f"refund:{i}" for i in ids],
        )
        row.check(refunds[0]["n"] == 0, f"{refunds[0]['n']} blind refunds")

    async def final(self, row: Row) -> None:
        await asyncio.gather(*self.deferred)
        ids = [a.purchase_id for a in self.attempts if a.purchase_id]
        states = await self.wait_final(ids, time.monotonic() + 60)
        pending = await self.sql("SELECT id::text, needs_attention FROM purchases WHERE status = 'pending'")
        row.check(not pending, f"{len(pending)} purchases still pending: {[dict(p) for p in pending][:3]}")
        row.check(len(states) == len(set(ids)), "a 201 purchase is missing from the database")
        reconcile = await asyncio.to_thread(self.stack.cli, "ledger", "reconcile")
        row.check(
            reconcile.returncode == 0,
            f"vtu ledger reconcile exit {reconcile.returncode}: {reconcile.stdout[-400:]}",
        )
        counts = await self.credits(list(self.webhooks))
        accepted = [r for r, (_, _, s) in self.webhooks.items() if s == 200]
        row.check(
            all(counts[r] == 1 for r in accepted), f"credits per accepted webhook: {sorted(counts.values())}"
        )
        row.check(all(counts[r] <= 1 for r in counts), "a webhook credited twice")
        # money: each wallet == its transfers - its purchases that were not refunded (nothing debited twice,
        # nothing debited for a refused request, every refund exactly once)
        for user in self.resellers + self.customers:
            got = await self.sql(
                "SELECT a.balance, "
                " (SELECT coalesce(sum(amount_kobo), 0) FROM purchases p WHERE p.user_id = a.user_id "
                "   AND p.status IN ('pending', 'successful')) AS spent "
                "FROM ledger_accounts a WHERE a.kind = 'wallet' AND a.user_id = $1::uuid",
                user.id,
            )
            funded = sum(
                k for r, (_, k, _) in self.webhooks.items() if r in accepted and self._owner(r) == user
            )
            row.check(
                got[0]["balance"] == funded - got[0]["spent"],
                f"{user.email}: balance {got[0]['balance']} != funded {funded} - spent {got[0]['spent']}",
            )
        row.checked += f" [{len(set(ids))} purchases, {len(self.webhooks)} webhooks]"

    def _owner(self, ref: str) -> User | None:
        transaction = self.stack.monnify.transactions.get(ref)
        reference = transaction.account_reference if transaction else None
        return next((u for u in self.resellers + self.customers if u.account_reference == reference), None)


def _json_or_text(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return answer.text[:500]


def _api_503(attempt: Attempt) -> bool:
    return attempt.status == 503 and isinstance(attempt.body, dict) and "error" in attempt.body


def _cookies(answer: httpx.Response) -> dict[str, str]:
    found = {}
    for header in answer.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def _cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _uvicorn_children(web: Proc) -> list[psutil.Process]:
    return [p for p in psutil.Process(web.pid).children() if "spawn_main" in " ".join(p.cmdline())]


def print_table(rows: list[Row], total: float, budget: float) -> None:
    headers = ("step", "what was done", "what was checked", "result", "seconds")
    lines = [(r.step, r.done, r.checked, "PASS" if r.ok else "FAIL", f"{r.seconds:.0f}") for r in rows]
    print()
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for line in lines:
        print("| " + " | ".join(line) + " |")
    print(f"\ntotal {total:.0f} s (budget {budget:.0f} s)")


async def run(stack: Stack, redis_seconds: float) -> list[Row]:
    drill = Drill(stack)
    try:
        await drill.step(
            Row(
                "0 start",
                "embedded PostgreSQL + Redis, migrate, simulators, vtu run --workers 2 (APP_ENV=prod), "
                "2 x vtu workers run, 2 resellers (vtu users create + apikeys create)",
                "/ready 200, 2 web processes",
            ),
            drill.start,
        )
        if not drill.rows[-1].ok:
            return drill.rows
        await drill.step(
            Row(
                "1 load",
                "3 web sign-ups, 5 signed webhooks, 12 API purchases",
                "webhooks credited once, delivered / failed / pending-then-delivered states, "
                "sandbox number 400 in prod",
            ),
            drill.seed,
        )
        await drill.step(
            Row(
                "a worker kill -9",
                "12 purchases pending at VTpass, kill -9 one worker mid-requery, restart it",
                "all 12 successful, no refund, both workers up",
            ),
            drill.kill_worker,
        )
        await drill.step(
            Row(
                "b PostgreSQL restart",
                "load (API buy + wallet, a page, /ready), stop PostgreSQL 5 s, start it",
                "API 503 JSON, page friendly 503, /ready 503; recovery without restarting web",
            ),
            drill.restart_postgres,
        )
        await drill.step(
            Row(
                "c Redis outage",
                f"stop Redis {redis_seconds:.0f} s; webhooks, API purchases, pages meanwhile",
                "/ready 503, webhooks 200 and credited once after (verified), "
                "purchases 201 or refused with nothing debited",
            ),
            lambda row: drill.stop_redis(row, redis_seconds),
        )
        await drill.step(
            Row(
                "d VTpass outage",
                "VTpass answers 503 for 20 s, then hangs for 15 s, during purchases",
                "stay pending (none settled or refunded blind), all successful after",
            ),
            lambda row: drill.provider_outage(row, 20, 15),
        )
        await drill.step(
            Row(
                "end",
                "wait for the requery schedule; vtu ledger reconcile",
                "no purchase pending, reconcile clean, each webhook credited once, balances = funded - spent",
            ),
            drill.final,
        )
    finally:
        await drill.http.aclose()
    return drill.rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-seconds", type=float, default=20, help="Redis outage (default 20 s)")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS, help="time budget in seconds (360)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) afterwards")
    options = parser.parse_args()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="vtu-drill-"))
    root.chmod(0o755)  # the embedded PostgreSQL runs as its own system user when the drill runs as root
    print(f"fault drill: stack under {root}", flush=True)
    stack = Stack(root)
    rows: list[Row] = []
    try:
        rows = asyncio.run(run(stack, options.redis_seconds))
    finally:
        stack.stop_all()
        total = time.monotonic() - started
        if rows:
            print_table(rows, total, options.budget)
        failed = not rows or any(not r.ok for r in rows)
        if failed or options.keep:
            print(f"logs kept in {root / 'logs'}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    over = total > options.budget
    if over:
        print(f"FAIL: the drill took {total:.0f} s, over its {options.budget:.0f} s budget")
    return 1 if failed or over else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
