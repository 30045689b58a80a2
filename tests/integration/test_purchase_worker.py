"""Pending purchases resolved by a REAL SAQ worker process (`python -m app workers run`) over real Redis,
requerying the VTpass simulator over HTTP; and a worker killed mid-requery losing nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from app.vtu.models import FAILED, PENDING, SUCCESSFUL, Purchase
from app.vtu.orders import PurchaseRequest
from app.vtu.scheduling import SaqScheduler, verify_key
from app.vtu.transitions import UNRESOLVED
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    SHORT_SCHEDULE,
    Harness,
    assert_reconciled,
    load,
    money,
    new_buyer,
    postings_for,
    sim_env,
    vtpass_harness,
)
from workers.settings import saq_config

# pytest fixtures shared by the purchase-engine tests
sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server


ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT = 4  # seconds: a job "active" longer than this had its worker die


class Worker:
    """`python -m app workers run` in its own process group (so kill takes its children too)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "workers", "run"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, the job in progress stays 'active' in Redis."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory) -> Iterator[str]:
    """A Redis server of our own: the shared test Redis is flushed by other test processes (every test's
    clean_db), which would delete this module's SAQ jobs under a running worker."""
    from app.core.embedded import redis_server_binary

    directory = tmp_path_factory.mktemp("redis")
    sock = directory / "redis.sock"
    proc = subprocess.Popen(
        [str(redis_server_binary()), "--port", "0", "--unixsocket", str(sock), "--save", "",
         "--appendonly", "no", "--dir", str(directory), "--logfile", str(directory / "redis.log")],
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert time.monotonic() < deadline, "private redis-server did not start"
        time.sleep(0.02)
    yield f"unix://{sock}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def worker_env(sim_server, settings, tmp_path_factory, private_redis) -> dict[str, Any]:
    env = {
        **os.environ,
        "REDIS_URL": private_redis,
        **sim_env(sim_server[1].url, sim_server[0]),
        "VTU_VERIFY_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT),
        "LOG_LEVEL": "INFO",
    }
    return {"env": env, "log": tmp_path_factory.mktemp("worker") / "worker.log"}


@pytest.fixture(scope="module")
def worker(worker_env) -> Iterator[Worker]:
    proc = Worker(worker_env["env"], worker_env["log"])
    proc.start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def queue(settings, private_redis) -> AsyncIterator[Any]:
    q = saq_config(dataclasses.replace(settings, redis_url=private_redis)).get_queues().get("vtu")
    await q.connect()
    await q.redis.flushdb()  # each test starts with an empty queue, like clean_db does for the rest
    yield q
    await q.disconnect()


@pytest_asyncio.fixture(loop_scope="session")
async def saq_vt(db, sessionmaker, settings, sim_server, sim, queue, worker) -> AsyncIterator[Harness]:
    """The purchase service, enqueuing requeries to SAQ exactly as the web process does."""
    harness = vtpass_harness(
        sessionmaker,
        settings,
        sim_server[1].url,
        sim,
        scheduler=SaqScheduler(queue, timeout_seconds=JOB_TIMEOUT),
    )
    await wait_for_worker(queue)
    yield harness
    await harness.aclose()


async def wait_for_worker(queue: Any, timeout: float = 30) -> None:
    """Until the worker answers a ping. A ping can be 'swept' by SAQ's own clean-up racing a worker that is
    just starting (it sees the job active before its status says so): ask again."""
    from saq.queue.base import JobError

    deadline = time.monotonic() + timeout
    while True:
        try:
            if await queue.apply("ping", timeout=max(1.0, deadline - time.monotonic())) == "pong":
                return
        except JobError:
            pass
        assert time.monotonic() < deadline, "the SAQ worker never answered"


async def wait_for(sessionmaker, purchase_id, predicate, timeout: float = 20) -> Purchase:
    deadline = time.monotonic() + timeout
    while True:
        purchase = await load(sessionmaker, purchase_id)
        if predicate(purchase):
            return purchase
        assert time.monotonic() < deadline, f"timed out; purchase is {purchase.status}, {purchase.exchanges}"
        await asyncio.sleep(0.2)


def airtime(phone: str) -> PurchaseRequest:
    return PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=50_000)


async def test_worker_requeries_pending_until_delivered(saq_vt: Harness, sessionmaker, sim, queue) -> None:
    sim.configure("08012340001", pending_answers=2, outcome="delivered", pending_code="099")
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await saq_vt.service.buy(buyer, airtime("08012340001"))
    assert purchase.status == PENDING
    assert await queue.job(verify_key(purchase.id, 1)) is not None  # handed to the worker
    done = await wait_for(sessionmaker, purchase.id, lambda p: p.status != PENDING)
    assert done.status == SUCCESSFUL and done.attempts == 1  # pay pending, requery 1 pending, 2 delivered
    assert [e["source"] for e in done.exchanges] == ["web", "worker", "worker"]
    assert len(sim.pay_requests(purchase.request_id)) == 1
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_) == (950_000, 0, 50_000)
    await assert_reconciled(sessionmaker)


async def test_worker_requery_failure_refunds(saq_vt: Harness, sessionmaker, sim) -> None:
    sim.configure("08012340002", pending_answers=1, outcome="failed")
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await saq_vt.service.buy(buyer, airtime("08012340002"))
    done = await wait_for(sessionmaker, purchase.id, lambda p: p.status != PENDING)
    assert done.status == FAILED
    assert (await money(sessionmaker, buyer.id)).wallet == 1_000_000
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"refund:{purchase.id}",
    ]
    await assert_reconciled(sessionmaker)


async def test_worker_flags_unresolved_after_the_schedule(saq_vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await saq_vt.service.buy(buyer, airtime("500000000000"))  # unexpected, then pending forever
    done = await wait_for(sessionmaker, purchase.id, lambda p: p.needs_attention)
    assert done.status == PENDING and done.attempts == len(SHORT_SCHEDULE)
    assert (done.attention_reason or "").startswith(UNRESOLVED)
    assert (await money(sessionmaker, buyer.id)).in_flight == 50_000  # held, never refunded blind
    await assert_reconciled(sessionmaker)


async def test_killing_the_worker_mid_requery_loses_nothing(
    saq_vt: Harness, sessionmaker, sim, worker, queue
) -> None:
    sim.configure("08012340003", pending_answers=1, outcome="delivered", latency=2.0, on=("requery",))
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await saq_vt.service.buy(buyer, airtime("08012340003"))
    assert purchase.status == PENDING
    # Wait until the worker is inside requery 1 (the simulator has the request), then kill it.
    deadline = time.monotonic() + 15
    while not any(r.path == "/api/requery" for r in sim.requests):
        assert time.monotonic() < deadline, "the worker never requeried"
        await asyncio.sleep(0.05)
    worker.kill()
    job = await queue.job(verify_key(purchase.id, 1))
    assert job is not None and job.status == "active"  # orphaned: nobody is working on it
    assert (await load(sessionmaker, purchase.id)).status == PENDING
    sim.configure("08012340003", pending_answers=1, outcome="delivered")  # no more latency
    worker.start()
    await wait_for_worker(queue)
    await asyncio.sleep(JOB_TIMEOUT + 0.5)  # the orphaned job is now past its timeout
    # `vtu purchases sweep` (what the every-minute cron runs) revives the lost requery.
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "purchases", "sweep", "--grace-seconds", "0"],
        cwd=ROOT, env=worker.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    if "1 pending purchases due" not in result.stdout:
        # The restarted worker's own every-minute sweep (the same code) got there first: a minute boundary
        # fell inside the waits above, which happens on a busy machine. Then it was revived, not lost.
        assert "0 pending purchases due" in result.stdout, result.stdout
        revived = await queue.job(verify_key(purchase.id, 1))
        current = await load(sessionmaker, purchase.id)
        assert current.status != PENDING or revived is None or revived.status != "active", result.stdout
    done = await wait_for(sessionmaker, purchase.id, lambda p: p.status != PENDING)
    assert done.status == SUCCESSFUL
    assert len(sim.pay_requests(purchase.request_id)) == 1
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"delivery:{purchase.id}",
    ]
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_) == (950_000, 0, 50_000)
    await assert_reconciled(sessionmaker)


async def test_worker_sends_a_purchase_held_after_019_when_it_falls_due(
    db, sessionmaker, settings, sim_server, sim, queue, worker
) -> None:
    """VTpass 019 (same product and number inside its window): the second purchase is held, not refunded;
    the job scheduled for its send time makes the worker send it with a new request id, and it ends
    delivered."""
    from app.vtu.config import VtuConfig

    sim.duplicate_window = 1.5
    harness = vtpass_harness(
        sessionmaker, settings, sim_server[1].url, sim,
        scheduler=SaqScheduler(queue, timeout_seconds=JOB_TIMEOUT),
        config=VtuConfig(duplicate_hold_seconds=2),
    )  # fmt: skip
    try:
        await wait_for_worker(queue)
        buyer = await new_buyer(sessionmaker, fund=1_000_000)
        first = await harness.service.buy(buyer, airtime("08011111111"))
        held = await harness.service.buy(buyer, airtime("08011111111"))
        assert first.status == SUCCESSFUL
        assert (held.status, held.attempt_no) == (PENDING, 2) and held.send_at is not None
        assert await queue.job(verify_key(held.id, held.attempts + 1)) is not None
        done = await wait_for(sessionmaker, held.id, lambda p: p.status != PENDING)
        assert done.status == SUCCESSFUL and done.request_id == held.request_id
        assert len(sim.pay_requests(held.request_id)) == 1 and len(sim.delivered_to("08011111111")) == 2
        assert await postings_for(sessionmaker, held.id) == [f"purchase:{held.id}", f"delivery:{held.id}"]
        assert (await money(sessionmaker, buyer.id)).wallet == 1_000_000 - 2 * 50_000
    finally:
        await harness.aclose()
    await assert_reconciled(sessionmaker)
