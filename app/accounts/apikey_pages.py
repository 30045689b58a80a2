"""The customer's API keys page: create (the key is shown once), change a key's callback URL, list, revoke.
Thin: rules live in app/accounts/apikeys.py. Creating a key and changing where callbacks go are step-up
actions (the password, and the PIN when one is set: app/accounts/stepup.py). Works as plain form posts and as
htmx swaps of `#api-keys`."""

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
from app.accounts.stepup import confirm_identity
from app.accounts.throttle import client_ip
from app.core.flash import flash

PAGE = "accounts/api_keys.html"
PARTIAL = "accounts/partials/api_keys.html"
_FIELDS = ("name", "allowed_ips", "callback_url")


def _service(request: HTMXRequest, db_session: AsyncSession) -> ApiKeyService:
    settings = request.app.state.settings
    return ApiKeyService(db_session, is_prod=settings.is_prod, allowed_tiers=settings.api_key_tiers)


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
        editing: uuid.UUID | None = None,
        status: int = 200,
    ) -> Template:
        user: User = request.user
        service = _service(request, db_session)
        keys = await service.list_for_user(user.id)
        context: dict[str, Any] = {
            "keys": keys,
            "created": created,
            "form": form or {},
            "errors": errors or {},
            "editing": editing,
            "has_pin": bool(user.pin_hash),
            "tier_allowed": service.tier_allowed(user),
        }
        return Template(
            template_name=PARTIAL if request.htmx else PAGE,
            context=context,
            status_code=status,
            media_type=MediaType.HTML,
        )

    @get("/", name="account:api-keys")
    async def page(self, request: HTMXRequest, db_session: AsyncSession) -> Template:
        return await self._render(request, db_session)

    @post("/", status_code=200)
    async def create(self, request: HTMXRequest, db_session: AsyncSession) -> Template:
        form = await request.form()
        values = {k: str(form.get(k, ""))[:2000] for k in _FIELDS}
        user: User = request.user
        service = _service(request, db_session)
        try:
            if not service.tier_allowed(user):  # refused before any password is tried
                await service.create(user, **values)
            await confirm_identity(
                request.app.state,
                user,
                password=str(form.get("password", ""))[:1000],
                pin=str(form.get("pin", "")).strip()[:16],
                ip=client_ip(request),
            )
            created = await service.create(user, **values)
        except FormErrors as exc:
            return await self._render(request, db_session, form=values, errors=exc.fields, status=422)
        await db_session.commit()
        return await self._render(request, db_session, created=created)

    @post("/{key_id:uuid}/callback", status_code=200)
    async def change_callback(
        self, request: HTMXRequest, db_session: AsyncSession, key_id: uuid.UUID
    ) -> Response[Any]:
        form = await request.form()
        user: User = request.user
        url = str(form.get("callback_url", ""))[:2000]
        try:
            await confirm_identity(
                request.app.state,
                user,
                password=str(form.get("password", ""))[:1000],
                pin=str(form.get("pin", "")).strip()[:16],
                ip=client_ip(request),
            )
            await _service(request, db_session).change_callback_url(key_id, user, url)
        except FormErrors as exc:
            errors = {f"cb_{k}": v for k, v in exc.fields.items()}
            return await self._render(
                request, db_session, form={"cb_callback_url": url}, errors=errors, editing=key_id, status=422
            )
        await db_session.commit()
        message = "Callback URL saved." if url.strip() else "Callback URL removed."
        if request.htmx:
            return await self._render(request, db_session)
        flash(request, message, category="success")
        return Redirect("/account/api-keys", status_code=303)

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
