"""Staff: unmatched transfers (money that arrived naming no customer) and crediting one by hand.

- `GET  /staff/funding/unmatched`                     unmatched events, oldest first, with what the payer's
                                                      bank told Monnify; then the ones assigned lately
- `POST /staff/funding/unmatched/{event id}/assign`   finance, password again: credit it to a customer with a
                                                      reason -> app.payments.assign.assign_unmatched

Thin: the service verifies with Monnify (when configured, with no transaction open), credits under the
webhook's own key `monnify:<transactionReference>` (never twice), marks the event and writes the audit entry.
"""

from __future__ import annotations

import datetime
from typing import Any

from litestar import Controller, MediaType, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.services import FormErrors
from app.accounts.staff_roles import FINANCE, SUPPORT, may, needs, requires_staff_role
from app.audit import service as audit
from app.core.flash import flash
from app.dashboard import funding_queries as q
from app.dashboard.adjustments import step_up
from app.dashboard.purchases import NO_STORE, ago
from app.payments.assign import REASON_MAX, AssignRefused, assign_unmatched

PAGE = "dashboard/funding_unmatched.html"
MAX_EVENT_ID = 2**63 - 1


class StaffUnmatchedController(Controller):
    path = "/staff/funding/unmatched"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; the action declares more
    include_in_schema = False

    @get("/", name="staff:funding-unmatched")
    async def index(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        return await self._page(request, db_session)

    @post("/{event_id:int}/assign", status_code=303, opt=needs(FINANCE))
    async def assign(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, event_id: int
    ) -> Redirect | Template:
        if not 0 < event_id <= MAX_EVENT_ID:
            flash(request, "No such funding event.", category="error")
            return Redirect("/staff/funding/unmatched", status_code=303)
        form = await request.form()
        values = {
            "customer": str(form.get("customer", "")).strip()[:254],
            "reason": str(form.get("reason", "")).strip()[:2000],
        }
        actor = audit.Actor.of(request)
        errors: dict[str, str] = {}
        customer = await q.find_customer(db_session, values["customer"]) if values["customer"] else None
        if customer is None:
            errors["customer"] = (
                "No customer matches: use their e-mail, phone, account reference or user id."
                if values["customer"]
                else "Who does this transfer belong to? Their e-mail, phone or account reference."
            )
        if not values["reason"]:
            errors["reason"] = "Write how you know it is theirs (kept with the event)."
        elif len(values["reason"]) > REASON_MAX:
            errors["reason"] = f"Keep the reason under {REASON_MAX} characters."
        if not errors:
            try:
                await step_up(request, form)
            except FormErrors as exc:
                errors = exc.fields
        if errors:
            return await self._page(
                request, db_session, event_id=event_id, form=values, errors=errors, status=400
            )
        assert customer is not None
        await db_session.commit()  # nothing of ours stays open while Monnify is asked
        funding = request.app.state.funding
        settings = request.app.state.settings
        try:
            assigned = await assign_unmatched(
                funding.sessionmaker,
                settings,
                funding.monnify,
                event_id=event_id,
                user_id=customer.id,
                actor=actor,
                reason=values["reason"],
            )
        except AssignRefused as exc:
            if exc.field:
                return await self._page(request, db_session, event_id=event_id, form=values,
                                        errors={exc.field: exc.message}, status=400)  # fmt: skip
            flash(request, exc.message, category="error")
            return Redirect(f"/staff/funding/unmatched#event-{event_id}", status_code=303)
        flash(request, f"Assigned: {assigned.line()}.", category="success")
        return Redirect(f"/staff/funding/{event_id}", status_code=303)

    @staticmethod
    async def _page(
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        *,
        event_id: int | None = None,
        form: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        now = datetime.datetime.now(datetime.UTC)
        context = {
            "unmatched": await q.unmatched_transfers(db_session),
            "unmatched_limit": q.UNMATCHED_LIMIT,
            "assigned": await q.assigned_transfers(db_session),
            "finance": may(request.user, FINANCE),
            "has_pin": bool(request.user.pin_hash),
            "ago": lambda value: ago(value, now),
            "open_id": event_id,
            "form": form or {},
            "errors": errors or {},
            "reason_max": REASON_MAX,
            "verify": request.app.state.settings.monnify_verify_before_credit,
        }
        return Template(
            template_name=PAGE,
            context=context,
            status_code=status,
            media_type=MediaType.HTML,
            headers=NO_STORE,
        )


__all__ = ["StaffUnmatchedController"]
