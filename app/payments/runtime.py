"""Per-process funding runtime: the shared Monnify client and how work is handed to the worker.

Jobs are a speed-up, not the source of truth: the stored rows (events, reservations) are what the
worker's sweep retries if a job is lost or Redis is down.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import structlog

from app.config.settings import Settings
from app.payments.monnify_client import MonnifyClient
from app.payments.reservations import request_reservation

if TYPE_CHECKING:
    from saq import Queue
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.accounts.models import User

log = structlog.get_logger("app.payments.runtime")


class FundingRuntime:
    def __init__(
        self, settings: Settings, queue: Queue | None, sessionmaker: async_sessionmaker[AsyncSession]
    ):
        self.settings = settings
        self.queue = queue
        self.sessionmaker = sessionmaker
        self.monnify = MonnifyClient(settings)

    async def aclose(self) -> None:
        await self.monnify.aclose()

    async def ensure_reservation(self, session: AsyncSession, user: User) -> None:
        await request_reservation(session, user)
        await session.commit()
        await self.enqueue("reserve_accounts", f"reserve:{user.id}", user_id=str(user.id))

    async def enqueue(self, task: str, key: str, **kwargs: Any) -> None:
        if self.queue is None:
            return
        try:
            # None means a job with this key is already queued or running: nothing to do.
            await self.queue.enqueue(task, key=key, timeout=60, retries=1, **kwargs)
        except Exception:  # Redis down: the sweep picks the work up from the database later
            log.exception("enqueue_failed", task=task, key=key)


def reservation_user_id(value: str) -> uuid.UUID:
    return uuid.UUID(value)
