"""Staff console pages (guarded: staff only).

- `GET /staff`        the live overview: open alerts, live figures (polled), users
- `GET /staff/live`   the live block alone (htmx polls it every 10 s while the tab is visible)
- `GET /staff/queue`  admin only: the SAQ queue (depth, workers, jobs). SAQ's own web UI is not mounted: it
                      needs an inline script (refused by our CSP) and starlette, and its retry / abort POSTs
                      carry no CSRF token; this page reads the same `Queue.info()`.
"""

from __future__ import annotations

import datetime
from typing import Any

from litestar import Controller, MediaType, Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.staff_roles import ADMIN, SUPPORT, may, needs, requires_staff_role
from app.dashboard.live import live_overview, queue_status
from app.dashboard.purchases import ago
from app.dashboard.services import overview
from app.vtu.balances import float_statuses
from app.vtu.providers.catalog import get_service
from app.vtu.runtime import get_vtu

NO_STORE = {"Cache-Control": "no-store"}
PAGE = "dashboard/overview.html"
LIVE = "dashboard/partials/live.html"
QUEUE = "dashboard/queue.html"
QUEUE_JOBS_SHOWN = 50


def _render(template: str, context: dict[str, Any]) -> Template:
    return Template(template_name=template, context=context, media_type=MediaType.HTML, headers=NO_STORE)


async def _live_context(request: Request[Any, Any, Any], db_session: AsyncSession) -> dict[str, Any]:
    # The provider's balance may be asked (at most once a minute, cached): no transaction is held across
    # it (money invariant 8), so the request's session is committed first.
    await db_session.commit()
    runtime = await get_vtu(request.app)
    redis = request.app.state.redis
    floats = await float_statuses(redis, runtime, db_session)
    live = await live_overview(db_session, redis=redis, queue=runtime.queue, floats=floats)
    now = live.now
    return {
        "live": live,
        "now": now,
        "ago": lambda value: ago(value, now),
        "service_name": lambda sid: s.name if (s := get_service(sid)) else sid,
    }


class StaffController(Controller):
    path = "/staff"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; actions below declare more
    include_in_schema = False

    @get("/", name="staff:overview")
    async def index(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        context = await _live_context(request, db_session)
        context["o"] = await overview(db_session)
        context["is_admin"] = may(request.user, ADMIN)
        return _render(PAGE, context)

    @get("/live", name="staff:live")
    async def live(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        return _render(LIVE, await _live_context(request, db_session))

    @get("/queue", name="staff:queue", opt=needs(ADMIN))
    async def queue(self, request: Request[Any, Any, Any]) -> Template:
        queue = (await get_vtu(request.app)).queue
        status = await queue_status(queue)
        info: dict[str, Any] = {}
        if status.available and queue is not None:
            info = dict(await queue.info(jobs=True, limit=QUEUE_JOBS_SHOWN))
        now = datetime.datetime.now(datetime.UTC)
        return _render(
            QUEUE,
            {
                "q": status,
                "workers": info.get("workers") or {},
                "jobs": info.get("jobs") or [],
                "now": now,
                "when": _epoch,
            },
        )


def _epoch(value: Any) -> datetime.datetime | None:
    """SAQ times: seconds (scheduled) or milliseconds (queued / started / completed) since the epoch."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number <= 0:
        return None
    if number > 1e11:  # milliseconds
        number /= 1000
    return datetime.datetime.fromtimestamp(number, datetime.UTC)


__all__ = ["StaffController"]
