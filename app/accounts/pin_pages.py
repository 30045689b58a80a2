"""The transaction PIN page: set or change the PIN that approves web purchases. Thin: rules live in
app/accounts/pins.py. Plain form posts and htmx swaps of the form both work."""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, get, post
from litestar.response import Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_login
from app.accounts.controllers import FORM_ERROR_STATUS
from app.accounts.models import User
from app.accounts.pins import set_pin
from app.accounts.services import FormErrors
from app.accounts.throttle import client_ip
from app.core.flash import flash
from app.core.redirects import done, safe_next

PAGE = "accounts/pin.html"
PARTIAL = "accounts/partials/pin_form.html"


class PinController(Controller):
    path = "/account/pin"
    guards = [requires_login]
    include_in_schema = False

    @get("/", name="account:pin")
    async def page(self, request: HTMXRequest, next: str | None = None) -> Template:
        user: User = request.user
        context = {"has_pin": bool(user.pin_hash), "next": safe_next(next), "errors": {}}
        return Template(template_name=PAGE, context=context)

    @post("/", status_code=200)
    async def save(self, request: HTMXRequest, db_session: AsyncSession) -> Any:
        form = await request.form()
        user: User = request.user
        had_pin = bool(user.pin_hash)
        target = safe_next(str(form.get("next", "")) or None)
        try:
            await set_pin(
                db_session,
                request.app.state,
                user,
                password=str(form.get("password", ""))[:1000],
                current_pin=str(form.get("current_pin", "")).strip()[:16],
                pin=str(form.get("pin", "")).strip()[:16],
                confirm=str(form.get("confirm_pin", "")).strip()[:16],
                ip=client_ip(request),
            )
        except FormErrors as exc:
            context = {"has_pin": had_pin, "next": target, "errors": exc.fields}
            return Template(
                template_name=PARTIAL if request.htmx else PAGE,
                context=context,
                status_code=FORM_ERROR_STATUS,
                media_type=MediaType.HTML,
            )
        await db_session.commit()
        flash(request, "Transaction PIN changed." if had_pin else "Transaction PIN set.", category="success")
        return done(request, target)
