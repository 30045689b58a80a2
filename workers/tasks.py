"""Task functions run by the SAQ worker. Each opens its own DB session from ctx["sessionmaker"]."""

from __future__ import annotations

from typing import Any


async def ping(ctx: dict[str, Any]) -> str:
    """Liveness probe for the worker: enqueue it and expect 'pong'."""
    return "pong"
