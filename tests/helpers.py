"""Small helpers for page tests: CSRF tokens from rendered forms, form posts like a browser."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def csrf_token(client: Any, path: str = "/login") -> str:
    response = await client.get(path)
    match = _CSRF.search(response.text)
    assert match, f"no CSRF token on {path} (status {response.status_code})"
    return match.group(1)


async def post_form(
    client: Any, path: str, data: dict[str, str], *, page: str | None = None, **kw: Any
) -> Any:
    token = await csrf_token(client, page or path)
    return await client.post(path, data={**data, "_csrf_token": token}, follow_redirects=False, **kw)


async def sign_up(client: Any, **fields: str) -> Any:
    from tests.factories import PASSWORD, _n

    n = _n()
    data = {
        "full_name": f"Web User {n}",
        "email": f"web{n}@example.ng",
        "phone": f"0803{n % 10_000_000:07d}",
        "password": PASSWORD,
        "referral_code": "",
    }
    data.update(fields)
    return await post_form(client, "/signup", data)


async def log_in(client: Any, email: str, password: str) -> Any:
    return await post_form(client, "/login", {"email": email, "password": password})


@asynccontextmanager
async def running(application: Any) -> AsyncIterator[Any]:
    """The app with its real lifespan started, on this test loop. Startup and shutdown must happen in one
    task (anyio cancel scopes), so the lifespan runs in a task of its own until the block ends."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        async with application.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run_lifespan())
    await asyncio.wait_for(started.wait(), timeout=30)
    try:
        yield application
    finally:
        stop.set()
        await task


@asynccontextmanager
async def browser_pool(app: Any) -> AsyncIterator[Any]:
    """A factory of browsers (own cookie jars) on an in-process app; all closed when the block ends."""
    import httpx

    opened: list[httpx.AsyncClient] = []

    def new() -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver.local", timeout=30
        )
        opened.append(client)
        return client

    try:
        yield new
    finally:
        for client in opened:
            await client.aclose()


async def staff_browser(db: Any, browsers: Any, role: str = "operations") -> Any:
    """A new browser logged in as a new staff user with `role` (app.accounts.staff_roles)."""
    from tests.factories import PASSWORD, create_user

    user = await create_user(db, staff_role=role)
    await db.commit()
    client = browsers()
    assert (await log_in(client, user.email, PASSWORD)).status_code == 303
    return client
