"""A real SMTP server in the test process (aiosmtpd on this event loop) and a SAQ worker built like
`vtu workers run` whose settings point at it. Tests read what the server received."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from saq import Worker
from sqlalchemy import text

from app.mail import outbox
from app.mail.sink import Mailbox, Received, serve_async
from workers.context import shutdown, startup
from workers.settings import QUEUE_NAME, TASKS, _resolve, saq_config

LINK = re.compile(r"(https?://[^\s\"<>]+/(?:password/reset|account/verify)/[A-Za-z0-9_\-]+)")


@pytest_asyncio.fixture(loop_scope="session")
async def smtp_server() -> AsyncIterator[tuple[Mailbox, str]]:
    mailbox = Mailbox()
    server, port = await serve_async(mailbox)
    yield mailbox, f"smtp://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@pytest_asyncio.fixture(loop_scope="session")
async def mailbox(smtp_server: tuple[Mailbox, str]) -> Mailbox:
    return smtp_server[0]


async def start_worker(settings: Any, smtp_url: str) -> tuple[Worker, asyncio.Task[Any], Any]:
    """A worker on this loop. Its start-up points this process's mail hand-off at the worker's queue (as in
    a real worker process); stop_worker points it back at the web app's."""
    queue = saq_config(settings).get_queues().get(QUEUE_NAME)
    queue._mail_previous = outbox.current_queue()  # type: ignore[attr-defined]
    await queue.connect()

    async def start(ctx: dict[str, Any]) -> None:
        await startup(ctx)
        ctx["settings"] = dataclasses.replace(ctx["settings"], smtp_url=smtp_url, site_url=settings.site_url)

    worker = Worker(queue, functions=[_resolve(t) for t in TASKS], startup=[start], shutdown=[shutdown],
                    concurrency=8, dequeue_timeout=0.2)  # fmt: skip
    return worker, asyncio.create_task(worker.start()), queue


async def stop_worker(worker: Worker, task: asyncio.Task[Any], queue: Any) -> None:
    await worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await queue.disconnect()
    outbox.use_queue(queue._mail_previous)


@pytest_asyncio.fixture(loop_scope="session")
async def mail_worker(app: Any, settings: Any, smtp_server: tuple[Mailbox, str]) -> AsyncIterator[Any]:
    """The worker, running for the whole test: queued mail is sent to `smtp_server`."""
    worker, task, queue = await start_worker(settings, smtp_server[1])
    try:
        yield queue
    finally:
        await stop_worker(worker, task, queue)


async def wait_for_mail(mailbox: Mailbox, to: str, count: int = 1, timeout: float = 20) -> list[Received]:
    deadline = time.monotonic() + timeout
    while len(mailbox.to(to)) < count:
        assert time.monotonic() < deadline, f"timed out waiting for {count} e-mail(s) to {to}"
        await asyncio.sleep(0.05)
    return mailbox.to(to)


def link_in(message: Received) -> str:
    """The single-use link of a reset / verification e-mail (the same in the text and the HTML part)."""
    found = LINK.search(message.text)
    assert found, message.text
    assert f'href="{found.group(1)}"' in message.html
    return found.group(1)


async def mail_rows(sessionmaker: Any, where: str = "true", **params: Any) -> list[Any]:
    async with sessionmaker() as session:
        rows = await session.execute(text(f"SELECT * FROM outgoing_mail WHERE {where} ORDER BY id"), params)
        return list(rows.all())


async def settle(seconds: float = 0.3) -> None:
    """Let jobs that would (wrongly) send a second e-mail run before asserting there was just one."""
    await outbox.drain()
    await asyncio.sleep(seconds)
