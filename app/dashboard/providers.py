"""Staff: PROVIDERS & ROUTING. Which providers each service tries, in order, and how healthy each provider is.

- `GET  /staff/providers`                      (support) every provider's circuit breaker (closed / open
                                               until HH:MM / half-open), last known float; every service's
                                               effective order (staff's, else the configured one)
- `POST /staff/providers/routes`               (operations) set a service's order (`service_id`, `providers`
                                               "vtpass, clubkonnect"); refused with a 400 and nothing written
                                               when a slug is unknown, repeated or none is given
- `POST /staff/providers/routes/reset`         (operations) back to the configured order
- `POST /staff/providers/breaker/reset`        (operations) close a provider's breaker (`slug`)

Thin: rules and writes in app.vtu.provider_routes, breaker state in app.vtu.provider_health; every action is
audited there. Post/Redirect/Get with a flash. A refusal (`RouteError`) is raised before anything is written,
so the page is re-rendered on the same session (no rollback: that would expire the signed-in user).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.staff_roles import OPERATIONS, SUPPORT, may, needs, requires_staff_role
from app.audit import service as audit
from app.core.flash import flash
from app.vtu import provider_routes as routes
from app.vtu.provider_health import ProviderHealth
from app.vtu.providers.catalog import get_service
from app.vtu.runtime import get_vtu

Req = Request[Any, Any, Any]
PAGE = "dashboard/providers.html"
NO_STORE = {"Cache-Control": "no-store"}


def _text(form: Any, name: str, limit: int = 300) -> str:
    return str(form.get(name, "") or "").strip()[:limit]


def _health(request: Req) -> ProviderHealth:
    state = request.app.state
    return ProviderHealth(state.redis, None, state.settings)


async def _forget_routes(request: Req) -> None:
    """This process's router sees a staff edit at once (other processes within ROUTES_CACHE_SECONDS)."""
    runtime = await get_vtu(request.app)
    if runtime.health is not None:
        runtime.health.forget_routes()


class StaffProviderController(Controller):
    path = "/staff/providers"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; actions below declare more
    include_in_schema = False

    @get("/", name="staff:providers")
    async def index(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._page(request, db_session)

    @post("/routes", status_code=303, opt=needs(OPERATIONS))
    async def set_route(self, request: Req, db_session: AsyncSession) -> Redirect | Template:
        form = await request.form()
        service_id = _text(form, "service_id", 64)
        typed = _text(form, "providers", 200)
        try:
            change = await routes.set_order(
                db_session,
                service_id=service_id,
                slugs=routes.parse_order(typed),
                actor=audit.Actor.of(request),
                settings=request.app.state.settings,
                reason=_text(form, "reason", 500),
            )
        except routes.RouteError as exc:
            return await self._page(
                request, db_session, error=(service_id, exc.message), typed=typed, status=400
            )
        await db_session.commit()
        await _forget_routes(request)
        name = get_service(change.service_id)
        flash(
            request,
            f"{name.name if name else change.service_id}: providers now tried in the order "
            f"{', '.join(change.after or [])}.",
            category="success",
        )
        return Redirect(f"/staff/providers#route-{change.service_id}", status_code=303)

    @post("/routes/reset", status_code=303, opt=needs(OPERATIONS))
    async def reset_route(self, request: Req, db_session: AsyncSession) -> Redirect | Template:
        form = await request.form()
        service_id = _text(form, "service_id", 64)
        try:
            change = await routes.reset_order(
                db_session, service_id=service_id, actor=audit.Actor.of(request)
            )
        except routes.RouteError as exc:
            return await self._page(request, db_session, error=(service_id, exc.message), status=400)
        await db_session.commit()
        await _forget_routes(request)
        if change.before is None:
            flash(request, f"{service_id} already used the configured order.", category="info")
        else:
            flash(request, f"{service_id} is back to the configured order.", category="success")
        return Redirect(f"/staff/providers#route-{service_id}", status_code=303)

    @post("/breaker/reset", status_code=303, opt=needs(OPERATIONS))
    async def reset_breaker(self, request: Req, db_session: AsyncSession) -> Redirect | Template:
        form = await request.form()
        slug = _text(form, "slug", 32).lower()
        try:
            before = await routes.reset_breaker(
                db_session, _health(request), slug=slug, actor=audit.Actor.of(request)
            )
        except routes.RouteError as exc:
            return await self._page(request, db_session, error=("", exc.message), status=400)
        flash(
            request,
            f"{slug}: breaker closed (it was {before.state}); purchases may be routed to it again.",
            category="success",
        )
        return Redirect(f"/staff/providers#provider-{slug}", status_code=303)

    async def _page(
        self,
        request: Req,
        db_session: AsyncSession,
        *,
        error: tuple[str, str] | None = None,
        typed: str = "",
        status: int = 200,
    ) -> Template:
        can_edit = may(request.user, OPERATIONS)
        runtime = await get_vtu(request.app)
        data = await routes.overview(db_session, _health(request), request.app.state.settings, runtime.config)
        await db_session.commit()  # end the read transaction: nothing is held while the page renders
        context = {
            "data": data,
            "error": error,
            "typed": typed,
            "can_edit": can_edit,
        }
        return Template(template_name=PAGE, context=context, status_code=status, headers=NO_STORE)


__all__ = ["StaffProviderController"]
