"""Purchase-completion callbacks over real HTTP: an API purchase that finishes is POSTed, signed, to the key's
callback URL (a tiny receiver server) by a SAQ worker built exactly like `vtu workers run` (same TASKS,
same start-up), and a failed delivery is retried by SAQ."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from saq import Worker

from app.api import callbacks
from app.api.callbacks import delivery_key, verify_signature
from tests.fakes.server import serve
from tests.integration import api_fixtures
from tests.integration.api_fixtures import DELIVERED, FAILING, airtime, new_reseller
from workers.context import shutdown, startup
from workers.settings import QUEUE_NAME, TASKS, _resolve, saq_config

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http


class Receiver:
    """An ASGI app that records every POST and answers with the next status from `statuses` (then 200)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.calls: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.calls.append((headers, body))
        status = self.statuses.pop(0) if self.statuses else 200
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def receiver() -> Any:
    app = Receiver()
    with serve(app) as server:
        yield app, server.url


@pytest_asyncio.fixture(loop_scope="session")
async def worker(api, settings, monkeypatch) -> AsyncIterator[Any]:
    """A SAQ worker on this event loop with the real task list and start-up (as `vtu workers run`)."""
    monkeypatch.setattr(callbacks, "CALLBACK_RETRY_DELAY_SECONDS", 0.2)
    queue = saq_config(settings).get_queues().get(QUEUE_NAME)
    await queue.connect()
    w = Worker(queue, functions=[_resolve(t) for t in TASKS], startup=[startup], shutdown=[shutdown],
               concurrency=4, dequeue_timeout=0.2)  # fmt: skip
    task = asyncio.create_task(w.start())
    yield queue
    await w.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await queue.disconnect()


async def wait_for(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_the_task_is_registered_for_the_worker():
    assert "app.api.callbacks:deliver_purchase_callback" in TASKS
    assert "app.api.callbacks" in __import__("app.core.events", fromlist=["x"]).LISTENER_MODULES


async def test_callback_is_signed_and_retried_after_a_failure(http, sessionmaker, receiver, worker):
    recv, url = receiver
    recv.calls.clear()
    recv.statuses[:] = [500]  # the first delivery fails
    reseller = await new_reseller(sessionmaker, callback_url=f"{url}/vtu/hook")
    made = await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=reseller.buy_headers())
    assert made.status_code == 201 and made.json()["status"] == "successful"
    await wait_for(lambda: len(recv.calls) >= 2)
    current = (await http.get(f"/api/v1/purchases/{made.json()['id']}", headers=reseller.headers)).json()
    for attempt, (headers, body) in enumerate(recv.calls, 1):
        assert json.loads(body) == current == made.json()
        assert headers["content-type"] == "application/json"
        assert headers["x-vtu-signature"].startswith("sha256=")
        assert verify_signature(body, headers["x-vtu-signature"], reseller.callback_secret)
        assert not verify_signature(body + b" ", headers["x-vtu-signature"], reseller.callback_secret)
        assert headers["x-vtu-event"] == "purchase.finished"
        assert headers["x-vtu-delivery"] == delivery_key(made.json()["id"], "successful")
        assert headers["x-vtu-attempt"] == str(attempt)
    await asyncio.sleep(0.5)
    assert len(recv.calls) == 2  # delivered: no more attempts
    job = await worker.job(delivery_key(made.json()["id"], "successful"))
    assert job is not None and job.status == "complete" and job.attempts == 2


async def test_failed_purchase_is_called_back_and_keys_without_url_are_not(
    http, sessionmaker, receiver, worker
):
    recv, url = receiver
    recv.calls.clear()
    recv.statuses.clear()
    silent = await new_reseller(sessionmaker)
    quiet = await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=silent.buy_headers())
    assert quiet.status_code == 201
    reseller = await new_reseller(sessionmaker, callback_url=f"{url}/hook")
    made = await http.post("/api/v1/purchases", json=airtime(FAILING), headers=reseller.buy_headers())
    assert made.json()["status"] == "failed"
    await wait_for(lambda: len(recv.calls) >= 1)
    await asyncio.sleep(0.5)
    assert len(recv.calls) == 1
    headers, body = recv.calls[0]
    assert json.loads(body)["id"] == made.json()["id"] and json.loads(body)["status"] == "failed"
    assert verify_signature(body, headers["x-vtu-signature"], reseller.callback_secret)
    assert await worker.job(delivery_key(quiet.json()["id"], "successful")) is None


async def _delivery(sessionmaker, purchase_id: str, status: str) -> Any:
    from sqlalchemy import text

    async with sessionmaker() as session:
        return (
            await session.execute(
                text(
                    "SELECT attempts, delivered_at, gave_up_at, last_error FROM api_callback_deliveries"
                    " WHERE purchase_id = :pid AND final_status = :status"
                ),
                {"pid": purchase_id, "status": status},
            )
        ).one_or_none()


async def _age(sessionmaker, purchase_id: str, seconds: int) -> None:
    from sqlalchemy import text

    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE purchases SET completed_at = completed_at - make_interval(secs => :s) WHERE id = :pid"
            ),
            {"s": seconds, "pid": purchase_id},
        )


async def test_each_attempt_is_recorded(http, sessionmaker, receiver, worker):
    recv, url = receiver
    recv.calls.clear()
    recv.statuses[:] = [503]
    reseller = await new_reseller(sessionmaker, callback_url=f"{url}/hook")
    made = (
        await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=reseller.buy_headers())
    ).json()
    await wait_for(lambda: len(recv.calls) >= 2)
    await asyncio.sleep(0.3)
    row = await _delivery(sessionmaker, made["id"], "successful")
    assert row is not None and row.attempts == 2 and row.delivered_at is not None
    assert row.gave_up_at is None and row.last_error is None


async def test_a_lost_enqueue_is_recovered_by_the_sweep_once(
    http, sessionmaker, receiver, worker, monkeypatch
):
    from types import SimpleNamespace

    from redis.exceptions import ConnectionError as RedisDown

    recv, url = receiver
    recv.calls.clear()
    recv.statuses.clear()
    reseller = await new_reseller(sessionmaker, callback_url=f"{url}/lost")

    def redis_down(*_: Any) -> Any:
        raise RedisDown("Redis is down")

    monkeypatch.setattr(callbacks, "_enqueue_kwargs", redis_down)  # the enqueue after commit fails
    made = await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=reseller.buy_headers())
    assert made.status_code == 201 and made.json()["status"] == "successful"  # the buyer is not affected
    monkeypatch.undo()
    await asyncio.sleep(0.5)
    assert recv.calls == [] and await _delivery(sessionmaker, made.json()["id"], "successful") is None

    ctx = {"sessionmaker": sessionmaker, "worker": SimpleNamespace(queue=worker)}
    assert await callbacks.sweep_api_callbacks(ctx) == {"missing": 0, "enqueued": 0}  # within the grace
    await _age(sessionmaker, made.json()["id"], callbacks.SWEEP_GRACE_SECONDS + 5)
    assert await callbacks.sweep_api_callbacks(ctx) == {"missing": 1, "enqueued": 1}
    await wait_for(lambda: len(recv.calls) >= 1)
    headers, body = recv.calls[0]
    assert json.loads(body)["id"] == made.json()["id"]
    assert verify_signature(body, headers["x-vtu-signature"], reseller.callback_secret)
    for _ in range(100):
        row = await _delivery(sessionmaker, made.json()["id"], "successful")
        if row is not None:
            break
        await asyncio.sleep(0.05)
    assert row is not None and row.delivered_at is not None
    assert await callbacks.sweep_api_callbacks(ctx) == {"missing": 0, "enqueued": 0}  # recorded: done
    await asyncio.sleep(0.3)
    assert len(recv.calls) == 1


async def test_the_sweep_leaves_deliveries_that_are_retrying_or_revoked_alone(
    http, sessionmaker, receiver, worker
):
    from types import SimpleNamespace

    from sqlalchemy import text

    recv, url = receiver
    recv.calls.clear()
    recv.statuses[:] = [500] * 3
    reseller = await new_reseller(sessionmaker, callback_url=f"{url}/flaky")
    made = (
        await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=reseller.buy_headers())
    ).json()
    await wait_for(lambda: len(recv.calls) >= 1)
    await asyncio.sleep(0.3)
    await _age(sessionmaker, made["id"], callbacks.SWEEP_GRACE_SECONDS + 5)
    ctx = {"sessionmaker": sessionmaker, "worker": SimpleNamespace(queue=worker)}
    assert (await callbacks.sweep_api_callbacks(ctx))["missing"] == 0  # recorded: SAQ's retries own it
    # A revoked key's purchases are not swept.
    other = await new_reseller(sessionmaker)
    quiet = (
        await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=other.buy_headers())
    ).json()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE api_keys SET callback_url = :u, revoked_at = now() WHERE id = :k"),
            {"u": f"{url}/revoked", "k": other.key_id},
        )
    await _age(sessionmaker, quiet["id"], callbacks.SWEEP_GRACE_SECONDS + 5)
    assert (await callbacks.sweep_api_callbacks(ctx))["missing"] == 0
    await wait_for(lambda: len(recv.calls) >= 4)  # the flaky one still gets through by itself
    await asyncio.sleep(0.3)
    assert all(json.loads(body)["id"] != quiet["id"] for _, body in recv.calls)


async def test_after_the_last_attempt_the_delivery_is_given_up(
    http, sessionmaker, receiver, worker, monkeypatch
):
    monkeypatch.setattr(callbacks, "CALLBACK_ATTEMPTS", 2)
    recv, url = receiver
    recv.calls.clear()
    recv.statuses[:] = [500, 502, 500]
    reseller = await new_reseller(sessionmaker, callback_url=f"{url}/down")
    made = (
        await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=reseller.buy_headers())
    ).json()
    await wait_for(lambda: len(recv.calls) >= 2)
    await asyncio.sleep(0.5)
    assert len(recv.calls) == 2
    row = await _delivery(sessionmaker, made["id"], "successful")
    assert row.attempts == 2 and row.delivered_at is None and row.gave_up_at is not None
    assert row.last_error == "callback URL answered 502"
