"""Hands requeries to the SAQ worker: job `verify_pending_purchase`, one key per purchase and attempt.

The first requery of a purchase has the key `verify:<id>`, later ones `verify:<id>:<attempt>`: a running
job schedules its successor, and SAQ refuses (enqueue returns None) a key that is queued or active, which
would otherwise make every second requery vanish. The database (`next_requery_at`) stays the source of
truth: anything lost here is found again by the sweep.
"""

from __future__ import annotations

import datetime
import uuid
from typing import TYPE_CHECKING, Literal, Protocol

import structlog

from app.vtu.config import VERIFY_JOB_TIMEOUT

if TYPE_CHECKING:
    from saq import Queue

log = structlog.get_logger("app.vtu.scheduling")

VERIFY_TASK = "verify_pending_purchase"

Scheduled = Literal["enqueued", "already_queued", "revived", "unavailable"]


def verify_key(purchase_id: uuid.UUID | str, attempt: int) -> str:
    return f"verify:{purchase_id}" if attempt <= 1 else f"verify:{purchase_id}:{attempt}"


class VerificationScheduler(Protocol):
    async def schedule(
        self, purchase_id: uuid.UUID, attempt: int, at: datetime.datetime, *, revive_stuck: bool = False
    ) -> Scheduled: ...


class SaqScheduler:
    def __init__(self, queue: Queue, *, timeout_seconds: int = VERIFY_JOB_TIMEOUT) -> None:
        self.queue = queue
        self.timeout = timeout_seconds

    async def schedule(
        self, purchase_id: uuid.UUID, attempt: int, at: datetime.datetime, *, revive_stuck: bool = False
    ) -> Scheduled:
        """Enqueue requery number `attempt` to run at `at`. With `revive_stuck` (the sweep), a job with this
        key still marked active past its timeout (its worker died) is finished as aborted and replaced."""
        key = verify_key(purchase_id, attempt)
        try:
            if await self._enqueue(key, purchase_id, attempt, at):
                return "enqueued"
            if not revive_stuck:
                return "already_queued"
            from saq.job import Status

            existing = await self.queue.job(key)
            if existing is None or not existing.stuck:
                return "already_queued"
            log.warning("verify_job_stuck", key=key, started=existing.started)
            await self.queue.finish(existing, Status.ABORTED, error="worker lost; re-enqueued by the sweep")
            return "revived" if await self._enqueue(key, purchase_id, attempt, at) else "already_queued"
        except Exception:  # Redis down: next_requery_at is in the DB, the sweep will try again
            log.exception("verify_enqueue_failed", key=key)
            return "unavailable"

    async def _enqueue(self, key: str, purchase_id: uuid.UUID, attempt: int, at: datetime.datetime) -> bool:
        job = await self.queue.enqueue(
            VERIFY_TASK,
            key=key,
            scheduled=max(0, int(at.timestamp())),
            timeout=self.timeout,
            retries=1,  # our own schedule and sweep do the retrying
            purchase_id=str(purchase_id),
            attempt=attempt,
        )
        return job is not None


class NoScheduler:
    """For processes without a queue (CLI tools, benchmarks): the sweep picks pending purchases up."""

    async def schedule(
        self, purchase_id: uuid.UUID, attempt: int, at: datetime.datetime, *, revive_stuck: bool = False
    ) -> Scheduled:
        return "unavailable"


__all__ = [
    "VERIFY_TASK",
    "NoScheduler",
    "SaqScheduler",
    "VerificationScheduler",
    "verify_key",
]
