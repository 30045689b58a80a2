"""Which backing service an error says is unreachable right now (docs/architecture.md "Processes").

PostgreSQL restarting or Redis down must not look like a bug: the exception handlers answer 503 (the API's
JSON error, a friendly page, `Retry-After`) instead of a 500 when an exception, or anything in its chain,
is a lost or refused connection to PostgreSQL or Redis. The fault drill (README "Fault drill") restarts
both under load and checks these answers.
"""

from __future__ import annotations

from types import TracebackType

import asyncpg
import redis.exceptions
import sqlalchemy.exc

RETRY_AFTER_SECONDS = 5

# connection lost, refused or shutting down (SQLSTATE class 08, 57P01-57P03)
_PG_CONNECTION_ERRORS = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)
_DRIVERS = {"asyncpg": "database", "sqlalchemy": "database", "redis": "redis"}


def unavailable_service(exc: BaseException) -> str | None:
    """ "database" or "redis" when `exc` (or what caused it) is a connection to that service failing; None
    for anything else, which stays a 500."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        found = _classify(current)
        if found:
            return found
        todo += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return None


def _classify(exc: BaseException) -> str | None:
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "redis"
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return "database"
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection came free in time
        return "database"
    if isinstance(exc, _PG_CONNECTION_ERRORS):
        return "database"
    if isinstance(exc, asyncpg.exceptions.InterfaceError) and "connection is closed" in str(exc):
        return "database"
    if isinstance(exc, OSError):  # refused / no socket / reset, raised inside a database or Redis driver
        return _driver_in(exc.__traceback__)
    return None


def _driver_in(tb: TracebackType | None) -> str | None:
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        top = module.split(".", 1)[0]
        if top in _DRIVERS:
            return _DRIVERS[top]
        tb = tb.tb_next
    return None


__all__ = ["RETRY_AFTER_SECONDS", "unavailable_service"]
