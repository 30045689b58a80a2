"""Serving with several processes and stopping gracefully (docs/architecture.md "Processes"), on real
`vtu run` / `vtu workers run` processes over real HTTP, PostgreSQL and Redis:
- `vtu run --workers 2`: two uvicorn worker processes under one supervisor, both serving, one session;
- SIGTERM while a purchase waits on a slow provider: the client still gets its 201, one debit, exit 0;
- SIGTERM to a SAQ worker (2 processes) inside a slow requery: the job finishes, both processes exit;
- bad `--workers` / `--concurrency` values: a usage error, no traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from app.vtu.models import PENDING, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.scheduling import SaqScheduler, verify_key
from tests.fakes.server import free_port
from tests.integration import purchase_fixtures, test_purchase_worker
from tests.integration.api_fixtures import airtime, new_reseller
from tests.integration.purchase_fixtures import (
    assert_reconciled,
    money,
    new_buyer,
    sim_env,
    vtpass_harness,
)
from tests.integration.test_purchase_worker import wait_for, wait_for_worker
from workers.settings import saq_config

sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
private_redis = test_purchase_worker.private_redis  # a Redis of this module's own for the SAQ worker

ROOT = Path(__file__).resolve().parents[2]
GRACE = 15  # SHUTDOWN_GRACE_SECONDS for these processes
SLOW_PHONE = "08012349002"


class Web:
    """`vtu run ...` in a process group of its own, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", "run", "--host", "127.0.0.1", "--port", str(self.port), *args],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"vtu run did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(GRACE + 10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LOG_LEVEL": "INFO", "SHUTDOWN_GRACE_SECONDS": str(GRACE), **extra}


@pytest.fixture
def web_log(tmp_path: Path) -> Path:
    return tmp_path / "web.log"


def _serving_children(pid: int) -> list[psutil.Process]:
    """uvicorn's worker processes under the supervisor (not multiprocessing's resource tracker)."""
    return [p for p in psutil.Process(pid).children() if "spawn_main" in " ".join(p.cmdline())]


def _owner(children: list[psutil.Process], port: int, local_port: int) -> int | None:
    """Which worker process holds the server end of the connection from `local_port`."""
    for child in children:
        for conn in child.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.raddr and conn.raddr.port == local_port:
                return child.pid
    return None


async def _customer(sessionmaker: Any) -> tuple[str, str]:
    from app.accounts.services import SignUp, UserService

    email, password = f"multi-{uuid.uuid4().hex[:8]}@example.ng", "multi-Process-pass-1"
    async with sessionmaker() as session:
        await UserService(session=session).register(
            SignUp(email=email, password=password, full_name="Multi", email_verified=True)
        )
        await session.commit()
    return email, password


async def test_two_web_processes_serve_one_session(service_urls, clean_db, sessionmaker, web_log) -> None:
    email, password = await _customer(sessionmaker)
    web = Web(["--workers", "2"], _env(), web_log)
    try:
        await asyncio.to_thread(web.wait_ready)
        children = _serving_children(web.proc.pid)
        assert len(children) == 2, [c.cmdline() for c in children]
        assert all(c.ppid() == web.proc.pid for c in children)  # the supervisor's own children
        # Log in through whichever process takes the connection.
        async with httpx.AsyncClient(base_url=web.url, timeout=30) as client:
            page = await client.get("/login")
            token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
            assert token
            data = {"email": email, "password": password, "_csrf_token": token.group(1)}
            answer = await client.post("/login", data=data)
            assert answer.status_code == 303, answer.text[:300]
            cookies = dict(client.cookies.items())
        # Keep-alive connections opened one at a time land on both processes; every one of them sees the
        # session (it lives in Redis) and serves the signed-in dashboard.
        owners: dict[int, list[int]] = {}
        clients: list[httpx.AsyncClient] = []
        try:
            for _ in range(40):
                client = httpx.AsyncClient(
                    base_url=web.url, timeout=30, cookies=cookies, limits=httpx.Limits(max_connections=1)
                )
                clients.append(client)
                assert (await client.get("/health")).status_code == 200
                local_port = _local_port(client)
                owner = await asyncio.to_thread(_owner, children, web.port, local_port)
                assert owner is not None
                owners.setdefault(owner, []).append(len(clients) - 1)
                if len(owners) == 2 and min(len(v) for v in owners.values()) >= 2:
                    break
                await asyncio.sleep(0.05)
            assert set(owners) == {c.pid for c in children}, owners  # both processes took connections
            for indexes in owners.values():
                for i in indexes:
                    dashboard = await clients[i].get("/dashboard")
                    assert dashboard.status_code == 200 and email in dashboard.text
        finally:
            for client in clients:
                await client.aclose()
    finally:
        web.stop()
    assert web.proc.returncode == 0
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def _local_port(client: httpx.AsyncClient) -> int:
    """The local port of the client's one pooled connection (httpx keeps it open between requests)."""
    pool = client._transport._pool  # type: ignore[attr-defined]
    (connection,) = pool.connections
    stream = connection._connection._network_stream
    return int(stream.get_extra_info("socket").getsockname()[1])


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_lets_a_purchase_in_flight_finish(
    workers, service_urls, clean_db, sessionmaker, sim_server, sim, web_log
) -> None:
    sim.configure(SLOW_PHONE, outcome="delivered", latency=2.5)  # /pay answers after 2.5 s
    reseller = await new_reseller(sessionmaker, fund=1_000_000)
    env = _env(**sim_env(sim_server[1].url, sim))
    web = Web(["--workers", str(workers)], env, web_log)
    try:
        await asyncio.to_thread(web.wait_ready)
        answer: dict[str, Any] = {}

        def buy() -> None:
            headers = {**reseller.headers, "Idempotency-Key": f"term-{uuid.uuid4()}"}
            try:
                url, body = f"{web.url}/api/v1/purchases", airtime(SLOW_PHONE)
                response = httpx.post(url, json=body, headers=headers, timeout=30)
                answer["status"], answer["body"] = response.status_code, response.json()
            except httpx.HTTPError as exc:  # pragma: no cover - the failure this test is about
                answer["error"] = repr(exc)

        thread = threading.Thread(target=buy)
        thread.start()
        deadline = time.monotonic() + 20
        while not sim.pay_requests():  # the purchase is at the provider now
            assert time.monotonic() < deadline, "the purchase never reached the simulator"
            await asyncio.sleep(0.02)
        signalled = time.monotonic()
        web.proc.send_signal(signal.SIGTERM)  # the process a supervisor (systemd, docker) signals
        await asyncio.to_thread(thread.join, 30)
        code = await asyncio.to_thread(web.proc.wait, GRACE + 10)
        took = time.monotonic() - signalled
    finally:
        web.stop()
    assert answer.get("status") == 201, answer
    assert answer["body"]["status"] == SUCCESSFUL
    assert code == 0, web_log.read_text()[-3000:]
    assert took < GRACE, took
    assert len(sim.pay_requests()) == 1
    m = await money(sessionmaker, reseller.user_id)
    assert m.wallet == 1_000_000 - answer["body"]["amount_kobo"]  # one debit
    await assert_reconciled(sessionmaker)


async def test_sigterm_lets_a_running_job_finish(
    db, sessionmaker, settings, sim_server, sim, private_redis, tmp_path
) -> None:
    queue = saq_config(dataclasses.replace(settings, redis_url=private_redis)).get_queues().get("vtu")
    await queue.connect()
    await queue.redis.flushdb()
    log = tmp_path / "worker.log"
    env = _env(REDIS_URL=private_redis, **sim_env(sim_server[1].url, sim))
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "workers", "run", "--workers", "2", "--concurrency", "3"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    harness = vtpass_harness(
        sessionmaker, settings, sim_server[1].url, sim, scheduler=SaqScheduler(queue, timeout_seconds=30)
    )
    try:
        await wait_for_worker(queue, timeout=60)
        text = log.read_text()
        assert f"2 process(es) x 1 queue(s) (vtu), concurrency 3 jobs each, shutdown grace {GRACE} s" in text
        children = psutil.Process(proc.pid).children()
        assert len(children) == 1  # the second worker process, forked by the first
        # The requery (the worker's job) takes 3 s at the provider.
        sim.configure("08012349001", pending_answers=1, outcome="delivered", latency=3.0, on=("requery",))
        buyer = await new_buyer(sessionmaker, fund=1_000_000)
        purchase = await harness.service.buy(
            buyer, PurchaseRequest(service_id="mtn", phone="08012349001", amount_kobo=50_000)
        )
        assert purchase.status == PENDING
        deadline = time.monotonic() + 20
        while not any(r.path == "/api/requery" for r in sim.requests):
            assert time.monotonic() < deadline, "the worker never requeried"
            await asyncio.sleep(0.02)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # to the first process only: it stops the other one too
        code = await asyncio.to_thread(proc.wait, GRACE + 10)
        took = time.monotonic() - signalled
        assert code == 0, log.read_text()[-3000:]
        assert took < GRACE, took
        assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
        # The job was not cancelled: it finished and delivered the purchase before the worker exited.
        done = await wait_for(sessionmaker, purchase.id, lambda p: p.status != PENDING, timeout=2)
        assert done.status == SUCCESSFUL
        job = await queue.job(verify_key(purchase.id, 1))
        assert job is not None and job.status == "complete", job
        m = await money(sessionmaker, buyer.id)
        assert (m.wallet, m.in_flight, m.float_) == (950_000, 0, 50_000)
        await assert_reconciled(sessionmaker)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        await harness.aclose()
        await queue.disconnect()


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("web", ["--workers", "0"], "0 is not in the range 1<=x<=64"),
        ("web", ["--workers", "x"], "'x' is not a valid integer"),
        ("web", ["--wc", "65"], "65 is not in the range 1<=x<=64"),
        ("worker", ["--concurrency", "0"], "0 is not in the range"),
        ("worker", ["--workers", "-1"], "-1 is not in the range"),
    ],
)
def test_bad_process_counts_are_usage_errors(command: str, args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from app.core.serve import run_command
    from workers.runner import run_workers_command

    result = CliRunner().invoke(run_command if command == "web" else run_workers_command, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--reload", "--workers", "2"], "--reload runs a single process"),
        (["workers", "run", "--concurrency", "x"], "'x' is not a valid integer"),
    ],
)
def test_the_vtu_script_refuses_them_without_a_traceback(args: list[str], message: str, service_urls) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=_env(COLUMNS="200"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    output = re.sub(r"[│╭╮╰╯─\s]+", " ", done.stdout + done.stderr)
    assert message in output, output
    assert "Traceback" not in output
