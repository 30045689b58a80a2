"""Staff: the audit log page (`GET /staff/audit`): every staff action, newest first, filterable by actor,
action (or its prefix), target and Lagos dates; keyset-paged on the entry id. Read-only (app/audit)."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, MediaType, get
from litestar.params import Parameter
from litestar.response import Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.staff_roles import SUPPORT, needs, requires_staff_role
from app.audit import queries as q
from app.dashboard.purchases import NO_STORE, pretty

PAGE = "dashboard/audit.html"
ROWS = "dashboard/partials/audit_rows.html"
RESULTS = "dashboard/partials/audit_results.html"

# Where each kind of target is shown in the console (the log links back to it).
TARGET_PAGES = {
    "purchase": "/staff/purchases/{}",
    "funding_event": "/staff/funding/{}",
    "user": "/staff/users/{}",
    "adjustment": "/staff/adjustments#adj-{}",
    "service": "/staff/plans?service_id={}",
    "provider_route": "/staff/providers#route-{}",
    "provider": "/staff/providers#provider-{}",
}


def target_url(target_type: str, target_id: str) -> str | None:
    page = TARGET_PAGES.get(target_type)
    return page.format(target_id) if page else None


def audit_url(target_type: str, target_id: object) -> str:
    """The log filtered to one target (linked from that target's page)."""
    return "/staff/audit?" + urlencode({"target_type": target_type, "target_id": str(target_id)})


class StaffAuditController(Controller):
    path = "/staff/audit"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)
    include_in_schema = False

    @get("/", name="staff:audit")
    async def index(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        actor: str | None = Parameter(query="actor", default=None, required=False),
        action: str | None = Parameter(query="action", default=None, required=False),
        target_type: str | None = Parameter(query="target_type", default=None, required=False),
        target_id: str | None = Parameter(query="target_id", default=None, required=False),
        since: str | None = Parameter(query="since", default=None, required=False),
        until: str | None = Parameter(query="until", default=None, required=False),
        before: str | None = Parameter(query="before", default=None, required=False),
    ) -> Template:
        f = q.AuditFilter.from_query(
            actor=actor, action=action, target_type=target_type, target_id=target_id, since=since, until=until
        )
        page = await q.list_entries(db_session, f, before=before)
        more_url = (
            "/staff/audit?" + urlencode({**f.query_args(), "before": page.next_cursor})
            if page.next_cursor
            else None
        )
        context: dict[str, Any] = {
            "f": f,
            "page": page,
            "more_url": more_url,
            "paged": q.decode_cursor(before) is not None,
            "target_url": target_url,
            "pretty": pretty,
            "lagos": lambda at: at.astimezone(q.LAGOS).strftime("%d %b %Y %H:%M:%S"),
            "today": datetime.datetime.now(q.LAGOS).date().isoformat(),
        }
        htmx = request.htmx
        template = PAGE
        if htmx and not htmx.history_restore_request:
            if htmx.target == "more-audit":
                template = ROWS
            elif htmx.target == "audit-results":
                template = RESULTS
        return Template(template_name=template, context=context, media_type=MediaType.HTML, headers=NO_STORE)


__all__ = ["StaffAuditController", "audit_url", "target_url"]
