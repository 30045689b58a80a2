"""Approving a web purchase (docs/architecture.md, purchase lifecycle step 1): the customer's transaction PIN,
or, for a customer who has none yet, a first PIN chosen on the buy form itself.

A first PIN is set through the PIN service (`app.accounts.pins.set_pin`: the same rules as /account/pin,
weak PINs refused, the account password required and throttled) and committed, and the purchase then goes
on in the same request: the password just proved the customer is here. Nothing is set when the order
itself would be refused (checked first, `order_problems`), and nothing is bought when the PIN step fails.
When two submissions of one form race (a double tap), one sets the PIN and the other is approved by that
same PIN through the throttled `PinGuard` (the idempotency key then makes them one purchase).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.accounts.pins import PinChangedMeanwhile, PinError, PinLocked, PinNotSet, pin_guard, set_pin
from app.accounts.services import FormErrors
from app.accounts.throttle import client_ip
from app.core.flash import flash

# The buy form's fields for a first PIN (templates/vtu/partials/pin_field.html); `pin` is the usual entry.
NEW_PIN, CONFIRM_PIN, PASSWORD = "new_pin", "confirm_pin", "password"
_FROM_PIN_SERVICE = {"pin": NEW_PIN, "confirm_pin": CONFIRM_PIN, "password": PASSWORD}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the purchase was not approved: the form is shown again with these (nothing was bought)."""

    status: int
    errors: dict[str, str] = field(default_factory=dict)
    alert: dict[str, Any] | None = None
    retry_after: int | None = None


def _field(raw: Any, name: str, limit: int = 16) -> str:
    return str(raw.get(name, "") or "").strip()[:limit]


async def check_pin(state: Any, user: User, pin: str) -> Refusal | None:
    """The usual approval: the customer's PIN, checked through the throttle (app.accounts.pins.PinGuard)."""
    try:
        await pin_guard(state).check(user, pin)
    except PinNotSet:
        return Refusal(403, alert={"kind": "no_pin"})
    except PinLocked as exc:
        return Refusal(429, {"pin": exc.message}, retry_after=exc.retry_after)
    except PinError as exc:
        return Refusal(400, {"pin": exc.message})
    return None


async def approve(
    request: Any,
    db_session: AsyncSession,
    user: User,
    raw: Any,
    order_problems: Callable[[], dict[str, str]],
) -> Refusal | None:
    """None when the purchase may go on; else the Refusal to show. `raw` is the submitted form;
    `order_problems()` names what is wrong with the order itself (field -> message), asked before a first
    PIN is set."""
    state = request.app.state
    if user.pin_hash or NEW_PIN not in raw:
        return await check_pin(state, user, _field(raw, "pin"))
    if problems := order_problems():
        return Refusal(400, problems)
    new_pin = _field(raw, NEW_PIN)
    try:
        await set_pin(
            db_session,
            state,
            user,
            password=str(raw.get(PASSWORD, "") or "")[:1000],
            current_pin="",
            pin=new_pin,
            confirm=_field(raw, CONFIRM_PIN),
            ip=client_ip(request),
        )
    except PinChangedMeanwhile:
        # Set meanwhile (this form tapped twice, or another tab): the PIN typed here approves the purchase
        # only if it is the one now set, checked like any PIN (throttled).
        await db_session.rollback()
        await db_session.refresh(user)
        return await check_pin(state, user, new_pin)
    except FormErrors as exc:  # raised before anything was written; commit (not rollback) keeps `user` loaded
        await db_session.commit()
        return Refusal(400, {_FROM_PIN_SERVICE.get(k, "__all__"): v for k, v in exc.fields.items()})
    await db_session.commit()
    flash(request, "Transaction PIN set: type it to approve each purchase.", category="success")
    return None


__all__ = ["CONFIRM_PIN", "NEW_PIN", "PASSWORD", "Refusal", "approve", "check_pin"]
