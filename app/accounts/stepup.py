"""Step-up: actions that spend money or create credentials ask again for the password, and the transaction
PIN when one is set, even inside a signed-in session (a stolen phone with an open session must not be able
to create an API key, point callbacks elsewhere or change the PIN). Both checks are throttled
(`throttle.check_password`, `pins.PinGuard`)."""

from __future__ import annotations

from typing import Any

from app.accounts.models import User
from app.accounts.pins import PinError, pin_guard
from app.accounts.services import FormErrors
from app.accounts.throttle import check_password
from app.core.throttle import Throttled


async def confirm_identity(state: Any, user: User, *, password: str, pin: str, ip: str) -> None:
    """Return when the password (and the PIN, if the user has one) are right; else raise FormErrors naming
    `password` or `pin`. The PIN is only tried after a right password, so a wrong password costs no PIN
    attempt."""
    try:
        outcome = await check_password(state, user, password, ip)
    except Throttled as exc:
        raise FormErrors({"password": f"Too many wrong passwords. Try again in {exc.wait_text()}."}) from None
    if not outcome.value:
        left = outcome.attempts_left
        hint = f" {left} attempt{'s' if left != 1 else ''} left." if left else ""
        raise FormErrors({"password": f"Your password is not correct.{hint}"})
    if user.pin_hash:
        try:
            await pin_guard(state).check(user, pin)
        except PinError as exc:
            raise FormErrors({"pin": exc.message}) from None


__all__ = ["confirm_identity"]
