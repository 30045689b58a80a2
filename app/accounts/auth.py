"""Who is signed in: a middleware that loads the session's user (or None), and the guards pages use.

A session holds the user id and the password version it was created with; a password change bumps the
version on the user row, which signs out every other session at once. The user row is read on every request,
so a closed or suspended account is signed out at once too (app/accounts/suspension.py also deletes its
sessions).

The read is one statement on a pooled connection outside any transaction (one round trip, no BEGIN / COMMIT,
the connection back in the pool before the handler runs: docs/architecture.md, "Request handling"); the row
becomes a `User` entity attached to the request's database session, as `session.get` would have made it, so
handlers that change the user commit it with their own work. Through PgBouncer (DATABASE_PGBOUNCER) the read
runs in a transaction of its own (app/core/db.py `driver_connection`).
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from app.accounts.models import User
from app.accounts.sessions import SESSION_USER, rotate
from app.core.db import driver_connection
from app.core.request_context import bind_user

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

SESSION_PASSWORD_VERSION = "pwv"

# Every column of the users table (the entity is complete: no attribute is left to load lazily), read by
# the driver; the dialect's own result processors turn the values into what an ORM load would give.
_USER_ATTRS = [(prop.key, prop.columns[0]) for prop in inspect(User).column_attrs]
# Names from the model only; the id is a bound parameter.
_USER_COLUMN_LIST = ", ".join(f'"{column.name}"' for _, column in _USER_ATTRS)
_USER_SQL = f'SELECT {_USER_COLUMN_LIST} FROM "{User.__tablename__}" WHERE "id" = $1'  # noqa: S608
_processors: weakref.WeakKeyDictionary[Dialect, list[Callable[[Any], Any] | None]] = (
    weakref.WeakKeyDictionary()
)


def _result_processors(dialect: Dialect) -> list[Callable[[Any], Any] | None]:
    found = _processors.get(dialect)
    if found is None:
        found = _processors[dialect] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for _, column in _USER_ATTRS
        ]
    return found


async def load_user(engine: AsyncEngine, session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user row as a `User` attached to `session` (None: no such user), read in one statement outside
    any transaction; `session` neither queries nor takes a connection for it."""
    async with driver_connection(engine) as conn:
        row = await conn.fetchrow(_USER_SQL, user_id)
    if row is None:
        return None
    user = inspect(User).class_manager.new_instance()
    for (key, _), process, value in zip(_USER_ATTRS, _result_processors(engine.dialect), row, strict=True):
        set_committed_value(user, key, process(value) if process is not None else value)
    make_transient_to_detached(user)  # as if loaded: identity key set, no pending change
    session.add(user)  # persistent in the request's session, without a query
    return user


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
        # Read afresh on every request (a suspension or a password change applies to the next one), with no
        # transaction left open: the connection is back in the pool before the handler runs.
        user = await load_user(alchemy.get_engine(), db, user_id)
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


# Guards are coroutines: Litestar runs a plain-function guard in a worker thread (`sync_to_thread`), a
# thread hop on every signed-in request (bench/README.md, "pages").
async def requires_login(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if current_user(connection) is None:
        raise NotAuthorizedException("Please log in to continue.")


async def requires_staff(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    await requires_login(connection, handler)
    user = current_user(connection)
    if user is None or not user.is_staff:
        raise PermissionDeniedException("This page is for staff only.")
