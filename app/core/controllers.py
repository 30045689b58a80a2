"""Public pages and probes: landing page, /health (liveness) and /ready (database + Redis)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, MediaType, Request, Response, get
from litestar.response import Redirect, Template
from sqlalchemy import text


class CoreController(Controller):
    include_in_schema = False

    @get("/", name="landing")
    async def landing(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        if request.scope.get("user") is not None:
            return Redirect("/dashboard", status_code=303)
        return Template(template_name="core/landing.html")

    @get("/health", media_type=MediaType.JSON, cache=False, exclude_from_auth=True)
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", media_type=MediaType.JSON, cache=False, exclude_from_auth=True)
    async def ready(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        checks: dict[str, str] = {}
        state = request.app.state

        async def database() -> None:
            async with state.alchemy.get_engine().connect() as conn:
                await conn.execute(text("SELECT 1"))

        async def redis() -> None:
            await state.redis.ping()

        for name, probe in (("database", database), ("redis", redis)):
            try:
                await asyncio.wait_for(probe(), timeout=2)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return Response({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)
