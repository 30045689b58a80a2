"""The anchors of `bench.pages`, served by `litestar run` exactly as `vtu run` serves the real app (see
bench/README.md, "pages"):

- `/`: one route that renders a trivial Jinja template through Litestar's template engine (the issue's
  anchor: the ratio's denominator);
- `/signed-in` (only with BARE_DATABASE_URL and BARE_REDIS_URL): the least any signed-in page of this
  architecture does, as a second, informative anchor: Litestar's server-side session read from Redis
  (RedisStore, as the app's sessions), the session's user row read from PostgreSQL (one asyncpg statement on
  a pool), the same trivial template with the user's name. `/sign-in/{user_id}` starts such a session.

    uv run litestar --app bench.bare_app:create_app run --host 127.0.0.1 --port 8001 --wc 2
"""

from __future__ import annotations

import logging.config
import os
import uuid
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, get
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.response import Template
from litestar.template.config import TemplateConfig

TEMPLATES = Path(__file__).resolve().parent / "templates"


@get("/", sync_to_thread=False)
def home() -> Template:
    return Template(template_name="bare.html", context={"name": "customer", "items": ["a", "b", "c"]})


@get("/ready", sync_to_thread=False)
def ready() -> dict[str, str]:
    return {"status": "ok"}


@get("/sign-in/{user_id:uuid}", sync_to_thread=False)
def sign_in(request: Request[Any, Any, Any], user_id: uuid.UUID) -> dict[str, str]:
    request.set_session({"user": str(user_id)})
    return {"status": "signed in"}


@get("/signed-in")
async def signed_in(request: Request[Any, Any, Any]) -> Template:
    raw = request.session.get("user") if request.session else None
    if not raw:
        raise NotAuthorizedException()
    row = await request.app.state.pool.fetchrow(
        "SELECT id, email, full_name, is_active FROM users WHERE id = $1", uuid.UUID(raw)
    )
    if row is None or not row["is_active"]:
        raise NotAuthorizedException()
    return Template(template_name="bare.html", context={"name": row["full_name"], "items": ["a", "b", "c"]})


def _logging() -> None:
    """What the real app's logging does to uvicorn's access log (app/core/logging.py): below WARNING, so
    uvicorn still makes each access record and the level check drops it, the same work in both servers."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {"uvicorn.access": {"level": "WARNING"}},
        }
    )


def create_app() -> Litestar:
    _logging()
    database_url, redis_url = os.environ.get("BARE_DATABASE_URL"), os.environ.get("BARE_REDIS_URL")
    if not (database_url and redis_url):
        return Litestar(
            route_handlers=[home, ready],
            template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
            logging_config=None,
        )
    import asyncpg
    from litestar.stores.redis import RedisStore
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)

    async def open_pool(app: Litestar) -> None:
        app.state.pool = await asyncpg.create_pool(database_url, min_size=2, max_size=10)

    async def close_pool(app: Litestar) -> None:
        await app.state.pool.close()
        await redis.aclose()

    sessions = ServerSideSessionConfig(store="sessions", key="bare_session", exclude=[r"^/ready$", r"^/$"])
    return Litestar(
        route_handlers=[home, ready, sign_in, signed_in],
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        middleware=[sessions.middleware],
        stores={"sessions": RedisStore(redis, namespace="bare-sessions")},
        on_startup=[open_pool],
        on_shutdown=[close_pool],
        logging_config=None,
    )
