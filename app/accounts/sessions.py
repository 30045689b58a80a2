"""Server-side sessions (Redis) that cannot be fixed by an attacker, and each user's list of sessions.

Litestar's server-side backend keeps whatever session id the request's cookie names, even after
`clear_session()`: a session cookie planted in a victim's browser before login would become the signed-in
session. This backend instead
- reuses a cookie's id only when that id was found in the store on this request (an unknown or expired id is
  replaced by a fresh random one before anything is stored under it);
- on `rotate()` (log-in, sign-up, password change) writes the session under a new random id and deletes the
  old entry;
- writes nothing for a visitor whose session is empty (no Redis write, no cookie for anonymous pages), and
  nothing when a request left the session as it found it (no lost update between parallel requests; the
  session then lasts `max_age` from its last change).

Every signed-in session is also listed per user (`sessions-of:<user id>`, a hash: id -> when/where), so a
password change or reset, or staff, can end a user's other sessions at once; entries whose session expired
are pruned when the list is read.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.connection import ASGIConnection
    from litestar.middleware.session.base import ScopeSession
    from litestar.stores.base import Store
    from litestar.types import Message
    from redis.asyncio import Redis

SESSION_USER = "uid"
_LOADED_ID = "vtu.session_loaded_id"  # the cookie's id, when the store had it (scope key)
_LOADED_USER = "vtu.session_loaded_user"
_LOADED_DATA = "vtu.session_loaded_data"
_NEW_ID = "vtu.session_new_id"  # the id this response stores under, once chosen
_ROTATE = "vtu.session_rotate"
_END_OTHERS = "vtu.session_end_others"


def _index_key(user_id: uuid.UUID | str) -> str:
    return f"sessions-of:{user_id}"


def rotate(connection: ASGIConnection[Any, Any, Any, Any], *, end_others: bool = False) -> None:
    """Store this request's session under a new id (the old entry is deleted); with `end_others`, also end
    every other session of the signed-in user (password change)."""
    connection.scope[_ROTATE] = True  # type: ignore[literal-required]
    connection.scope.pop(_NEW_ID, None)  # type: ignore[misc]
    if end_others:
        connection.scope[_END_OTHERS] = True  # type: ignore[literal-required]


class RotatingSessionBackend(ServerSideSessionBackend):
    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
        session_id = connection.cookies.get(self.config.key)
        if session_id and session_id != "null" and len(session_id) <= 128:
            store = self.config.get_store_from_app(connection.scope["app"])
            data = await self.get(session_id, store=store)
            if data is not None:
                session = self.deserialize_data(data)
                connection.scope[_LOADED_ID] = session_id  # type: ignore[literal-required]
                connection.scope[_LOADED_DATA] = data  # type: ignore[literal-required]
                connection.scope[_LOADED_USER] = session.get(SESSION_USER)  # type: ignore[literal-required]
                return session
        return {}

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        scope: Any = connection.scope
        loaded = scope.get(_LOADED_ID)
        if loaded and not scope.get(_ROTATE):
            return str(loaded)
        new_id = scope.get(_NEW_ID)
        if not new_id:
            new_id = scope[_NEW_ID] = self.generate_session_id()
        return str(new_id)

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        scope: Any = connection.scope
        loaded = scope.get(_LOADED_ID)
        store = self.config.get_store_from_app(scope["app"])
        if (scope_session is Empty or not scope_session) and not loaded:
            return  # an anonymous visitor with nothing to keep: no entry, no cookie
        if loaded and (scope.get(_ROTATE) or scope_session is Empty or not scope_session):
            await self.delete(loaded, store=store)  # the old id must never work again
            await _forget(scope["app"], scope.get(_LOADED_USER), loaded)
        if scope_session is not Empty and not scope_session:
            scope_session = Empty  # emptied: delete the entry and the cookie
        elif (
            loaded
            and not scope.get(_ROTATE)
            and self.serialize_data(scope_session, scope) == scope.get(_LOADED_DATA)
        ):
            # Unchanged: write nothing. A page that only read the session must not put back an older copy
            # over what a parallel request (an htmx partial beside a form post) just stored, e.g. a flash.
            return
        await super().store_in_message(scope_session, message, connection)
        if scope_session is Empty or not scope.get(_ROTATE):
            return
        user_id = scope_session.get(SESSION_USER) if isinstance(scope_session, dict) else None
        if user_id:
            session_id = self.get_session_id(connection)
            if scope.get(_END_OTHERS):
                await end_sessions(scope["app"], user_id, keep=session_id)
            await _remember(scope["app"], user_id, session_id, connection, self.config.max_age)


class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend  # type: ignore[assignment]


def _redis(app: Litestar) -> Redis:
    return app.state.redis  # type: ignore[no-any-return]


def _session_store(app: Litestar) -> Store:
    return app.stores.get("sessions")


async def _remember(
    app: Litestar, user_id: str, session_id: str, connection: ASGIConnection[Any, Any, Any, Any], ttl: int
) -> None:
    info = {
        "created": int(time.time()),
        "ip": connection.client.host if connection.client else "",
        "agent": (connection.headers.get("user-agent") or "")[:200],
    }
    async with _redis(app).pipeline(transaction=True) as pipe:
        pipe.hset(_index_key(user_id), session_id, json.dumps(info))
        pipe.expire(_index_key(user_id), ttl)
        await pipe.execute()


async def _forget(app: Litestar, user_id: str | None, session_id: str) -> None:
    if user_id:
        await _redis(app).hdel(_index_key(user_id), session_id)


async def end_sessions(app: Litestar, user_id: uuid.UUID | str, *, keep: str | None = None) -> int:
    """Delete every stored session of the user except `keep`; returns how many were ended."""
    return await end_sessions_in(_redis(app), _session_store(app), user_id, keep=keep)


def session_store(redis: Redis) -> Store:
    """The app's session store on `redis`, for processes without the app (the CLI): app/core/plugin.py's
    `stores["sessions"]`."""
    from litestar.stores.redis import RedisStore

    return RedisStore(redis, namespace="sessions")


async def end_sessions_in(
    redis: Redis, store: Store, user_id: uuid.UUID | str, *, keep: str | None = None
) -> int:
    """`end_sessions` given the Redis client and the session store (the CLI has no app)."""
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in await redis.hkeys(_index_key(user_id))]
    ended = 0
    for session_id in ids:
        if session_id == keep:
            continue
        await store.delete(session_id)
        await redis.hdel(_index_key(user_id), session_id)
        ended += 1
    return ended


async def list_sessions(app: Litestar, user_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """The user's live sessions (newest first), pruning entries whose session has expired."""
    redis, store = _redis(app), _session_store(app)
    out: list[dict[str, Any]] = []
    for raw_id, raw_info in (await redis.hgetall(_index_key(user_id))).items():
        session_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        if not await store.exists(session_id):
            await redis.hdel(_index_key(user_id), session_id)
            continue
        info = json.loads(raw_info)
        out.append({"id_prefix": session_id[:8], **info})
    return sorted(out, key=lambda s: s.get("created", 0), reverse=True)


__all__ = [
    "RotatingSessionConfig",
    "end_sessions",
    "end_sessions_in",
    "list_sessions",
    "rotate",
    "session_store",
]
