"""Fixed-window action throttles in Redis (hold across processes).

PLACEHOLDER written against the interface the lead is adding on main (`Rule`, `Throttled`, `Throttle.hit`);
on merge, main's version of this file wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

# Every bucket: INCR (starting its window on the first hit), then report the longest wait among those over
# their limit (0 = allowed). One script, so the buckets are counted together.
_HIT = """
local wait = 0
for i = 1, #KEYS do
    local n = redis.call('INCR', KEYS[i])
    local window = tonumber(ARGV[2 * i - 1])
    if n == 1 then redis.call('EXPIRE', KEYS[i], window) end
    if n > tonumber(ARGV[2 * i]) then
        local ttl = redis.call('TTL', KEYS[i])
        if ttl < 1 then ttl = window end
        if ttl > wait then wait = ttl end
    end
end
return wait
"""


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    limit: int
    window_seconds: int


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"throttled; retry after {retry_after} s")
        self.retry_after = retry_after


class Throttle:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def hit(self, *buckets: tuple[Rule, str]) -> None:
        """Count one action against every (rule, key) bucket BEFORE the action; raise Throttled when any
        bucket is over its limit."""
        if not buckets:
            return
        keys = [f"throttle:{rule.name}:{key}" for rule, key in buckets]
        args: list[int] = []
        for rule, _ in buckets:
            args += [rule.window_seconds, rule.limit]
        wait = int(await self.redis.eval(_HIT, len(keys), *keys, *args))  # type: ignore[misc]
        if wait > 0:
            raise Throttled(wait)


__all__ = ["Rule", "Throttle", "Throttled"]
