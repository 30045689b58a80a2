"""The worker's heartbeat: a Redis key every worker rewrites at start-up and every minute (SAQ cron
`workers.tasks:heartbeat`). The staff overview shows its age and the alert checker raises
`worker_heartbeat` when it is older than 3 minutes.

Why our own key and not only SAQ's worker info: SAQ's keys expire 60 s after a worker stops, so "stopped an
hour ago" and "never ran" look the same; and a cron job that runs means the scheduler AND a free job slot
work (a worker whose 20 slots are all stuck still writes SAQ's info, but not this)."""

from __future__ import annotations

import datetime
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

HEARTBEAT_KEY = "vtu:worker:heartbeat"
STALE_AFTER = datetime.timedelta(minutes=3)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    at: datetime.datetime
    host: str
    pid: int

    def age(self, now: datetime.datetime) -> datetime.timedelta:
        return now - self.at

    def stale(self, now: datetime.datetime) -> bool:
        return self.age(now) > STALE_AFTER


async def beat(redis: Any, *, now: datetime.datetime | None = None) -> None:
    at = now or datetime.datetime.now(datetime.UTC)
    value = {"at": at.isoformat(), "host": socket.gethostname()[:100], "pid": os.getpid()}
    await redis.set(HEARTBEAT_KEY, json.dumps(value))


async def last_beat(redis: Any) -> Heartbeat | None:
    raw = await redis.get(HEARTBEAT_KEY)
    if not raw:
        return None
    try:
        value = json.loads(raw)
        return Heartbeat(
            datetime.datetime.fromisoformat(value["at"]), str(value.get("host", "")), int(value.get("pid", 0))
        )
    except (ValueError, KeyError, TypeError):
        return None
