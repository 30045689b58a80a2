"""Staff: see active reseller API keys and revoke any of them (leaked key, abuse)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.apikeys import ApiKeyService
from app.accounts.staff_roles import OPERATIONS, SUPPORT, needs, requires_staff_role
from app.audit import service as audit
from app.core.flash import flash


class StaffApiKeyController(Controller):
    path = "/staff/api-keys"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; actions below declare more
    include_in_schema = False

    @get("/", name="staff:api-keys")
    async def index(self, db_session: AsyncSession) -> Template:
        keys = await ApiKeyService(db_session).list_active()
        return Template(template_name="dashboard/api_keys.html", context={"keys": keys})

    @post("/{key_id:uuid}/revoke", status_code=303, opt=needs(OPERATIONS))
    async def revoke(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, key_id: uuid.UUID
    ) -> Redirect:
        staff = request.user
        done = await ApiKeyService(db_session).revoke(key_id, by=f"staff:{staff.email}")
        if done:
            await audit.record(
                db_session,
                audit.Actor.of(request),
                "api_key.revoke",
                target=("api_key", key_id),
                before={"revoked": False},
                after={"revoked": True},
            )
        await db_session.commit()
        flash(request, "Key revoked." if done else "That key was already revoked.", category="success")
        return Redirect("/staff/api-keys", status_code=303)


__all__ = ["StaffApiKeyController"]
