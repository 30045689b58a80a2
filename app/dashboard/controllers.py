"""Staff console pages (guarded: staff only)."""

from __future__ import annotations

import datetime

from litestar import Controller, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.staff_roles import SUPPORT, needs, requires_staff_role
from app.dashboard.purchase_queries import purchase_counts
from app.dashboard.services import overview


class StaffController(Controller):
    path = "/staff"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; actions below declare more
    include_in_schema = False

    @get("/", name="staff:overview")
    async def index(self, db_session: AsyncSession) -> Template:
        now = datetime.datetime.now(datetime.UTC)
        context = {"o": await overview(db_session), "p": await purchase_counts(db_session, now=now)}
        return Template(template_name="dashboard/overview.html", context=context)


__all__ = ["StaffController"]
