"""Transaction PINs: the 4-digit code a customer types to approve a purchase on the website (DESIGN.md,
purchase lifecycle step 1). The reseller API authenticates with its key instead.

Stored as an argon2id hash in `users.pin_hash`. Setting or changing it needs the account password. Wrong PINs
are counted per user in Redis: after `max_failures` within `window_seconds` the PIN is locked for the rest
of the window (even the right PIN is refused), so a stolen phone with an open session cannot guess it.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import LockError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.accounts.passwords import hash_password_async, verify_password_async
from app.accounts.services import FormErrors

PIN_LENGTH = 4


class PinError(Exception):
    """Why a PIN did not approve a purchase; `message` is for the customer."""

    message = "Enter your transaction PIN."


class PinNotSet(PinError):
    message = "Set a transaction PIN before you buy."


class WrongPin(PinError):
    def __init__(self, attempts_left: int) -> None:
        super().__init__(attempts_left)
        self.attempts_left = attempts_left
        plural = "s" if attempts_left != 1 else ""
        self.message = (
            f"That PIN is not correct. {attempts_left} attempt{plural} left before it is locked."
            if attempts_left
            else "That PIN is not correct."
        )


class PinLocked(PinError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after
        minutes = max(1, (retry_after + 59) // 60)
        plural = "s" if minutes > 1 else ""
        self.message = f"Too many wrong PINs. Your PIN is locked; try again in {minutes} minute{plural}."


def pin_problem(pin: str) -> str | None:
    """What is wrong with a new PIN, or None. Refuses the codes a thief would try first."""
    if len(pin) != PIN_LENGTH or not pin.isascii() or not pin.isdigit():
        return f"Your PIN must be exactly {PIN_LENGTH} digits."
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        return "That PIN is too easy to guess (repeated or consecutive digits)."
    return None


@dataclass(frozen=True, slots=True)
class PinGuard:
    """Checks PINs with a per-user failure counter in Redis (holds across web processes)."""

    redis: Redis
    max_failures: int = 5
    window_seconds: int = 900

    @staticmethod
    def _key(user: User) -> str:
        return f"pin-fail:{user.id}"

    async def check(self, user: User, pin: str) -> None:
        """Return when `pin` is the user's PIN; raise PinNotSet, PinError (empty), PinLocked or WrongPin.

        Checks of one user's PIN run one at a time (a short Redis lock per user), each reading the failure
        count first: a burst of concurrent guesses gets `max_failures` verifications in all, not one each,
        while a double-tapped form with the right PIN is simply approved twice (the purchase's idempotency
        key then makes it one purchase). The right PIN clears the count."""
        if not user.pin_hash:
            raise PinNotSet()
        if not pin.strip():
            raise PinError()
        key = self._key(user)
        try:
            async with self.redis.lock(f"pin-check:{user.id}", timeout=10, blocking_timeout=10, sleep=0.02):
                failures = int(await self.redis.get(key) or 0)
                if failures >= self.max_failures:
                    raise PinLocked(max(int(await self.redis.ttl(key)), 1))
                if await verify_password_async(user.pin_hash, pin.strip()):
                    if failures:
                        await self.redis.delete(key)
                    return
                async with self.redis.pipeline(transaction=True) as pipe:
                    # SET NX EX starts the window on the first failure (EXPIRE NX needs Redis 7).
                    pipe.set(key, 0, ex=self.window_seconds, nx=True)
                    pipe.incr(key)
                    pipe.ttl(key)
                    _, failures, ttl = await pipe.execute()
        except LockError:  # 10 s behind other checks of this PIN: a flood, not a customer
            raise PinLocked(self.window_seconds) from None
        if int(failures) >= self.max_failures:
            raise PinLocked(max(int(ttl), 1))
        raise WrongPin(self.max_failures - int(failures))

    async def unlock(self, user: User) -> None:
        await self.redis.delete(self._key(user))


async def set_pin(
    session: AsyncSession, guard: PinGuard, user: User, *, password: str, pin: str, confirm: str
) -> None:
    """Set or change the PIN (the account password proves it is the owner); clears any PIN lock.
    Raises FormErrors naming each bad field; flushes, the caller commits."""
    errors: dict[str, str] = {}
    if not await verify_password_async(user.password_hash, password):
        errors["password"] = "Your password is not correct."
    if problem := pin_problem(pin):
        errors["pin"] = problem
    elif pin != confirm:
        errors["confirm_pin"] = "The two PINs do not match."
    if errors:
        raise FormErrors(errors)
    user.pin_hash = await hash_password_async(pin)
    await session.flush()
    await guard.unlock(user)


def pin_guard(state: object) -> PinGuard:
    """The app's guard, configured from settings (`app.state`)."""
    settings = state.settings  # type: ignore[attr-defined]
    return PinGuard(state.redis, settings.pin_max_failures, settings.pin_lockout_seconds)  # type: ignore[attr-defined]
