"""Suspending an account (fraud, a dispute) and lifting it: the rules, shared by the staff console
(`POST /staff/users/{id}/suspend`, `/unsuspend`) and `vtu users suspend|unsuspend`. Never renders.

A suspension (`users.suspended_at` + `suspended_reason`, both or neither) blocks at once:
- log-in: the right password gets "This account is suspended: contact support" and no session
  (app/accounts/controllers.py);
- every page of a session already signed in: the session middleware reads the user row on each request and
  treats a suspended user as signed out (app/accounts/auth.py); the user's stored sessions are also deleted
  right after the suspension commits (`sign_out`);
- the reseller API: 403 `account_suspended` on every call with the user's keys (app/api/auth.py, read per
  request);
- new purchases by any channel, also one racing the suspension: `purchase_open` reads the user row FOR SHARE
  and raises VT002 when it is suspended (app/vtu/sql/purchases.sql), so each purchase was opened before the
  suspension committed or is refused (AccountSuspended; 403 on the web form and the API);
- the staff console for a suspended staff member (`staff_roles.role_of` is None).
Purchases already in flight still settle (requery jobs, callbacks and staff decisions do not look at it).

Rules: operations or above; nobody suspends or unsuspends themselves; suspending or unsuspending a staff
member needs an admin (it takes their console access away or gives it back); the last admin who can sign in
is never suspended; a reason is required to suspend (<= 500 characters), optional to lift it. The change and
its audit entry (`user.suspend` / `user.unsuspend`, before/after) are one transaction; the caller commits,
then calls `sign_out`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import func, update

from app.accounts.models import User
from app.accounts.staff_admin import (
    NoSuchUser,
    Outcome,
    Refused,
    clean_reason,
    lock_admins,
    locked_user,
    not_self,
    other_admins,
    require,
)
from app.accounts.staff_roles import ADMIN, OPERATIONS
from app.audit import service as audit

if TYPE_CHECKING:
    from litestar.stores.base import Store
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncSession

_FIELDS = ("suspended_at", "suspended_reason")


def _staff_needs_admin(actor: audit.Actor, user: User, what: str) -> None:
    if user.staff_role is not None and actor.role not in (ADMIN, audit.CLI_ROLE):
        raise Refused(f"Only an admin can {what} a staff member ({user.email} is {user.staff_role}).")


async def suspend(
    session: AsyncSession, actor: audit.Actor, user_id: uuid.UUID, reason: str | None
) -> Outcome:
    """Suspend the account now. Already suspended: nothing changes (Outcome.changed False)."""
    require(actor, OPERATIONS)
    why = clean_reason(reason, required=True)
    not_self(actor, user_id, "suspend")
    await lock_admins(session)  # before the row lock, in the order staff_admin.change_role takes them
    user = await locked_user(session, user_id)
    if user.suspended:
        return Outcome(
            False, f"{user.email} is already suspended (since {user.suspended_at:%d %b %Y %H:%M} UTC)."
        )
    _staff_needs_admin(actor, user, "suspend")
    if user.staff_role == ADMIN and not await other_admins(session, user_id):
        raise Refused(f"{user.email} is the last admin who can sign in: they cannot be suspended.")
    before = audit.snapshot(user, *_FIELDS)
    # Guarded: two suspensions at once write one (the row lock above makes the second see the first anyway).
    row = (
        await session.execute(
            update(User)
            .where(User.id == user_id, User.suspended_at.is_(None))
            .values(suspended_at=func.now(), suspended_reason=why, updated_at=func.now())
            .returning(User.suspended_at)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if row is None:  # cannot happen under the row lock; never claim a change that did not happen
        return Outcome(False, f"{user.email} is already suspended.")
    await audit.record(
        session,
        actor,
        "user.suspend",
        target=("user", user_id),
        before=before,
        after={"suspended_at": row.suspended_at, "suspended_reason": why},
        reason=why,
    )
    return Outcome(
        True,
        f"{user.email} is suspended: signed out everywhere, API keys refused, no new purchases. "
        "Purchases already in flight still settle.",
    )


async def unsuspend(
    session: AsyncSession, actor: audit.Actor, user_id: uuid.UUID, reason: str | None = None
) -> Outcome:
    """Lift a suspension. Not suspended: nothing changes."""
    require(actor, OPERATIONS)
    why = clean_reason(reason, required=False)
    not_self(actor, user_id, "unsuspend")
    user = await locked_user(session, user_id)
    if not user.suspended:
        return Outcome(False, f"{user.email} is not suspended: nothing changed.")
    _staff_needs_admin(actor, user, "unsuspend")
    before = audit.snapshot(user, *_FIELDS)
    done = (
        await session.execute(
            update(User)
            .where(User.id == user_id, User.suspended_at.is_not(None))
            .values(suspended_at=None, suspended_reason=None, updated_at=func.now())
            .returning(User.id)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if done is None:
        return Outcome(False, f"{user.email} is not suspended: nothing changed.")
    await audit.record(
        session,
        actor,
        "user.unsuspend",
        target=("user", user_id),
        before=before,
        after={"suspended_at": None, "suspended_reason": None},
        reason=why,
    )
    return Outcome(True, f"{user.email} is no longer suspended: they can log in, buy and use their API keys.")


async def sign_out(redis: Redis, store: Store, user_id: uuid.UUID) -> int:
    """After a suspension commits: delete the user's stored web sessions (the session middleware already
    refuses them; this frees them and empties the staff page's session list). Returns how many."""
    from app.accounts.sessions import end_sessions_in

    return await end_sessions_in(redis, store, user_id)


__all__ = ["NoSuchUser", "Outcome", "Refused", "sign_out", "suspend", "unsuspend"]
