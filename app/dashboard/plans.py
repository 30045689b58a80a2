"""Staff: the PLANS & PRICES console. What each plan costs us, what customers and resellers pay for it now,
the margin in between, and the rules that set those prices.

- `GET  /staff/plans?service_id=mtn-data`   service picker, last sync, the plan table (provider price, active,
                                            source, customer / reseller price, margin and the rule that
                                            applies), service rules, recent provider price changes, and the
                                            airtime / electricity service rules
- `GET  /staff/plans/preview`               htmx fragment: what the rule being typed would charge (no writes)
- `POST /staff/plans/rules`                 set a tier's rule for the service or one plan (fixed N or % off)
- `POST /staff/plans/rules/remove`          remove a rule (back to the service rule / defaults)
- `POST /staff/plans/{id}/deactivate`       take a plan off sale; `/reactivate` puts it back
- `POST /staff/plans/sync`                  "Sync now from provider" (app.vtu.plans.sync_plans, as `vtu plans
                                            sync` does), its report shown as a flash

Thin: every change goes through app.vtu.price_rules (rules, plan availability) or app.vtu.plans.sync_plans;
prices shown are computed by app.vtu.pricing exactly as purchases are priced. Post/Redirect/Get with a flash;
invalid input re-renders the page with field errors (400) and writes nothing.
"""

from __future__ import annotations

import datetime
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import structlog
from litestar import Controller, MediaType, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.staff_roles import FINANCE, OPERATIONS, SUPPORT, needs, requires_staff_role
from app.audit import service as audit
from app.core.flash import flash
from app.core.naira import format_naira, parse_whole_naira
from app.dashboard.purchases import ago
from app.vtu import price_rules as rules
from app.vtu.models import TIERS
from app.vtu.plans import PlanSyncError, SyncReport, sync_plans
from app.vtu.providers import ProviderError
from app.vtu.providers.catalog import SERVICES, Service, ServiceKind, get_service
from app.vtu.runtime import VtuRuntime, get_vtu

log = structlog.get_logger("app.dashboard.plans")

Req = Request[Any, Any, Any]
PAGE = "dashboard/plans.html"
PREVIEW = "dashboard/partials/plans_preview.html"
NO_STORE = {"Cache-Control": "no-store"}
KIND_LABELS = {
    ServiceKind.DATA: "Data",
    ServiceKind.CABLE: "Cable TV",
    ServiceKind.AIRTIME: "Airtime",
    ServiceKind.ELECTRICITY: "Electricity",
    ServiceKind.EXAM: "Exam PINs",
}
# The picker: the services sold as plans (airtime / electricity are reached from their own section).
PLAN_SERVICES = tuple(
    s for s in SERVICES if s.kind in (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM)
)
DEFAULT_SERVICE = next(s.service_id for s in SERVICES if s.kind is ServiceKind.DATA)
FORM_FIELDS = ("tier", "variation_code", "price_naira", "discount_percent", "allow_loss", "reason")
# price_rules argument -> the form field that shows its error
FIELD_OF = {"fixed_price_kobo": "price_naira", "discount_bps": "discount_percent"}
_PERCENT = re.compile(r"^-?[0-9]{1,5}(?:\.[0-9]{1,2})?$")


# -- parsing ----------------------------------------------------------------------------------------------
def parse_price(raw: str) -> tuple[int | None, str | None]:
    """Whole naira typed by staff -> (kobo or None when empty, error); '-5' is passed on (the rules refuse
    it). `app.core.naira.parse_whole_naira`."""
    try:
        return parse_whole_naira(raw, allow_negative=True), None
    except ValueError as exc:
        return None, str(exc)


def parse_percent(raw: str) -> tuple[int | None, str | None]:
    """'2.5' or '2.5%' -> 250 basis points (None when empty); at most two decimals."""
    value = raw.replace("%", "").replace(" ", "").strip()
    if not value:
        return None, None
    if not _PERCENT.fullmatch(value):
        return None, "Enter a percentage with at most two decimals (e.g. 2.5)."
    try:
        return int(Decimal(value) * 100), None
    except InvalidOperation:  # pragma: no cover - the pattern already refused it
        return None, "Enter a percentage (e.g. 2.5)."


def _text(form: Any, name: str, limit: int = 300) -> str:
    return str(form.get(name, "") or "").strip()[:limit]


def plans_url(service_id: str, **extra: str) -> str:
    return "/staff/plans?" + urlencode({"service_id": service_id, **extra})


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _tier_label(tier: str) -> str:
    return "Customer" if tier == rules.CUSTOMER else "Reseller"


# -- messages after actions ---------------------------------------------------------------------------------
def set_message(change: rules.RuleChange, service: Service, plan_name: str | None) -> str:
    after = change.after
    assert after is not None
    who = _tier_label(change.tier)
    impact = change.impact
    if change.variation_code:
        line = impact.lines[0] if impact and impact.lines else None
        tail = ""
        if line is not None:
            margin = f"margin {format_naira(line.price.margin_kobo)}"
            fixed = after.fixed_price_kobo is not None
            tail = f" ({margin})" if fixed else f" ({format_naira(line.price.selling_kobo)}, {margin})"
        return f"{who} price for {plan_name or change.variation_code} is now {after.describe()}{tail}."
    if service.kind in rules.VARIABLE_KINDS:
        example = impact.example if impact else None
        tail = (
            f" (on {format_naira(rules.EXAMPLE_FACE_KOBO)}: pays {format_naira(example.selling_kobo)}, "
            f"margin {format_naira(example.margin_kobo)})"
            if example
            else ""
        )
        return f"{who} price for {service.name} is now {after.describe()}{tail}."
    count = len(impact.lines) if impact else 0
    margins = impact.margins if impact else None
    spread = f"; margins {format_naira(margins[0])} to {format_naira(margins[1])}" if margins else ""
    return (
        f"{who} price for every {service.name} plan without its own rule is now {after.describe()} "
        f"({count} active {'plan' if count == 1 else 'plans'}{spread})."
    )


def sync_message(report: SyncReport) -> tuple[str, str]:
    if report.empty:
        return report.summary(), "warning"
    parts = [report.summary() + "."]
    if report.created:
        parts.append(f"New: {', '.join(report.created[:8])}{' …' if len(report.created) > 8 else ''}.")
    for code, old, new in report.price_changes[:8]:
        parts.append(f"{code}: {format_naira(old)} → {format_naira(new)}.")
    if report.deactivated:
        parts.append(f"No longer listed (taken off sale): {', '.join(report.deactivated[:8])}.")
    return " ".join(parts), "success"


# -- the controller ------------------------------------------------------------------------------------------
def _rule_state(tier: str, variation_code: str, view: object | None) -> dict[str, object] | None:
    """A price rule as the audit log keeps it (None: no rule)."""
    if view is None:
        return None
    return {"tier": tier, "plan": variation_code or None} | audit.snapshot(
        view, "fixed_price_kobo", "discount_bps"
    )


class StaffPlanController(Controller):
    path = "/staff/plans"
    guards = [requires_staff_role]
    opt = needs(SUPPORT)  # reading; actions below declare more
    include_in_schema = False

    @get("/", name="staff:plans")
    async def index(
        self,
        request: Req,
        db_session: AsyncSession,
        service_id: str | None = Parameter(query="service_id", default=None, required=False),
        tier: str | None = Parameter(query="tier", default=None, required=False),
        plan: str | None = Parameter(query="plan", default=None, required=False),
    ) -> Template:
        """`tier` + `plan` (a variation code, '' = whole service) open the rule form on that rule."""
        service = self._service(service_id)
        form = await self._edit_form(db_session, service, tier, plan)
        return await self._page(request, db_session, service, form=form, errors={})

    @get("/preview", name="staff:plans-preview")
    async def preview(self, request: Req, db_session: AsyncSession) -> Template:
        """What the rule being typed would charge (htmx, as the form changes). Writes nothing."""
        query = request.query_params
        service = get_service(str(query.get("service_id") or ""))
        values = {name: str(query.get(name) or "").strip()[:300] for name in FORM_FIELDS}
        context: dict[str, Any] = {"impact": None, "problem": None, "service": service}
        if service is None:
            context["problem"] = "Choose a service."
            return self._render(PREVIEW, context)
        fixed, fixed_error = parse_price(values["price_naira"])
        discount, discount_error = parse_percent(values["discount_percent"])
        if fixed_error or discount_error:
            context["problem"] = fixed_error or discount_error
        elif fixed is None and discount is None:
            context["problem"] = "Type a fixed price or a discount to see what buyers would pay."
        else:
            runtime = await get_vtu(request.app)
            try:
                context["impact"] = await rules.preview_rule(
                    db_session,
                    tier=values["tier"],
                    service_id=service.service_id,
                    variation_code=values["variation_code"],
                    fixed_price_kobo=fixed,
                    discount_bps=discount,
                    config=runtime.config,
                    provider_slug=self._slug(runtime, service),
                )
            except rules.PriceRuleError as exc:
                context["problem"] = " ".join(dict.fromkeys(exc.fields.values()))
        return self._render(PREVIEW, context)

    @post("/rules", status_code=303, opt=needs(FINANCE))
    async def set_rule(self, request: Req, db_session: AsyncSession) -> Redirect | Template:
        form = await request.form()
        service_id = _text(form, "service_id", 64)
        service = get_service(service_id)
        values = {name: _text(form, name) for name in FORM_FIELDS}
        if service is None:
            flash(request, f"Unknown service {service_id!r}: nothing changed.", category="error")
            return Redirect(plans_url(DEFAULT_SERVICE), status_code=303)
        errors: dict[str, str] = {}
        fixed, error = parse_price(values["price_naira"])
        if error:
            errors["price_naira"] = error
        discount, error = parse_percent(values["discount_percent"])
        if error:
            errors["discount_percent"] = error
        if errors:
            return await self._page(request, db_session, service, form=values, errors=errors, status=400)
        runtime = await get_vtu(request.app)
        staff = request.user.email
        try:
            async with db_session.begin_nested():  # a refusal undoes everything it did (it writes nothing)
                change = await rules.set_rule(
                    db_session,
                    tier=values["tier"],
                    service_id=service.service_id,
                    variation_code=values["variation_code"],
                    fixed_price_kobo=fixed,
                    discount_bps=discount,
                    staff=staff,
                    allow_loss=values["allow_loss"] in {"yes", "on", "1"},
                    reason=values["reason"],
                    config=runtime.config,
                    provider_slug=self._slug(runtime, service),
                )
        except rules.PriceRuleError as exc:
            errors = {FIELD_OF.get(k, k): v for k, v in exc.fields.items()}
            return await self._page(request, db_session, service, form=values, errors=errors, status=400)
        plan_name = change.impact.lines[0].name if change.impact and change.impact.lines else None
        if change.changed:
            await audit.record(
                db_session,
                audit.Actor.of(request),
                "price_rule.set",
                target=("service", service.service_id),
                before=_rule_state(change.tier, change.variation_code, change.before),
                after=_rule_state(change.tier, change.variation_code, change.after),
                reason=values["reason"] or None,
            )
        await db_session.commit()
        flash(request, set_message(change, service, plan_name), category="success")
        return Redirect(self._back(service), status_code=303)

    @post("/rules/remove", status_code=303, opt=needs(FINANCE))
    async def remove_rule(self, request: Req, db_session: AsyncSession) -> Redirect:
        form = await request.form()
        service_id = _text(form, "service_id", 64)
        service = get_service(service_id)
        if service is None:
            flash(request, f"Unknown service {service_id!r}: nothing changed.", category="error")
            return Redirect(plans_url(DEFAULT_SERVICE), status_code=303)
        tier, code = _text(form, "tier", 16), _text(form, "variation_code", 100)
        runtime = await get_vtu(request.app)
        try:
            async with db_session.begin_nested():
                change = await rules.remove_rule(
                    db_session,
                    tier=tier,
                    service_id=service.service_id,
                    variation_code=code,
                    staff=request.user.email,
                    config=runtime.config,
                    provider_slug=self._slug(runtime, service),
                )
        except rules.PriceRuleError as exc:
            flash(request, "Not removed: " + " ".join(exc.fields.values()), category="error")
            return Redirect(self._back(service), status_code=303)
        if change.changed:
            await audit.record(
                db_session,
                audit.Actor.of(request),
                "price_rule.remove",
                target=("service", service.service_id),
                before=_rule_state(tier, code, change.before),
                after=None,
            )
        await db_session.commit()
        what = f"{_tier_label(tier)} {'plan' if code else 'service'} rule" + (f" for {code}" if code else "")
        if change.changed:
            back_to = "the service rule or the defaults" if code else "the defaults"
            flash(request, f"{what} removed: prices are back to {back_to}.", category="success")
        else:
            flash(request, f"There was no active {what.lower()}: nothing changed.", category="info")
        return Redirect(self._back(service), status_code=303)

    @post("/{plan_id:uuid}/deactivate", status_code=303, opt=needs(FINANCE))
    async def deactivate(self, request: Req, db_session: AsyncSession, plan_id: uuid.UUID) -> Redirect:
        return await self._set_active(request, db_session, plan_id, False)

    @post("/{plan_id:uuid}/reactivate", status_code=303, opt=needs(FINANCE))
    async def reactivate(self, request: Req, db_session: AsyncSession, plan_id: uuid.UUID) -> Redirect:
        return await self._set_active(request, db_session, plan_id, True)

    @post("/sync", status_code=303, opt=needs(OPERATIONS))
    async def sync(self, request: Req, db_session: AsyncSession) -> Redirect:
        """The sync `vtu plans sync` and the daily job run, for one service, with the runtime's provider."""
        form = await request.form()
        service_id = _text(form, "service_id", 64)
        service = get_service(service_id)
        if service is None or service.kind not in rules.PLAN_KINDS:
            flash(request, f"{service_id or 'That service'} has no plans to sync.", category="error")
            return Redirect(plans_url(service.service_id if service else DEFAULT_SERVICE), status_code=303)
        staff = request.user.email
        # No transaction of ours stays open while the provider is asked (money invariant 8).
        await db_session.commit()
        runtime = await get_vtu(request.app)
        try:
            provider = runtime.providers.for_service(service.service_id)
            async with runtime.purchases.sessionmaker() as session:
                report = await sync_plans(session, provider, service.service_id)
        except (PlanSyncError, ProviderError) as exc:
            message = exc.message if isinstance(exc, ProviderError) else str(exc)
            log.error("staff_plan_sync_failed", staff=staff, service_id=service.service_id, error=message)
            flash(request, f"Sync failed: {message}. Nothing changed.", category="error")
            return Redirect(plans_url(service.service_id), status_code=303)
        log.info("staff_plan_sync", staff=staff, service_id=service.service_id, summary=report.summary())
        await audit.record(
            db_session,
            audit.Actor.of(request),
            "plans.sync",
            target=("service", service.service_id),
            after={"summary": report.summary()},
        )
        await db_session.commit()
        message, category = sync_message(report)
        flash(request, message, category=category)
        return Redirect(plans_url(service.service_id), status_code=303)

    # -- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def _render(template: str, context: dict[str, Any], status: int = 200) -> Template:
        return Template(
            template_name=template,
            context=context,
            status_code=status,
            media_type=MediaType.HTML,
            headers=NO_STORE,
        )

    @staticmethod
    def _service(service_id: str | None) -> Service:
        service = get_service(service_id or "")
        if service is None:
            default = get_service(DEFAULT_SERVICE)
            assert default is not None
            return default
        return service

    @staticmethod
    def _slug(runtime: VtuRuntime, service: Service) -> str | None:
        """The provider whose plans buyers of this service see (None when misconfigured: every provider)."""
        try:
            return runtime.providers.slug_for(service.service_id)
        except ProviderError:
            return None

    @staticmethod
    def _back(service: Service) -> str:
        # The top of the page, where the flash saying what happened is.
        return plans_url(service.service_id)

    async def _edit_form(
        self, db_session: AsyncSession, service: Service, tier: str | None, plan: str | None
    ) -> dict[str, str]:
        """The rule form opened on one rule ("Edit" links), prefilled with the rule in force, if any."""
        form = dict.fromkeys(FORM_FIELDS, "")
        form["tier"] = tier if tier in TIERS else rules.CUSTOMER
        form["variation_code"] = (plan or "")[:100] if service.kind in rules.PLAN_KINDS else ""
        if tier in TIERS:
            existing = await rules.current_rule(
                db_session,
                tier=form["tier"],
                service_id=service.service_id,
                variation_code=form["variation_code"],
            )
            if existing is not None:
                if existing.fixed_price_kobo is not None:
                    form["price_naira"] = str(existing.fixed_price_kobo // 100)
                elif existing.discount_bps is not None:
                    form["discount_percent"] = rules.percent(existing.discount_bps).rstrip("%")
        return form

    async def _set_active(
        self, request: Req, db_session: AsyncSession, plan_id: uuid.UUID, active: bool
    ) -> Redirect:
        try:
            async with db_session.begin_nested():
                change = await rules.set_plan_active(db_session, plan_id, active, staff=request.user.email)
        except rules.PriceRuleError:
            flash(request, "No such plan: nothing changed.", category="error")
            return Redirect(plans_url(DEFAULT_SERVICE), status_code=303)
        if change.changed:
            await audit.record(
                db_session,
                audit.Actor.of(request),
                "plan.reactivate" if active else "plan.deactivate",
                target=("plan", change.plan_id),
                before={"on_sale": change.before, "service_id": change.service_id, "plan": change.name},
                after={"on_sale": change.after, "service_id": change.service_id, "plan": change.name},
            )
        await db_session.commit()
        if not change.changed:
            state = "on sale" if active else "off sale"
            flash(request, f"{change.name} was already {state}: nothing changed.", category="info")
        elif active:
            flash(request, f"{change.name} is on sale again.", category="success")
        else:
            flash(
                request,
                f"{change.name} is off sale: buyers no longer see it and it cannot be bought. "
                "It stays off sale through provider syncs until you put it back.",
                category="success",
            )
        return Redirect(plans_url(change.service_id), status_code=303)

    async def _page(
        self,
        request: Req,
        db_session: AsyncSession,
        service: Service,
        *,
        form: dict[str, str],
        errors: dict[str, str],
        status: int = 200,
    ) -> Template:
        runtime = await get_vtu(request.app)
        slug = self._slug(runtime, service)
        now = _now()
        pricing = await rules.service_pricing(
            db_session, service_id=service.service_id, provider_slug=slug, config=runtime.config
        )
        has_plans = service.kind in rules.PLAN_KINDS
        preview = None
        fixed, _ = parse_price(form.get("price_naira", ""))
        discount, _ = parse_percent(form.get("discount_percent", ""))
        if (fixed is None) != (discount is None):
            try:
                preview = await rules.preview_rule(
                    db_session,
                    tier=form.get("tier", ""),
                    service_id=service.service_id,
                    variation_code=form.get("variation_code", ""),
                    fixed_price_kobo=fixed,
                    discount_bps=discount,
                    config=runtime.config,
                    provider_slug=slug,
                )
            except rules.PriceRuleError:
                preview = None
        context: dict[str, Any] = {
            "service": service,
            "plan_services": PLAN_SERVICES,
            "kind_labels": KIND_LABELS,
            "slug": slug,
            "pricing": pricing,
            "has_plans": has_plans,
            "tiers": TIERS,
            "tier_label": _tier_label,
            "changes": (
                await rules.recent_price_changes(
                    db_session, service_id=service.service_id, provider_slug=slug
                )
                if has_plans
                else []
            ),
            "variable": await rules.variable_services(db_session, config=runtime.config),
            "form": form,
            "errors": errors,
            "impact": preview,
            "problem": None,
            "describe": rules.describe_terms,
            "percent": rules.percent,
            "example_face": rules.EXAMPLE_FACE_KOBO,
            "ago": lambda value: ago(value, now),
            "plans_url": plans_url,
        }
        return self._render(PAGE, context, status)


__all__ = ["StaffPlanController", "parse_percent", "parse_price", "set_message", "sync_message"]
