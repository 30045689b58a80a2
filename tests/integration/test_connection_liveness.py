"""Pooled connections are checked without a ping per checkout (app/core/db.py `watch_connections`): a
connection whose backend the server ended is replaced before it is handed out, and one idle for longer than
IDLE_PING_SECONDS is pinged first. Without the check (pool_pre_ping is off) the first statement after the
backend ended would fail."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from app.core import db as core_db
from app.core.db import make_engine, watch_connections


async def _backend_pid(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(superuser_engine: Any, pid: int) -> None:
    async with superuser_engine.connect() as conn:
        assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
        await conn.commit()


async def test_a_connection_the_server_ended_is_replaced_at_checkout(settings, superuser_engine) -> None:
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        await _terminate(superuser_engine, first)
        for _ in range(50):  # asyncpg sees the server's close on its next read of the socket
            await asyncio.sleep(0.02)
        # the one pooled connection is dead: the checkout replaces it, the statement succeeds
        second = await _backend_pid(engine)
        assert second != first
        assert await _backend_pid(engine) == second  # and the new one is kept
    finally:
        await engine.dispose()


async def test_an_idle_connection_is_pinged_and_a_busy_one_is_not(
    settings, superuser_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    pings = 0
    real_ping = None

    def counting_ping(self: Any) -> None:
        nonlocal pings
        pings += 1
        assert real_ping is not None
        real_ping(self)

    try:
        await _backend_pid(engine)
        async with engine.connect() as conn:
            adapter = type((await conn.get_raw_connection()).dbapi_connection)
        real_ping = adapter.ping
        monkeypatch.setattr(adapter, "ping", counting_ping)
        for _ in range(5):  # used just now: no round trip before handing it out
            await _backend_pid(engine)
        assert pings == 0
        monkeypatch.setattr(core_db, "IDLE_PING_SECONDS", 0.05)
        await asyncio.sleep(0.1)
        await _backend_pid(engine)  # idle longer than the limit: pinged once, then handed out
        assert pings == 1
    finally:
        await engine.dispose()


async def test_watching_twice_adds_the_listeners_once(settings) -> None:
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        watch_connections(engine)  # make_engine watched it already
        from sqlalchemy import event

        assert event.contains(engine.sync_engine, "checkout", core_db._check_out)
        await _backend_pid(engine)
    finally:
        await engine.dispose()
