"""Who is signed in: a middleware that loads the session's user (or None), and the guards pages use.

A session holds the user id and the password version it was created with; a password change bumps the
version on the user row, which signs out every other session at once. The user row is read on every request,
so a closed or suspended account is signed out at once too (app/accounts/suspension.py also deletes its
sessions).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.accounts.models import User
from app.accounts.sessions import SESSION_USER, rotate
from app.core.request_context import bind_user

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from sqlalchemy.ext.asyncio import AsyncSession

SESSION_PASSWORD_VERSION = "pwv"


class SessionUserMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        raw_session = connection.scope.get("session")
        session: dict[str, Any] = raw_session if isinstance(raw_session, dict) else {}
        raw_id = session.get(SESSION_USER)
        if not raw_id:
            return AuthenticationResult(user=None, auth=None)
        try:
            user_id = uuid.UUID(str(raw_id))
        except ValueError:
            connection.clear_session()
            return AuthenticationResult(user=None, auth=None)
        alchemy = connection.app.state.alchemy
        db: AsyncSession = alchemy.provide_session(connection.app.state, connection.scope)
        user = await db.get(User, user_id)
        # End the read's transaction now: the connection goes back to the pool instead of being held (idle
        # in transaction) while the handler waits on other connections, Redis or a provider.
        await db.commit()
        if (
            user is None
            or not user.is_active
            or user.suspended  # suspended by staff: signed out on the very next request
            or session.get(SESSION_PASSWORD_VERSION) != user.password_version
        ):
            connection.clear_session()
            return AuthenticationResult(user=None, auth=None)
        bind_user(user.id)  # every later log line of this request names the user
        return AuthenticationResult(user=user, auth="session")


def login_session(
    connection: ASGIConnection[Any, Any, Any, Any], user: User, *, end_others: bool = False
) -> None:
    """Start a fresh session for `user` under a new random id (the old entry is deleted, so an id planted
    before log-in is worth nothing); `end_others` also ends the user's other sessions (password change)."""
    connection.set_session({SESSION_USER: str(user.id), SESSION_PASSWORD_VERSION: user.password_version})
    rotate(connection, end_others=end_others)


def current_user(connection: ASGIConnection[Any, Any, Any, Any]) -> User | None:
    return connection.scope.get("user")


def requires_login(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if current_user(connection) is None:
        raise NotAuthorizedException("Please log in to continue.")


def requires_staff(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    requires_login(connection, handler)
    user = current_user(connection)
    if user is None or not user.is_staff:
        raise PermissionDeniedException("This page is for staff only.")
