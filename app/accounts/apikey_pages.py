"""The customer's API keys page: create (the key is shown once), list, revoke. Thin: rules live in
app/accounts/apikeys.py. Works as plain form posts and as htmx swaps of `#api-keys`."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, MediaType, Response, get, post
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.apikeys import ApiKeyService, NewApiKey
from app.accounts.auth import requires_login
from app.accounts.models import User
from app.accounts.services import FormErrors
from app.core.flash import flash

PAGE = "accounts/api_keys.html"
PARTIAL = "accounts/partials/api_keys.html"
NO_STORE = {"Cache-Control": "no-store"}


class ApiKeyController(Controller):
    path = "/account/api-keys"
    guards = [requires_login]
    include_in_schema = False

    async def _render(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        *,
        created: NewApiKey | None = None,
        form: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        user: User = request.user
        keys = await ApiKeyService(db_session).list_for_user(user.id)
        context: dict[str, Any] = {
            "keys": keys,
            "created": created,
            "form": form or {},
            "errors": errors or {},
        }
        return Template(
            template_name=PARTIAL if request.htmx else PAGE,
            context=context,
            status_code=status,
            media_type=MediaType.HTML,
            headers=NO_STORE,
        )

    @get("/", name="account:api-keys")
    async def page(self, request: HTMXRequest, db_session: AsyncSession) -> Template:
        return await self._render(request, db_session)

    @post("/", status_code=200)
    async def create(self, request: HTMXRequest, db_session: AsyncSession) -> Template:
        form = await request.form()
        values = {k: str(form.get(k, ""))[:2000] for k in ("name", "allowed_ips", "callback_url")}
        keys = ApiKeyService(db_session, is_prod=request.app.state.settings.is_prod)
        try:
            created = await keys.create(request.user, **values)
        except FormErrors as exc:
            return await self._render(request, db_session, form=values, errors=exc.fields, status=422)
        await db_session.commit()
        return await self._render(request, db_session, created=created)

    @post("/{key_id:uuid}/revoke", status_code=200)
    async def revoke(
        self, request: HTMXRequest, db_session: AsyncSession, key_id: uuid.UUID
    ) -> Response[Any]:
        user: User = request.user
        done = await ApiKeyService(db_session).revoke(key_id, by=f"user:{user.id}", user_id=user.id)
        await db_session.commit()
        if request.htmx:
            return await self._render(request, db_session)
        if done:
            flash(request, "Key revoked. Requests with it are refused from now on.", category="success")
        return Redirect("/account/api-keys", status_code=303)


__all__ = ["ApiKeyController"]
