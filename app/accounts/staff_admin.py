"""What staff change on a user's account, and the rules: tier, staff role, PIN lock, API keys. Suspension is
`app.accounts.suspension`. Shared by the staff console (`app.dashboard.users`) and the CLI; never renders.

Every function takes the caller's session and an `audit.Actor`, checks the actor may do it (the console's
route guards say the same; this is the second line), changes the row with a guarded UPDATE (a double click or
two staff at once change it once; the later one is told "already ..."), and records the audit entry in the
same transaction. The caller commits. A refusal raises `Refused` with nothing changed.

Rules:
- nobody changes their own account from the console (role, tier, suspension, PIN lock): another staff member
  does, so each change is seen by two people;
- tier (customer <-> reseller): finance, a reason required;
- staff role (support / operations / finance / admin, or none = not staff): admin; `is_staff` follows the
  role and `is_superuser` is kept only by admins (the users table's check constraints); the last admin who
  can sign in is never removed or suspended (decided under one advisory lock, so two admins demoting each
  other at once cannot both succeed);
- PIN lock (failed PIN attempts counted in Redis): operations;
- API keys, one or all: operations (`ApiKeyService.revoke`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text, update

from app.accounts.apikeys import ApiKey, ApiKeyService
from app.accounts.models import TIERS, User
from app.accounts.staff_roles import ADMIN, FINANCE, OPERATIONS, ROLES, rank
from app.audit import service as audit

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

REASON_MAX = 500
# Serialises every change that could leave no admin (a role change from admin, suspending an admin).
_ADMINS_LOCK = 0x5654_0AD1


class Refused(Exception):
    """The action was refused and nothing changed. `field`: the form field at fault (None: the action itself
    is not allowed now)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NoSuchUser(Refused):
    def __init__(self) -> None:
        super().__init__("No such user.")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an action did: `changed` False means it found the account already that way (nothing written)."""

    changed: bool
    message: str


# -- shared checks --------------------------------------------------------------------------------------
def require(actor: audit.Actor, role: str) -> None:
    """The actor holds `role` or one above it (an operator's CLI command may do anything)."""
    if actor.role == audit.CLI_ROLE:
        return
    if rank(actor.role) < rank(role):
        raise Refused(f"This needs the {role} role; yours is {actor.role}.")


def not_self(actor: audit.Actor, user_id: uuid.UUID, what: str) -> None:
    if actor.user_id is not None and actor.user_id == user_id:
        raise Refused(f"You cannot {what} your own account: ask another staff member.")


def clean_reason(raw: str | None, *, required: bool) -> str | None:
    reason = (raw or "").strip()
    if not reason:
        if required:
            raise Refused("Give a reason: it is kept in the audit log.", field="reason")
        return None
    if len(reason) > REASON_MAX:
        raise Refused(f"Keep the reason under {REASON_MAX} characters.", field="reason")
    return reason


async def locked_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    """The user's row, locked (FOR UPDATE) until the transaction ends, read fresh from the database."""
    user = (
        await session.execute(
            select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if user is None:
        raise NoSuchUser()
    return user


async def lock_admins(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADMINS_LOCK})


async def other_admins(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Admins other than `user_id` who can sign in (active, not suspended). Call under `lock_admins`."""
    stmt = (
        select(func.count())
        .select_from(User)
        .where(
            User.staff_role == ADMIN,
            User.is_active.is_(True),
            User.suspended_at.is_(None),
            User.id != user_id,
        )
    )
    return int((await session.execute(stmt)).scalar_one())


_ROLE_FIELDS = ("staff_role", "is_staff", "is_superuser")


def role_label(role: str | None) -> str:
    return role or "not staff"


# -- tier -----------------------------------------------------------------------------------------------
async def change_tier(
    session: AsyncSession, actor: audit.Actor, user_id: uuid.UUID, tier: str, reason: str | None
) -> Outcome:
    """customer <-> reseller (prices follow at once; API keys work only for API_KEY_TIERS)."""
    require(actor, FINANCE)
    tier = (tier or "").strip().lower()
    if tier not in TIERS:
        raise Refused(f"Tier must be one of {', '.join(TIERS)}.", field="tier")
    why = clean_reason(reason, required=True)
    not_self(actor, user_id, "change the tier of")
    user = await locked_user(session, user_id)
    before = user.tier
    if before == tier:
        return Outcome(False, f"{user.email} is already a {tier}: nothing changed.")
    await session.execute(
        update(User)
        .where(User.id == user_id, User.tier == before)
        .values(tier=tier, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    await audit.record(
        session,
        actor,
        "user.tier",
        target=("user", user_id),
        before={"tier": before},
        after={"tier": tier},
        reason=why,
    )
    return Outcome(True, f"{user.email} is now a {tier} (was {before}).")


# -- staff role -----------------------------------------------------------------------------------------
async def change_role(
    session: AsyncSession, actor: audit.Actor, user_id: uuid.UUID, role: str | None, reason: str | None = None
) -> Outcome:
    """Make a user staff with `role`, change a staff member's role, or (role None / "") remove them from
    staff. Admin only; never one's own role; never the last admin."""
    require(actor, ADMIN)
    new = (role or "").strip().lower() or None
    if new is not None and new not in ROLES:
        raise Refused(f"Role must be one of {', '.join(ROLES)}, or none.", field="role")
    why = clean_reason(reason, required=False)
    not_self(actor, user_id, "change the staff role of")
    await lock_admins(session)  # before the row: the same order as every other admin-affecting change
    user = await locked_user(session, user_id)
    old = user.staff_role
    if old == new:
        return Outcome(False, f"{user.email} is already {role_label(new)}: nothing changed.")
    if old == ADMIN and not await other_admins(session, user_id):
        raise Refused(
            f"{user.email} is the last admin who can sign in: make someone else admin first.", field=None
        )
    before = audit.snapshot(user, *_ROLE_FIELDS)
    superuser = bool(user.is_superuser) and new == ADMIN  # a superuser is an admin; demoted, no longer one
    await session.execute(
        update(User)
        .where(User.id == user_id, User.staff_role.is_not_distinct_from(old))
        .values(staff_role=new, is_staff=new is not None, is_superuser=superuser, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    after = {"staff_role": new, "is_staff": new is not None, "is_superuser": superuser}
    await audit.record(
        session, actor, "user.role", target=("user", user_id), before=before, after=after, reason=why
    )
    if new is None:
        return Outcome(True, f"{user.email} is no longer staff (was {old}).")
    if old is None:
        return Outcome(True, f"{user.email} is now staff with the {new} role.")
    return Outcome(True, f"{user.email} now has the {new} role (was {old}).")


# -- PIN lock -------------------------------------------------------------------------------------------
async def clear_pin_lock(
    session: AsyncSession, state: Any, actor: audit.Actor, user_id: uuid.UUID, reason: str | None = None
) -> Outcome:
    """Forget the user's failed PIN attempts (Redis), e.g. once support has confirmed who is asking. Recorded
    only when the PIN was locked (nothing else changes)."""
    from app.accounts.pins import pin_guard

    require(actor, OPERATIONS)
    why = clean_reason(reason, required=False)
    not_self(actor, user_id, "clear the PIN lock of")
    user = await session.get(User, user_id)
    if user is None:
        raise NoSuchUser()
    guard = pin_guard(state)
    locked_for = await guard.locked_for(user)
    await guard.unlock(user)
    if not locked_for:
        return Outcome(False, "The PIN was not locked; any failed attempts were cleared.")
    await audit.record(
        session,
        actor,
        "user.pin_unlock",
        target=("user", user_id),
        before={"pin_locked_seconds": locked_for},
        after={"pin_locked_seconds": 0},
        reason=why,
    )
    return Outcome(True, f"PIN lock cleared for {user.email}: they can try their PIN again.")


# -- API keys -------------------------------------------------------------------------------------------
def _key_facts(key: ApiKey) -> dict[str, Any]:
    return {"key_id": str(key.id), "prefix": key.prefix, "name": key.name}


async def revoke_api_key(
    session: AsyncSession, actor: audit.Actor, user_id: uuid.UUID, key_id: uuid.UUID
) -> Outcome:
    """Revoke one of this user's keys (another user's key id is refused as unknown)."""
    require(actor, OPERATIONS)
    key = await session.get(ApiKey, key_id)
    if key is None or key.user_id != user_id:
        raise Refused("This user has no such API key.")
    if not await ApiKeyService(session).revoke(key_id, by=actor.source, user_id=user_id):
        return Outcome(False, f"Key {key.prefix} was already revoked.")
    await audit.record(
        session,
        actor,
        "api_key.revoke",
        target=("user", user_id),
        before={**_key_facts(key), "revoked": False},
        after={**_key_facts(key), "revoked": True},
    )
    return Outcome(True, f"Key {key.prefix} revoked: it stops working at once.")


async def revoke_all_api_keys(session: AsyncSession, actor: audit.Actor, user_id: uuid.UUID) -> Outcome:
    require(actor, OPERATIONS)
    if await session.get(User, user_id) is None:
        raise NoSuchUser()
    keys = ApiKeyService(session)
    active = (
        await session.execute(select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)))
    ).scalars()
    revoked = [key for key in list(active) if await keys.revoke(key.id, by=actor.source, user_id=user_id)]
    if not revoked:
        return Outcome(False, "No active API keys: nothing to revoke.")
    await audit.record(
        session,
        actor,
        "api_key.revoke_all",
        target=("user", user_id),
        before={"active": [k.prefix for k in revoked]},
        after={"active": []},
    )
    count = len(revoked)
    return Outcome(True, f"{count} API key{'s' if count != 1 else ''} revoked: they stop working at once.")


__all__ = [
    "REASON_MAX",
    "NoSuchUser",
    "Outcome",
    "Refused",
    "change_role",
    "change_tier",
    "clean_reason",
    "clear_pin_lock",
    "lock_admins",
    "locked_user",
    "not_self",
    "other_admins",
    "require",
    "revoke_all_api_keys",
    "revoke_api_key",
]
