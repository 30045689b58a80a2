"""The one throttling helper of the app: counters in Redis (shared by every web process), counted BEFORE the
thing they limit runs, so a burst of parallel requests cannot all slip through a check-then-act gap.

Three ways to use it:
- `hit(*buckets)`: count one action (a reset e-mail, a meter check) in every bucket, or refuse it when any
  bucket is full. One Lua script: read every counter, refuse or increment them all, atomically.
- `guard(*buckets, verify=...)`: for secrets (passwords, PINs). The attempt is counted as a failure in every
  bucket before `verify` runs; when it succeeds the count is taken back (or cleared, per rule). Attempts
  against one target (the first bucket: an e-mail, a user's PIN) run one at a time under a short lock, so a
  double-tapped form with the right PIN is approved twice, while 40 parallel wrong guesses get exactly
  `limit` verifications and the rest are refused unverified. The other buckets (the client IP) are counted
  without the lock, so guesses spread over many targets from one address are bounded too.
- `sliding(...)`: a sliding one-minute window for request rates (the reseller API), where refused requests
  are not counted, so a client that waits `Retry-After` gets through.

Windows are fixed: they start at the first counted attempt and end `window_seconds` later (Redis TTL).
"""

from __future__ import annotations

import contextlib
import math
import secrets
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import LockError

T = TypeVar("T")

_PREFIX = "throttle"
# How long one target's attempts may queue behind each other before the request is refused as a flood.
LOCK_WAIT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Rule:
    """`limit` attempts per `window_seconds` for each key (0 = no limit). `clear_on_success`: a right answer
    wipes earlier failures (right for the target, an e-mail or a user; wrong for a shared client IP)."""

    name: str
    limit: int
    window_seconds: int
    clear_on_success: bool = False


Bucket = tuple[Rule, str]


class Throttled(Exception):
    """Refused before anything ran; `retry_after` is in seconds (for the Retry-After header and messages)."""

    def __init__(self, retry_after: int, rule: str = "") -> None:
        super().__init__(retry_after, rule)
        self.retry_after = max(1, int(retry_after))
        self.rule = rule

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))

    def wait_text(self) -> str:
        if self.retry_after < 60:
            return f"{self.retry_after} second{'s' if self.retry_after != 1 else ''}"
        return f"{self.minutes} minute{'s' if self.minutes != 1 else ''}"


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What `verify` returned, and the attempts the first bucket has left after this one."""

    value: T
    attempts_left: int


# KEYS: counters. ARGV: limit, window for each key. Refuse (index of the first full counter, its TTL) when any
# counter is at its limit; else increment them all (the first increment starts the window) and return counts.
_HIT = """
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  if limit > 0 and tonumber(redis.call('GET', key) or '0') >= limit then
    return {0, i, redis.call('TTL', key)}
  end
end
local counts = {1}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 or redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, tonumber(ARGV[2 * i])) end
  counts[#counts + 1] = n
end
return counts
"""

# Take one counted attempt back (never below zero).
_RELEASE = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 1
"""

# KEYS: window, last-used marker. ARGV: limit, window ms, marker ttl s, nonce. The marker answers "first
# request in the marker's TTL?" in the same round trip (the API writes its key's last-used time that often).
_SLIDING = """
local key, mark_key = KEYS[1], KEYS[2]
local limit, window, mark_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mark = 0
if mark_ttl > 0 then mark = redis.call('SET', mark_key, '1', 'NX', 'EX', mark_ttl) and 1 or 0 end
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
class RateDecision:
    allowed: bool
    retry_after_seconds: int
    first_in_mark_window: bool


def bucket_key(rule: Rule, key: str) -> str:
    return f"{_PREFIX}:{rule.name}:{key.strip().lower()[:300]}"


class Throttle:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._hit = redis.register_script(_HIT)
        self._release = redis.register_script(_RELEASE)
        self._sliding = redis.register_script(_SLIDING)

    async def hit(self, *buckets: Bucket) -> list[int]:
        """Count one action in every bucket (rules with limit 0 are skipped); raise Throttled if any is full.
        Returns the counts after this action, bucket by bucket."""
        active = [(rule, key) for rule, key in buckets if rule.limit > 0]
        if not active:
            return [0 for _ in buckets]
        args: list[int] = []
        for rule, _ in active:
            args += [rule.limit, rule.window_seconds]
        result = await self._hit(keys=[bucket_key(rule, key) for rule, key in active], args=args)
        if not int(result[0]):
            rule = active[int(result[1]) - 1][0]
            ttl = int(result[2])
            raise Throttled(ttl if ttl > 0 else rule.window_seconds, rule.name)
        counts = iter(int(n) for n in result[1:])
        return [next(counts) if rule.limit > 0 else 0 for rule, _ in buckets]

    async def guard(self, *buckets: Bucket, verify: Callable[[], Awaitable[T]]) -> Outcome[T]:
        """Run `verify` (a password or PIN check) as one counted attempt; see the module docstring.
        Raises Throttled, without calling `verify`, when any bucket is full."""
        first_rule, first_key = buckets[0]
        lock = self.redis.lock(
            f"{bucket_key(first_rule, first_key)}:lock",
            timeout=LOCK_WAIT_SECONDS,
            blocking_timeout=LOCK_WAIT_SECONDS,
            sleep=0.02,
        )
        if not await lock.acquire():  # queued for seconds behind other attempts at one target: a flood
            raise Throttled(first_rule.window_seconds, first_rule.name)
        try:
            counts = await self.hit(*buckets)
            value = await verify()
            if value:
                await self.succeeded(*buckets)
        finally:
            # It may have expired during a slow verify (a loaded machine): the attempt still counted.
            with contextlib.suppress(LockError):
                await lock.release()
        left = max(first_rule.limit - counts[0], 0) if first_rule.limit > 0 else 0
        return Outcome(value, left)

    async def succeeded(self, *buckets: Bucket) -> None:
        """Take back an attempt counted by `guard` that turned out right."""
        clear = [bucket_key(r, k) for r, k in buckets if r.limit > 0 and r.clear_on_success]
        release = [bucket_key(r, k) for r, k in buckets if r.limit > 0 and not r.clear_on_success]
        if clear:
            await self.redis.delete(*clear)
        if release:
            await self._release(keys=release)

    async def clear(self, *buckets: Bucket) -> None:
        """Forget every counted attempt (a new PIN was set, staff lifted a lock)."""
        await self.redis.delete(*(bucket_key(r, k) for r, k in buckets))

    async def retry_after(self, *buckets: Bucket) -> int:
        """Seconds until every bucket has room again (0 = now), without counting anything (for pages that
        show a lock before the user tries)."""
        wait = 0
        for rule, key in buckets:
            if rule.limit <= 0:
                continue
            name = bucket_key(rule, key)
            count = int(await self.redis.get(name) or 0)
            if count >= rule.limit:
                wait = max(wait, int(await self.redis.ttl(name)), 1)
        return wait

    async def sliding(
        self, key: str, limit: int, *, window_ms: int = 60_000, mark_key: str = "", mark_ttl: int = 0
    ) -> RateDecision:
        """Admit one request into a sliding window of `limit` per `window_ms` (0 = no limit)."""
        allowed, wait_ms, mark = await self._sliding(
            keys=[f"{_PREFIX}:rate:{key}", f"{_PREFIX}:mark:{mark_key or key}"],
            args=[limit, window_ms, mark_ttl, secrets.token_hex(4)],
        )
        retry = 0 if int(allowed) else max(1, math.ceil(int(wait_ms) / 1000))
        return RateDecision(bool(int(allowed)), retry, bool(int(mark)))


_BY_CLIENT: weakref.WeakKeyDictionary[Redis, Throttle] = weakref.WeakKeyDictionary()


def throttle_for(redis: Redis) -> Throttle:
    """The throttle of a Redis client, made once (its Lua scripts are hashed once, not on every request)."""
    found = _BY_CLIENT.get(redis)
    if found is None:
        found = _BY_CLIENT[redis] = Throttle(redis)
    return found


__all__ = ["Bucket", "Outcome", "RateDecision", "Rule", "Throttle", "Throttled", "bucket_key", "throttle_for"]
