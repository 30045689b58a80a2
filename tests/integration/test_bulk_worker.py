"""A bulk order bought by a REAL SAQ worker process (`python -m app workers run`) over real Redis and the
VTpass simulator over HTTP; the worker is SIGKILLed mid-run and restarted, and the order finishes with every
line bought exactly once (app/vtu/bulk_runner.py: the lease, `sent` lines and their idempotency keys)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from app.vtu.bulk import BulkService, line_key
from app.vtu.bulk_runner import sweep
from app.vtu.scheduling import SaqScheduler
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    Harness,
    assert_reconciled,
    money,
    new_buyer,
    sim_env,
    vtpass_harness,
)
from tests.integration.test_purchase_worker import (  # the same worker process and private Redis
    JOB_TIMEOUT,
    Worker,
    private_redis,
    queue,
    wait_for_worker,
)

sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
__all__ = ["private_redis", "queue"]  # fixtures used by name below

LINES = 60
LEASE = 3


@pytest.fixture(scope="module")
def worker(sim_server, tmp_path_factory, private_redis) -> Iterator[Worker]:
    env = {
        **os.environ,
        "REDIS_URL": private_redis,
        **sim_env(sim_server[1].url, sim_server[0]),
        "VTU_VERIFY_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT),
        "BULK_LINES_PER_SECOND": "10",
        "BULK_LEASE_SECONDS": str(LEASE),
        "LOG_LEVEL": "INFO",
    }
    proc = Worker(env, tmp_path_factory.mktemp("bulk-worker") / "worker.log")
    proc.start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def harness(db, sessionmaker, settings, sim_server, sim, queue, worker) -> AsyncIterator[Harness]:
    h = vtpass_harness(
        sessionmaker,
        settings,
        sim_server[1].url,
        sim,
        scheduler=SaqScheduler(queue, timeout_seconds=JOB_TIMEOUT),
    )
    await wait_for_worker(queue)
    yield h
    await h.aclose()


async def line_states(sessionmaker: Any, bulk_id: Any) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text("SELECT status, count(*) FROM bulk_order_lines WHERE bulk_id = :b GROUP BY status"),
            {"b": bulk_id},
        )
        return {s: int(n) for s, n in rows.all()}


async def test_a_worker_killed_mid_run_resumes_without_duplicates(
    harness: Harness, sessionmaker, sim, worker: Worker, queue
) -> None:
    sim.configure(outcome="delivered", latency=0.15)  # /pay takes a moment: the kill may land inside one
    start = LINES * 10_000 + 77_700
    buyer = await new_buyer(sessionmaker, fund=start)
    service = BulkService(sessionmaker, harness.service, queue)
    content = "\n".join(f"0803{i:07d},100" for i in range(1, LINES + 1))
    prepared = await service.prepare_upload(buyer, "airtime", content)
    bulk_id = prepared.bulk.id
    await service.confirm(buyer.id, bulk_id)  # enqueues the run for the worker
    deadline = time.monotonic() + 30
    while sum(n for s, n in (await line_states(sessionmaker, bulk_id)).items() if s != "queued") < 15:
        assert time.monotonic() < deadline, "the worker never started the bulk order"
        await asyncio.sleep(0.05)
    worker.kill()
    states = await line_states(sessionmaker, bulk_id)
    assert states.get("queued", 0) > 0, states  # killed part-way
    assert (await service.get(buyer.id, bulk_id)).status == "running"
    await asyncio.sleep(1)
    assert await line_states(sessionmaker, bulk_id) == states  # nobody is buying now

    worker.start()
    await wait_for_worker(queue)
    await asyncio.sleep(LEASE + 0.5)  # the dead runner's lease has lapsed
    # What the every-minute cron `sweep_bulk_orders` runs (it may have got there first: then 0 here).
    assert await sweep(sessionmaker, service) in (0, 1)
    deadline = time.monotonic() + 60
    while (await service.get(buyer.id, bulk_id, lines=False)).status != "done":
        assert time.monotonic() < deadline, await line_states(sessionmaker, bulk_id)
        await asyncio.sleep(0.2)

    done = await service.get(buyer.id, bulk_id)
    assert all(li.purchase_id is not None for li in done.lines)
    assert set(done.counts) <= {"successful", "pending"}, done.counts
    async with sessionmaker() as session:
        keys = dict(
            (
                await session.execute(
                    text(
                        "SELECT idempotency_key, count(*) FROM purchases WHERE user_id = :u"
                        " GROUP BY idempotency_key"
                    ),
                    {"u": buyer.id},
                )
            ).all()
        )
        sent = (
            await session.execute(
                text("SELECT request_id, status FROM purchases WHERE user_id = :u"), {"u": buyer.id}
            )
        ).all()
        charged = (
            await session.execute(
                text("SELECT sum(amount_kobo) FROM purchases WHERE user_id = :u"), {"u": buyer.id}
            )
        ).scalar_one()
    assert keys == {line_key(bulk_id, n): 1 for n in range(1, LINES + 1)}  # every line exactly once
    # /pay at most once per purchase, never twice; a delivered one exactly once. A kill that lands between
    # the purchase's commit and its /pay leaves it pending with no /pay: the sweep's requery settles it
    # (VTpass 015 after the grace -> failed and refunded), and it is never sent again.
    pays = {rid: (status, len(sim.pay_requests(rid))) for rid, status in sent}
    assert all(n <= 1 for _, n in pays.values()), pays
    assert all(n == 1 for status, n in pays.values() if status == "successful"), pays
    assert charged == LINES * 10_000
    assert (await money(sessionmaker, buyer.id)).wallet == start - charged
    await assert_reconciled(sessionmaker)
