"""Task functions run by the SAQ worker. Each opens its own DB session from ctx["sessionmaker"]."""

from __future__ import annotations

from typing import Any

from workers.heartbeat import beat


async def ping(ctx: dict[str, Any]) -> str:
    """Liveness probe for the worker: enqueue it and expect 'pong'."""
    return "pong"


async def heartbeat(ctx: dict[str, Any]) -> None:
    """Cron, every minute: the worker is alive and runs jobs (workers/heartbeat.py)."""
    await beat(ctx["redis"])
