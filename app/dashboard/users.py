"""Staff: the Users console. "Who is this customer, what happened to their money, and stop them now."

- `GET  /staff/users`                         recent sign-ups, or search (`q`); keyset paged (`before`)
- `GET  /staff/users/{id}`                    the profile: identity, wallet statement (`before`: older
                                              entries), purchases, fundings, referrals, API keys, web
                                              sessions, audit entries, and the actions below
- `POST /staff/users/{id}/suspend`            operations; `reason` required
- `POST /staff/users/{id}/unsuspend`          operations; `reason` optional
- `POST /staff/users/{id}/tier`               finance; `tier` customer|reseller, `reason` required; the
                                              staff member's `password` (and `pin` when they have one)
- `POST /staff/users/{id}/pin-unlock`         operations: forget failed PIN attempts
- `POST /staff/users/{id}/api-keys/{key}/revoke`  operations: one key
- `POST /staff/users/{id}/api-keys/revoke-all`    operations: every active key
- `POST /staff/users/{id}/role`               admin; `role` support|operations|finance|admin or empty (not
                                              staff), `reason` optional; `password` (and `pin`) again

Thin: reads come from user_queries (and the purchase / funding consoles' queries); every change goes through
app.accounts.suspension / app.accounts.staff_admin, which check the rules, write the row with a guarded
UPDATE and record the audit entry in the same transaction. A refused action changes nothing and says why
(an error flash; a missing or too long reason is a 400 with the field marked and the text kept).
Changing a tier (it prices every purchase) or a staff role (it grants the console's powers) asks for the
staff member's password again, like adjustments (app.dashboard.adjustments.step_up): an open session on an
unattended desk must not be enough to hand out discounts or admin rights.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, cast
from urllib.parse import urlencode

import structlog
from litestar import Controller, MediaType, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import staff_admin, suspension
from app.accounts.apikeys import ApiKeyService
from app.accounts.kyc import status_of as kyc_status_of
from app.accounts.pins import pin_guard
from app.accounts.services import FormErrors
from app.accounts.sessions import list_sessions
from app.accounts.staff_roles import (
    ADMIN,
    FINANCE,
    OPERATIONS,
    ROLE_LABELS,
    ROLES,
    SUPPORT,
    may,
    needs,
    requires_staff_role,
)
from app.audit import service as audit
from app.core.flash import flash
from app.dashboard import funding_queries, purchase_queries
from app.dashboard import user_queries as q
from app.dashboard.adjustments import step_up
from app.dashboard.funding import tone
from app.dashboard.purchases import NO_STORE, ago, due
from app.vtu.providers.catalog import get_service

log = structlog.get_logger("app.dashboard.users")

PAGE = "dashboard/users.html"
RESULTS = "dashboard/partials/user_results.html"
ROWS = "dashboard/partials/user_rows.html"
PROFILE = "dashboard/user.html"
STATEMENT_ROWS = "dashboard/partials/user_statement_rows.html"
PAGE_SIZE = q.PAGE_SIZE  # users per page of the list
STATEMENT_PAGE = q.STATEMENT_PAGE  # wallet entries per page of the statement
RECENT_PURCHASES = 10
RECENT_FUNDINGS = 10


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _url(user_id: uuid.UUID) -> str:
    return f"/staff/users/{user_id}"


def _render(template: str, context: dict[str, Any], status: int = 200) -> Template:
    return Template(
        template_name=template,
        context=context,
        status_code=status,
        media_type=MediaType.HTML,
        headers=NO_STORE,
    )


def _helpers(now: datetime.datetime) -> dict[str, Any]:
    return {
        "now": now,
        "ago": lambda value: ago(value, now),
        "due": lambda value: due(value, now),
        "tone": tone,
        "service_name": lambda sid: s.name if (s := get_service(sid)) else sid,
        "overdue_after": purchase_queries.OVERDUE_AFTER,
    }


async def _form(request: Request[Any, Any, Any], *names: str) -> dict[str, str]:
    form = await request.form()
    return {name: str(form.get(name, "") or "")[:2000] for name in names}


class StaffUserController(Controller):
    path = "/staff/users"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; actions below declare more
    include_in_schema = False

    @get("/", name="staff:users")
    async def index(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        search: str | None = Parameter(query="q", default=None, required=False),
        before: str | None = Parameter(query="before", default=None, required=False),
        kyc: str | None = Parameter(query="kyc", default=None, required=False),
    ) -> Template:
        text = (search or "").strip()[:254]
        # KYC level filter: "0", "1" or "2" (ASCII digits); anything else shows every level
        level = int(kyc) if kyc in ("0", "1", "2") else None
        page = await q.list_users(db_session, text, before=before, limit=PAGE_SIZE, kyc_level=level)
        more_url = None
        if page.next_cursor:
            more_url = "/staff/users?" + urlencode(
                {
                    **({"q": text} if text else {}),
                    **({"kyc": str(level)} if level is not None else {}),
                    "before": page.next_cursor,
                }
            )
        context: dict[str, Any] = {
            **_helpers(_now()),
            "q": text,
            "kyc_level": level,
            "page": page,
            "more_url": more_url,
            "paged": q.decode_cursor(before) is not None,
        }
        htmx = request.htmx
        if htmx and not htmx.history_restore_request:
            if htmx.target == "more-users":  # "older": just the next rows
                return _render(ROWS, context)
            if htmx.target == "user-results":  # the search form
                return _render(RESULTS, context)
        return _render(PAGE, context)

    @get("/{user_id:uuid}", name="staff:user")
    async def profile(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        user_id: uuid.UUID,
        before: str | None = Parameter(query="before", default=None, required=False),
    ) -> Template:
        cursor = q.decode_entry_cursor(before)
        htmx = request.htmx
        if htmx and not htmx.history_restore_request and htmx.target == "more-statement":
            if await q.user_profile(db_session, user_id) is None:
                raise NotFoundException("No such user.")
            statement = await q.statement(db_session, user_id, before=cursor, limit=STATEMENT_PAGE)
            context = {"user_id": user_id, "statement": statement}
            return _render(STATEMENT_ROWS, context)
        return await self._profile(request, db_session, user_id, before=cursor)

    # -- actions ----------------------------------------------------------------------------------------
    @post("/{user_id:uuid}/suspend", status_code=303, opt=needs(OPERATIONS))
    async def suspend(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: uuid.UUID
    ) -> Redirect | Template:
        form = await _form(request, "reason")
        try:
            outcome = await suspension.suspend(db_session, audit.Actor.of(request), user_id, form["reason"])
        except staff_admin.Refused as exc:
            return await self._refused(request, db_session, user_id, exc, form, "suspend")
        await db_session.commit()
        if outcome.changed:
            await self._sign_out(request, user_id)
        return self._done(request, user_id, outcome)

    @post("/{user_id:uuid}/unsuspend", status_code=303, opt=needs(OPERATIONS))
    async def unsuspend(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: uuid.UUID
    ) -> Redirect | Template:
        form = await _form(request, "reason")
        try:
            outcome = await suspension.unsuspend(db_session, audit.Actor.of(request), user_id, form["reason"])
        except staff_admin.Refused as exc:
            return await self._refused(request, db_session, user_id, exc, form, "unsuspend")
        await db_session.commit()
        return self._done(request, user_id, outcome)

    @post("/{user_id:uuid}/tier", status_code=303, opt=needs(FINANCE))
    async def tier(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: uuid.UUID
    ) -> Redirect | Template:
        form = await _form(request, "tier", "reason", "password", "pin")
        if (refused := await self._step_up(request, db_session, user_id, form, "tier")) is not None:
            return refused
        try:
            outcome = await staff_admin.change_tier(
                db_session, audit.Actor.of(request), user_id, form["tier"], form["reason"]
            )
        except staff_admin.Refused as exc:
            return await self._refused(request, db_session, user_id, exc, form, "tier")
        await db_session.commit()
        return self._done(request, user_id, outcome)

    @post("/{user_id:uuid}/role", status_code=303, opt=needs(ADMIN))
    async def role(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: uuid.UUID
    ) -> Redirect | Template:
        form = await _form(request, "role", "reason", "password", "pin")
        if (refused := await self._step_up(request, db_session, user_id, form, "role")) is not None:
            return refused
        try:
            outcome = await staff_admin.change_role(
                db_session, audit.Actor.of(request), user_id, form["role"], form["reason"]
            )
        except staff_admin.Refused as exc:
            return await self._refused(request, db_session, user_id, exc, form, "role")
        await db_session.commit()
        return self._done(request, user_id, outcome)

    @post("/{user_id:uuid}/pin-unlock", status_code=303, opt=needs(OPERATIONS))
    async def pin_unlock(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: uuid.UUID
    ) -> Redirect | Template:
        try:
            outcome = await staff_admin.clear_pin_lock(
                db_session, request.app.state, audit.Actor.of(request), user_id
            )
        except staff_admin.Refused as exc:
            return await self._refused(request, db_session, user_id, exc, {}, "pin")
        await db_session.commit()
        return self._done(request, user_id, outcome)

    @post("/{user_id:uuid}/api-keys/{key_id:uuid}/revoke", status_code=303, opt=needs(OPERATIONS))
    async def revoke_key(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID
    ) -> Redirect | Template:
        try:
            outcome = await staff_admin.revoke_api_key(db_session, audit.Actor.of(request), user_id, key_id)
        except staff_admin.Refused as exc:
            return await self._refused(request, db_session, user_id, exc, {}, "keys")
        await db_session.commit()
        return self._done(request, user_id, outcome)

    @post("/{user_id:uuid}/api-keys/revoke-all", status_code=303, opt=needs(OPERATIONS))
    async def revoke_all_keys(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, user_id: uuid.UUID
    ) -> Redirect | Template:
        try:
            outcome = await staff_admin.revoke_all_api_keys(db_session, audit.Actor.of(request), user_id)
        except staff_admin.Refused as exc:
            return await self._refused(request, db_session, user_id, exc, {}, "keys")
        await db_session.commit()
        return self._done(request, user_id, outcome)

    # -- helpers ----------------------------------------------------------------------------------------
    @staticmethod
    def _done(request: Request[Any, Any, Any], user_id: uuid.UUID, outcome: staff_admin.Outcome) -> Redirect:
        flash(request, outcome.message, category="success" if outcome.changed else "info")
        return Redirect(_url(user_id), status_code=303)

    async def _step_up(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        user_id: uuid.UUID,
        form: dict[str, str],
        action: str,
    ) -> Template | None:
        """None when the password (and PIN) are right; else the profile again, 400, the field marked, what
        was typed kept (never the password or PIN), nothing changed."""
        try:
            await step_up(request, form)
        except FormErrors as exc:
            if await q.user_profile(db_session, user_id) is None:
                raise NotFoundException("No such user.") from None
            kept = {k: v for k, v in form.items() if k not in ("password", "pin")}
            errors = {f"{action}.{field}": message for field, message in exc.fields.items()}
            return await self._profile(
                request, db_session, user_id, form={action: kept}, errors=errors, status=400
            )
        return None

    async def _refused(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        user_id: uuid.UUID,
        exc: staff_admin.Refused,
        form: dict[str, str],
        action: str,
    ) -> Redirect | Template:
        """Nothing changed: a bad field is a 400 page with the field marked (and what was typed kept); any
        other refusal an error flash on the profile. The services refuse before writing anything; the
        request's transaction then ends (committing nothing) and releases the row locks they took."""
        if isinstance(exc, staff_admin.NoSuchUser):
            raise NotFoundException("No such user.")
        if exc.field is not None:
            errors = {f"{action}.{exc.field}": exc.message}
            return await self._profile(
                request, db_session, user_id, form={action: form}, errors=errors, status=400
            )
        flash(request, f"Not changed: {exc.message}", category="error")
        return Redirect(_url(user_id), status_code=303)

    @staticmethod
    async def _sign_out(request: Request[Any, Any, Any], user_id: uuid.UUID) -> None:
        """Delete the suspended user's web sessions (already refused by the session middleware)."""
        try:
            ended = await suspension.sign_out(
                request.app.state.redis, request.app.stores.get("sessions"), user_id
            )
        except Exception:  # Redis trouble: the middleware still refuses the sessions; never fail the action
            log.exception("suspension_sign_out_failed", user_id=str(user_id))
            return
        log.info("suspension_signed_out", user_id=str(user_id), sessions=ended)

    async def _profile(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        user_id: uuid.UUID,
        *,
        before: int | None = None,
        form: dict[str, dict[str, str]] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        user = await q.user_profile(db_session, user_id)
        if user is None:
            raise NotFoundException("No such user.")
        now = _now()
        viewer = request.user
        purchases = await purchase_queries.list_purchases(
            db_session, purchase_queries.PurchaseFilter(q=str(user_id)), limit=RECENT_PURCHASES
        )
        customer = await funding_queries.customer_by_id(db_session, user_id)
        fundings = (
            await funding_queries.customer_events(db_session, customer, limit=RECENT_FUNDINGS)
            if customer
            else []
        )
        pin_locked = await pin_guard(request.app.state).locked_for(cast(Any, user)) if user.pin_set else 0
        context = {
            **_helpers(now),
            "u": user,
            "statement": await q.statement(db_session, user_id, before=before, limit=STATEMENT_PAGE),
            "paged": before is not None,
            "purchases": purchases.rows,
            "more_purchases": purchases.next_cursor is not None,
            "fundings": fundings,
            "referrals": await q.referrals_of(db_session, user),
            "keys": await ApiKeyService(db_session).list_for_user(user_id, revoked_limit=10),
            "sessions": [
                {**s, "since": datetime.datetime.fromtimestamp(int(s.get("created") or 0), datetime.UTC)}
                for s in await list_sessions(request.app, user_id)
            ],
            "audit": await q.audit_entries(db_session, user_id),
            "kyc": await kyc_status_of(db_session, request.app.state.settings, user_id),
            "pin_locked": pin_locked,
            "is_self": viewer.id == user_id,
            "can": {role: may(viewer, role) for role in ROLES},
            "roles": ROLES,
            "role_labels": ROLE_LABELS,
            "reason_max": staff_admin.REASON_MAX,
            "viewer_has_pin": bool(viewer.pin_hash),
            "form": form or {},
            "errors": errors or {},
        }
        return _render(PROFILE, context, status)


__all__ = ["StaffUserController"]
