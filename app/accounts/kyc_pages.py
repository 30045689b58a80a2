"""The KYC page `/account/kyc`: the customer adds a BVN and/or NIN (shown masked), sees the KYC level and
its limits. Thin: rules live in app/accounts/kyc.py. The password (and the PIN, when set) are asked again
(`stepup.confirm_identity`): this is identity data, and it raises spending limits."""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, get, post
from litestar.response import Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_login
from app.accounts.controllers import FORM_ERROR_STATUS
from app.accounts.kyc import KycRefused, KycService, status_of
from app.accounts.models import User
from app.accounts.services import FormErrors
from app.accounts.stepup import confirm_identity
from app.accounts.throttle import client_ip
from app.core.flash import flash
from app.core.redirects import done

PAGE = "accounts/kyc.html"  # a plain form post (no htmx): errors re-render the page with their status


def kyc_service(request: HTMXRequest) -> KycService:
    funding = request.app.state.funding  # the process's Monnify client (app/payments/runtime.py)
    return KycService(funding.sessionmaker, request.app.state.settings, funding.monnify)


class KycController(Controller):
    path = "/account/kyc"
    guards = [requires_login]
    include_in_schema = False

    async def _render(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        *,
        errors: dict[str, str] | None = None,
        alert: str | None = None,
        status: int = 200,
    ) -> Template:
        user: User = request.user
        kyc = await status_of(db_session, request.app.state.settings, user.id)
        context = {"kyc": kyc, "has_pin": bool(user.pin_hash), "errors": errors or {}, "alert": alert}
        return Template(
            template_name=PAGE,
            context=context,
            status_code=status,
            media_type=MediaType.HTML,
        )

    @get("/", name="account:kyc")
    async def page(self, request: HTMXRequest, db_session: AsyncSession) -> Template:
        return await self._render(request, db_session)

    @post("/", status_code=200)
    async def save(self, request: HTMXRequest, db_session: AsyncSession) -> Any:
        form = await request.form()
        user: User = request.user
        service = kyc_service(request)
        try:
            numbers = service.validate(str(form.get("bvn", ""))[:40], str(form.get("nin", ""))[:40])
            await confirm_identity(
                request.app.state,
                user,
                password=str(form.get("password", ""))[:1000],
                pin=str(form.get("pin", "")).strip()[:16],
                ip=client_ip(request),
            )
            await service.store(db_session, user, numbers)
        except FormErrors as exc:  # nothing written (store checks before it writes); 422 is not committed
            return await self._render(request, db_session, errors=exc.fields, status=FORM_ERROR_STATUS)
        await db_session.commit()  # the numbers are stored (pending) before Monnify is asked
        try:
            level = await service.verify_with_monnify(user, ip=client_ip(request))
        except KycRefused as exc:
            return await self._render(request, db_session, alert=exc.message, status=503)
        flash(request, f"Thank you: your KYC level is now {level}.", category="success")
        return done(request, "/account/kyc")
