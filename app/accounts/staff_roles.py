"""Staff roles and the one guard every console route goes through.

Four roles, each including the ones below it (docs/architecture.md, "Staff roles"):
- `support`: read every console page, "check now" with the provider;
- `operations`: also resolve purchases, retry funding, suspend users, clear PIN locks, revoke API keys;
- `finance`: also manual adjustments (and their approval), unmatched transfers, price rules, tiers;
- `admin`: also staff accounts and their roles, the queue's own web UI.

A console handler declares the role it needs in its `opt` (`opt=needs(OPERATIONS)`, or the controller's
`opt` for all of its handlers). `requires_staff_role` refuses any handler that declares none, so a route
added without thinking about it is closed to everyone rather than open to every staff member.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from app.accounts.models import User

SUPPORT = "support"
OPERATIONS = "operations"
FINANCE = "finance"
ADMIN = "admin"
ROLES = (SUPPORT, OPERATIONS, FINANCE, ADMIN)  # lowest first: each role may do what those before it may
ROLE_OPT = "staff_role"

ROLE_LABELS = {
    SUPPORT: "Support: read everything, check purchases with the provider",
    OPERATIONS: "Operations: also resolve purchases, retry funding, suspend users",
    FINANCE: "Finance: also adjustments, unmatched transfers, price rules, tiers",
    ADMIN: "Admin: also staff accounts and roles",
}


def rank(role: str | None) -> int:
    """0 for customers and unknown values; 1..4 for the roles, lowest first."""
    return ROLES.index(role) + 1 if role in ROLES else 0


def role_of(user: User | None) -> str | None:
    """The user's staff role, or None for a customer (or a suspended / closed account)."""
    if user is None or not user.is_active or user.suspended or not user.is_staff:
        return None
    return user.staff_role if user.staff_role in ROLES else None


def may(user: User | None, role: str) -> bool:
    """Whether `user` holds `role` or one above it (templates use it to hide buttons a role cannot use)."""
    return rank(role_of(user)) >= rank(role) > 0


def needs(role: str) -> dict[str, str]:
    """The `opt` that declares the role a handler needs: `@post(..., opt=needs(FINANCE))`."""
    if role not in ROLES:
        raise ValueError(f"unknown staff role {role!r}")
    return {ROLE_OPT: role}


def required_role(handler: BaseRouteHandler) -> str | None:
    """The role a handler declared (its own opt, merged by Litestar with its controller's and router's)."""
    role = handler.opt.get(ROLE_OPT)
    return role if role in ROLES else None


async def requires_staff_role(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A coroutine: Litestar runs a plain-function guard in a worker thread (app/accounts/auth.py)."""
    user = connection.scope.get("user")
    if user is None:
        raise NotAuthorizedException("Please log in to continue.")
    role = required_role(handler)
    if role is None:  # fail closed: a console route must say who may use it
        raise PermissionDeniedException("This page has no staff role assigned, so nobody may open it.")
    if role_of(user) is None:
        raise PermissionDeniedException("This page is for staff only.")
    if not may(user, role):
        raise PermissionDeniedException(
            f"This needs the {role} role; yours is {role_of(user)}. Ask an admin if you need it."
        )


__all__ = [
    "ADMIN",
    "FINANCE",
    "OPERATIONS",
    "ROLES",
    "ROLE_LABELS",
    "ROLE_OPT",
    "SUPPORT",
    "may",
    "needs",
    "rank",
    "required_role",
    "requires_staff_role",
    "role_of",
]
