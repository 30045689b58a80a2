"""Transaction PINs: the 4-digit code a customer types to approve a purchase on the website
(docs/architecture.md, purchase lifecycle step 1). The reseller API authenticates with its key instead.

Stored as an argon2id hash in `users.pin_hash`. Setting or changing it needs the account password. Wrong PINs
are counted per user in Redis: after `max_failures` within `window_seconds` the PIN is locked for the rest
of the window (even the right PIN is refused), so a stolen phone with an open session cannot guess it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.accounts.models import User
from app.accounts.passwords import hash_password_async, verify_password_async
from app.accounts.services import FormErrors
from app.core.throttle import Bucket, Rule, Throttled, throttle_for

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


class PinChangedMeanwhile(FormErrors):
    """The PIN was set or changed by another request between reading the user and writing the new PIN (two
    tabs, a double tap): nothing was written; the PIN that is now set stands."""

    def __init__(self) -> None:
        super().__init__({"current_pin": "Your PIN was just set or changed elsewhere: enter that PIN."})


def pin_problem(pin: str) -> str | None:
    """What is wrong with a new PIN, or None. Refuses the codes a thief would try first."""
    if len(pin) != PIN_LENGTH or not pin.isascii() or not pin.isdigit():
        return f"Your PIN must be exactly {PIN_LENGTH} digits."
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        return "That PIN is too easy to guess (repeated or consecutive digits)."
    return None


@dataclass(frozen=True, slots=True)
class PinGuard:
    """Checks PINs through the app's throttle (`app.core.throttle`), per user, in Redis (holds across web
    processes)."""

    redis: Redis
    max_failures: int = 5
    window_seconds: int = 900

    def _bucket(self, user: User) -> Bucket:
        return Rule("pin", self.max_failures, self.window_seconds, clear_on_success=True), str(user.id)

    async def check(self, user: User, pin: str) -> None:
        """Return when `pin` is the user's PIN; raise PinNotSet, PinError (empty), PinLocked or WrongPin.

        Each check is counted before the hash is verified and one user's checks run one at a time, so a burst
        of concurrent guesses gets `max_failures` verifications in all, while a double-tapped form with the
        right PIN is simply approved twice (the purchase's idempotency key then makes it one purchase). The
        right PIN clears the count."""
        if not user.pin_hash:
            raise PinNotSet()
        if not pin.strip():
            raise PinError()
        pin_hash = user.pin_hash
        try:
            outcome = await throttle_for(self.redis).guard(
                self._bucket(user), verify=lambda: verify_password_async(pin_hash, pin.strip())
            )
        except Throttled as exc:
            raise PinLocked(exc.retry_after) from None
        if outcome.value:
            return
        if not outcome.attempts_left:
            raise PinLocked(
                await throttle_for(self.redis).retry_after(self._bucket(user)) or self.window_seconds
            )
        raise WrongPin(outcome.attempts_left)

    async def unlock(self, user: User) -> None:
        await throttle_for(self.redis).clear(self._bucket(user))

    async def locked_for(self, user: User) -> int:
        """Seconds the PIN stays locked (0 = not locked)."""
        return await throttle_for(self.redis).retry_after(self._bucket(user))


async def set_pin(
    session: AsyncSession,
    state: Any,
    user: User,
    *,
    password: str,
    current_pin: str,
    pin: str,
    confirm: str,
    ip: str,
) -> None:
    """Set or change the PIN: the account password, and the current PIN when there is one, prove it is the
    owner (both throttled); clears any PIN lock. Raises FormErrors naming each bad field; flushes, the caller
    commits."""
    from app.accounts.stepup import confirm_identity

    errors: dict[str, str] = {}
    if problem := pin_problem(pin):
        errors["pin"] = problem
    elif pin != confirm:
        errors["confirm_pin"] = "The two PINs do not match."
    if errors:  # no attempt is counted for a form that could not be used anyway
        raise FormErrors(errors)
    try:
        await confirm_identity(state, user, password=password, pin=current_pin, ip=ip)
    except FormErrors as exc:
        raise FormErrors({("current_pin" if k == "pin" else k): v for k, v in exc.fields.items()}) from None
    await _store_pin(session, user, await hash_password_async(pin))
    await pin_guard(state).unlock(user)


async def _store_pin(session: AsyncSession, user: User, new_hash: str) -> None:
    """Compare-and-set: write the new hash only over the PIN the identity check was made against (none, or
    the current one), so a request that read the user before another one set a PIN cannot replace that PIN
    with the password alone. Raises PinChangedMeanwhile when the row moved."""
    old = user.pin_hash
    same = User.pin_hash.is_(None) if old is None else User.pin_hash == old
    result = await session.execute(
        update(User)
        .where(User.id == user.id, same)
        .values(pin_hash=new_hash, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise PinChangedMeanwhile()
    set_committed_value(user, "pin_hash", new_hash)


def pin_guard(state: object) -> PinGuard:
    """The app's guard, configured from settings (`app.state`)."""
    settings = state.settings  # type: ignore[attr-defined]
    return PinGuard(state.redis, settings.pin_max_failures, settings.pin_lockout_seconds)  # type: ignore[attr-defined]
