"""Staff: manual wallet adjustments (finance). Rules in app.ledger.adjustments; posting in SQL.

- `GET  /staff/adjustments`                 pending approvals (oldest first), then the recent decided ones
- `GET  /staff/adjustments/new?user=<id>`   the "New adjustment" form for a customer (or `?q=` to find one)
- `POST /staff/adjustments`                 request one (finance; password again): posts at once within
                                            ADJUSTMENT_APPROVAL_KOBO, else waits for a second finance user
- `POST /staff/adjustments/{id}/approve`    a second finance user approves (password again): posts once
- `POST /staff/adjustments/{id}/reject`     reject a pending one with a note

Thin: parse, step-up (app.accounts.stepup.confirm_identity), call the service, commit, Post/Redirect/Get.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from litestar import Controller, MediaType, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.services import FormErrors
from app.accounts.staff_roles import FINANCE, SUPPORT, may, needs, requires_staff_role
from app.accounts.stepup import confirm_identity
from app.accounts.throttle import client_ip
from app.audit import service as audit
from app.core.flash import flash
from app.dashboard import funding_queries as fq
from app.dashboard.purchases import NO_STORE, ago
from app.ledger import adjustments as svc
from app.ledger.models import ADJUSTMENT_REASON_MAX

PAGE = "dashboard/adjustments.html"
NEW = "dashboard/adjustment_new.html"
_FIELDS = ("user", "direction", "amount", "reason")


def _render(template: str, context: dict[str, Any], status: int = 200) -> Template:
    return Template(
        template_name=template,
        context=context,
        status_code=status,
        media_type=MediaType.HTML,
        headers=NO_STORE,
    )


async def step_up(request: Request[Any, Any, Any], form: Any) -> None:
    """The password again (and the PIN when the staff member has one): these actions spend money."""
    await confirm_identity(
        request.app.state,
        request.user,
        password=str(form.get("password", ""))[:1000],
        pin=str(form.get("pin", "")).strip()[:16],
        ip=client_ip(request),
    )


class StaffAdjustmentController(Controller):
    path = "/staff/adjustments"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; actions below declare more
    include_in_schema = False

    @get("/", name="staff:adjustments")
    async def index(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        return await self._index(request, db_session)

    @get("/new", name="staff:adjustment-new", opt=needs(FINANCE))
    async def new(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        user: str | None = Parameter(query="user", default=None, required=False),
        search: str | None = Parameter(query="q", default=None, required=False),
    ) -> Template:
        lookup = (user or search or "").strip()[:254]
        customer = await fq.find_customer(db_session, lookup) if lookup else None
        status = 404 if lookup and customer is None else 200
        return await self._new(request, db_session, customer, q=lookup, status=status)

    @post("/", status_code=303, opt=needs(FINANCE))
    async def create(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Redirect | Template:
        form = await request.form()
        values = {k: str(form.get(k, "")).strip()[:2000] for k in _FIELDS}
        errors: dict[str, str] = {}
        customer = None
        with contextlib.suppress(ValueError):
            customer = await fq.customer_by_id(db_session, uuid.UUID(values["user"]))
        if customer is None:
            return await self._new(request, db_session, None, q=values["user"], status=400,
                                   general="Choose the customer first.")  # fmt: skip
        amount = 0
        try:
            amount = svc.parse_amount_naira(values["amount"])
        except ValueError as exc:
            errors["amount"] = str(exc)
        if values["direction"] not in ("credit", "debit"):
            errors["direction"] = "Choose credit (add to the wallet) or debit (take from it)."
        if not values["reason"]:
            errors["reason"] = "Write why (the customer's statement shows it)."
        elif len(values["reason"]) > ADJUSTMENT_REASON_MAX:
            errors["reason"] = f"Keep the reason under {ADJUSTMENT_REASON_MAX} characters."
        if errors:
            return await self._new(request, db_session, customer, form=values, errors=errors, status=400)
        actor = audit.Actor.of(request)
        try:
            await step_up(request, form)
            # A savepoint: a refusal undoes the service's work alone (the signed-in user stays loaded).
            async with db_session.begin_nested():
                outcome = await svc.request_adjustment(
                    db_session,
                    actor,
                    user_id=customer.id,
                    direction=values["direction"],
                    amount_kobo=amount,
                    reason=values["reason"],
                    approval_limit_kobo=request.app.state.settings.adjustment_approval_kobo,
                )
        except FormErrors as exc:
            return await self._new(request, db_session, customer, form=values, errors=exc.fields, status=400)
        except svc.AdjustmentRefused as exc:
            return await self._new(
                request, db_session, customer, form=values, errors=exc.fields, status=400, general=exc.message
            )
        await db_session.commit()
        flash(request, outcome.message, category="success" if outcome.posted else "info")
        return Redirect(f"/staff/adjustments#adj-{outcome.adjustment.id}", status_code=303)

    @post("/{adjustment_id:uuid}/approve", status_code=303, opt=needs(FINANCE))
    async def approve(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, adjustment_id: uuid.UUID
    ) -> Redirect | Template:
        form = await request.form()
        note = str(form.get("note", "")).strip()[:2000]
        try:
            await step_up(request, form)
        except FormErrors as exc:
            errors = {f"{adjustment_id}:{k}": v for k, v in exc.fields.items()}
            return await self._index(request, db_session, errors=errors, form={f"{adjustment_id}:note": note},
                                     status=400)  # fmt: skip
        actor = audit.Actor.of(request)
        try:
            async with db_session.begin_nested():
                outcome = await svc.approve_adjustment(db_session, actor, adjustment_id, note=note)
        except svc.AdjustmentRefused as exc:
            flash(request, exc.message, category="error")
            return Redirect(f"/staff/adjustments#adj-{adjustment_id}", status_code=303)
        await db_session.commit()
        flash(request, outcome.message, category="success")
        return Redirect(f"/staff/adjustments#adj-{adjustment_id}", status_code=303)

    @post("/{adjustment_id:uuid}/reject", status_code=303, opt=needs(FINANCE))
    async def reject(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, adjustment_id: uuid.UUID
    ) -> Redirect | Template:
        form = await request.form()
        note = str(form.get("note", "")).strip()[:2000]
        actor = audit.Actor.of(request)
        try:
            async with db_session.begin_nested():
                outcome = await svc.reject_adjustment(db_session, actor, adjustment_id, note=note)
        except svc.AdjustmentRefused as exc:
            if exc.fields:
                errors = {f"{adjustment_id}:{k}": v for k, v in exc.fields.items()}
                return await self._index(request, db_session, errors=errors,
                                         form={f"{adjustment_id}:note": note}, status=400)  # fmt: skip
            flash(request, exc.message, category="error")
            return Redirect(f"/staff/adjustments#adj-{adjustment_id}", status_code=303)
        await db_session.commit()
        flash(request, outcome.message, category="info")
        return Redirect(f"/staff/adjustments#adj-{adjustment_id}", status_code=303)

    # -- helpers ---------------------------------------------------------------------------------------------
    @staticmethod
    async def _index(
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        *,
        errors: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        import datetime

        pending, recent = await svc.list_adjustments(db_session)
        now = datetime.datetime.now(datetime.UTC)
        context = {
            "pending": pending,
            "recent": recent,
            "limit_kobo": request.app.state.settings.adjustment_approval_kobo,
            "finance": may(request.user, FINANCE),
            "me": request.user.id,
            "has_pin": bool(request.user.pin_hash),
            "ago": lambda value: ago(value, now),
            "errors": errors or {},
            "form": form or {},
        }
        return _render(PAGE, context, status)

    @staticmethod
    async def _new(
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        customer: fq.Customer | None,
        *,
        q: str = "",
        form: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        general: str | None = None,
        status: int = 200,
    ) -> Template:
        context = {
            "customer": customer,
            "q": q,
            "form": form or {},
            "errors": errors or {},
            "general": general,
            "limit_kobo": request.app.state.settings.adjustment_approval_kobo,
            "has_pin": bool(request.user.pin_hash),
            "reason_max": ADJUSTMENT_REASON_MAX,
        }
        return _render(NEW, context, status)


__all__ = ["StaffAdjustmentController", "step_up"]
