"""Staff console pages (guarded: staff only)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_staff
from app.dashboard.services import overview


class StaffController(Controller):
    path = "/staff"
    guards = [requires_staff]
    include_in_schema = False

    @get("/", name="staff:overview")
    async def index(self, db_session: AsyncSession) -> Template:
        return Template(template_name="dashboard/overview.html", context={"o": await overview(db_session)})
