"""Per-key request limit in Redis (so it holds across web processes): a sliding one-minute window.

One Lua script per request does everything atomically on the Redis server, with the Redis server's clock
(no drift between web processes): drop entries older than the window, count, admit (ZADD) or refuse with
the milliseconds until the oldest entry leaves the window. Refused requests are not recorded, so a client
that backs off for Retry-After seconds gets through. The same call also answers "was this key's last-used
time recorded in the last minute?" (SET NX EX), so the database is written at most once a minute per key.
"""

from __future__ import annotations

import math
import secrets
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

WINDOW_MS = 60_000
LAST_USED_EVERY_SECONDS = 60

_SCRIPT = """
local key, used_key = KEYS[1], KEYS[2]
local limit, window, used_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mark = redis.call('SET', used_key, '1', 'NX', 'EX', used_ttl) and 1 or 0
if limit <= 0 then return {1, 0, mark} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, now .. ':' .. ARGV[4])
  redis.call('PEXPIRE', key, window)
  return {1, 0, mark}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now, mark}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_seconds: int
    record_last_used: bool  # first request for this key in LAST_USED_EVERY_SECONDS


class RateLimiter:
    def __init__(self, redis: Redis, *, window_ms: int = WINDOW_MS) -> None:
        self.redis = redis
        self.window_ms = window_ms
        self._script = redis.register_script(_SCRIPT)

    async def hit(self, key_id: uuid.UUID, limit_per_window: int) -> Decision:
        """Count one request for `key_id`; `limit_per_window` 0 = no limit."""
        allowed, wait_ms, mark = await self._script(
            keys=[f"api-rate:{key_id}", f"api-key-used:{key_id}"],
            args=[limit_per_window, self.window_ms, LAST_USED_EVERY_SECONDS, secrets.token_hex(4)],
        )
        retry = 0 if allowed else max(1, math.ceil(int(wait_ms) / 1000))
        return Decision(bool(int(allowed)), retry, bool(int(mark)))


__all__ = ["Decision", "RateLimiter"]
