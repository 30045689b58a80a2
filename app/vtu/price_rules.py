"""Staff-set selling prices (`price_rules`) and plan availability: the ONLY code that writes them.

- `set_rule`: one tier's price for a whole service (variation_code '') or one plan, as a fixed price or a
  discount in basis points; upserted on (tier, service_id, variation_code) and made active. Refused, with
  nothing written, when it would sell below the provider's cost: always for customers, and for resellers
  unless the caller passes `allow_loss=True` with a reason.
- `remove_rule`: deactivates a rule; the next most specific one (service rule, else the defaults) applies.
- `set_plan_active`: takes a plan off sale (or back on). Note: a plan sync reactivates a synced plan the
  provider still lists (app.vtu.plans), so taking one off sale lasts until the next sync.
- `preview_rule`: what a rule would charge per plan and the margin it leaves; set_rule's loss check and the
  staff page's preview are the same computation.
- Read helpers for the staff console: `service_pricing`, `variable_services`, `recent_price_changes`.

Prices are computed with app.vtu.pricing (`default_terms`, `price_with`) exactly as `price_for` and
`plans.priced_plans` do at purchase time: the most specific active rule wins, else the defaults. Every
change is logged with structlog (staff, before, after). Callers own the transaction (commit after).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.naira import format_naira
from app.vtu.config import VtuConfig, get_vtu_config
from app.vtu.models import TIERS, Plan, PlanPriceChange, PriceRule
from app.vtu.pricing import CUSTOMER, RESELLER, Price, RuleTerms, default_terms, most_specific, price_with
from app.vtu.providers.catalog import PRICE_CAPPED, SERVICES, Service, ServiceKind, get_service

log = structlog.get_logger("app.vtu.price_rules")

PLAN_KINDS = (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM)  # priced per plan
VARIABLE_KINDS = (ServiceKind.AIRTIME, ServiceKind.ELECTRICITY)  # the buyer picks the amount: discounts only
EXAMPLE_FACE_KOBO = 100_000  # airtime / electricity rules are shown on a N1,000 sale
MAX_BPS = 10_000
REASON_MAX = 300
SERVICE_RULE = "service rule"
PLAN_RULE = "plan rule"


class PriceRuleError(Exception):
    """Refused input; `fields` maps each argument (tier, service_id, variation_code, fixed_price_kobo,
    discount_bps, reason, plan_id) to a message for staff. Raised before anything is written."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.fields.items()))


# -- values -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RuleView:
    tier: str
    service_id: str
    variation_code: str  # '' = the whole service
    fixed_price_kobo: int | None
    discount_bps: int | None
    active: bool = True
    updated_at: datetime.datetime | None = None

    @classmethod
    def of(cls, rule: PriceRule) -> RuleView:
        return cls(
            rule.tier,
            rule.service_id,
            rule.variation_code,
            rule.fixed_price_kobo,
            rule.discount_bps,
            rule.active,
            rule.updated_at,
        )

    @property
    def scope(self) -> str:
        return PLAN_RULE if self.variation_code else SERVICE_RULE

    @property
    def terms(self) -> RuleTerms:
        return RuleTerms(self.fixed_price_kobo, self.discount_bps, self.scope)

    def describe(self) -> str:
        return describe_terms(self.terms)

    def as_log(self) -> dict[str, Any]:
        return {
            "fixed_price_kobo": self.fixed_price_kobo,
            "discount_bps": self.discount_bps,
            "active": self.active,
        }


def percent(bps: int) -> str:
    """250 -> '2.5%', 100 -> '1%', 0 -> '0%'."""
    whole, rem = divmod(bps, 100)
    return f"{whole}%" if not rem else f"{whole}.{rem:02d}".rstrip("0") + "%"


def describe_terms(terms: RuleTerms) -> str:
    if terms.fixed_price_kobo is not None:
        return f"fixed {format_naira(terms.fixed_price_kobo)}"
    bps = terms.discount_bps or 0
    return "face value" if bps == 0 else f"{percent(bps)} off"


@dataclass(frozen=True, slots=True)
class PricedLine:
    """One plan priced by a rule (a preview) or as buyers pay now."""

    variation_code: str
    name: str
    active: bool
    price: Price
    now: Price | None = None  # what it sells for before the change (previews)


@dataclass(frozen=True, slots=True)
class Impact:
    """What a rule would do: the plans it would price (data / cable), or a N1,000 sale (airtime /
    electricity, where it loses money iff the discount beats the provider's commission)."""

    tier: str
    service: Service
    variation_code: str
    terms: RuleTerms
    commission_bps: int
    lines: tuple[PricedLine, ...] = ()
    example: Price | None = None
    example_now: Price | None = None

    @property
    def losses(self) -> tuple[PricedLine, ...]:
        return tuple(line for line in self.lines if line.price.margin_kobo < 0)

    @property
    def loss(self) -> bool:
        if self.service.kind in VARIABLE_KINDS:
            return (self.terms.discount_bps or 0) > self.commission_bps
        return bool(self.losses)

    @property
    def margins(self) -> tuple[int, int] | None:
        values = [line.price.margin_kobo for line in self.lines]
        return (min(values), max(values)) if values else None

    def loss_message(self) -> str:
        who = "Customers" if self.tier == CUSTOMER else "Resellers"
        if self.service.kind in VARIABLE_KINDS:
            return (
                f"{who} would pay less than the provider takes: {percent(self.terms.discount_bps or 0)} off "
                f"is more than the provider's {percent(self.commission_bps)} commission (on "
                f"{format_naira(EXAMPLE_FACE_KOBO)}: margin "
                f"{format_naira(self.example.margin_kobo if self.example else 0)})."
            )
        worst = min(self.losses, key=lambda line: line.price.margin_kobo)
        more = len(self.losses) - 1
        return (
            f"{who} would pay less than the provider's cost: {worst.name} at "
            f"{format_naira(worst.price.selling_kobo)} costs us {format_naira(worst.price.cost_kobo)} "
            f"(margin {format_naira(worst.price.margin_kobo)})"
            + (f", and {more} more {'plan' if more == 1 else 'plans'}" if more else "")
            + "."
        )


@dataclass(frozen=True, slots=True)
class RuleChange:
    tier: str
    service_id: str
    variation_code: str
    before: RuleView | None  # the row before (None: there was none)
    after: RuleView | None  # the row after (None: nothing changed)
    impact: Impact | None = None

    @property
    def changed(self) -> bool:
        return self.after is not None


@dataclass(frozen=True, slots=True)
class PlanChange:
    plan_id: uuid.UUID
    service_id: str
    variation_code: str
    name: str
    before: bool
    after: bool

    @property
    def changed(self) -> bool:
        return self.before != self.after


# -- validation ---------------------------------------------------------------------------------------------
def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(
    tier: str,
    service_id: str,
    variation_code: str,
    fixed_price_kobo: int | None,
    discount_bps: int | None,
) -> Service:
    errors: dict[str, str] = {}
    if tier not in TIERS:
        errors["tier"] = "Choose customer or reseller."
    service = get_service(service_id)
    if service is None:
        errors["service_id"] = f"Unknown service {service_id!r}."
    elif service.kind in VARIABLE_KINDS and variation_code:
        errors["variation_code"] = f"{service.name} has no plans: set a rule for the whole service."
    elif service.service_id in PRICE_CAPPED:
        errors["service_id"] = f"{service.name} is always sold at its approved price: no price rules."
    if fixed_price_kobo is not None and discount_bps is not None:
        message = "Give a fixed price or a discount, not both."
        errors["fixed_price_kobo"] = errors["discount_bps"] = message
    elif fixed_price_kobo is None and discount_bps is None:
        errors["fixed_price_kobo"] = "Give a fixed price or a discount."
    elif fixed_price_kobo is not None:
        if not _is_int(fixed_price_kobo) or fixed_price_kobo <= 0:
            errors["fixed_price_kobo"] = "A fixed price must be more than ₦0."
        elif service is not None and service.kind in VARIABLE_KINDS:
            errors["fixed_price_kobo"] = (
                f"{service.name} is sold at the amount the buyer chooses: use a discount, not a fixed price."
            )
        elif service is not None and service.kind is ServiceKind.CABLE and not variation_code:
            # A renewal is priced at the smartcard's renewal amount, whatever bouquet it is: one fixed price
            # for the whole service would also be charged for renewals of any amount.
            errors["fixed_price_kobo"] = (
                f"One fixed price for every {service.name} bouquet would also be charged for renewals of any "
                "amount: use a discount, or a fixed price per bouquet."
            )
    elif discount_bps is not None and (not _is_int(discount_bps) or not 0 <= discount_bps <= MAX_BPS):
        errors["discount_bps"] = "A discount is 0% to 100% (0 to 10000 basis points)."
    if errors:
        raise PriceRuleError(errors)
    assert service is not None
    return service


def _check_scope(tier: str, service_id: str) -> Service:
    errors: dict[str, str] = {}
    if tier not in TIERS:
        errors["tier"] = "Choose customer or reseller."
    service = get_service(service_id)
    if service is None:
        errors["service_id"] = f"Unknown service {service_id!r}."
    if errors:
        raise PriceRuleError(errors)
    assert service is not None
    return service


# -- reads --------------------------------------------------------------------------------------------------
def _plans_query(service_id: str, provider_slug: str | None) -> Any:
    query = select(Plan).where(Plan.service_id == service_id)
    if provider_slug is not None:
        query = query.where(Plan.provider_slug == provider_slug)
    return query.order_by(Plan.provider_price_kobo, func.lower(Plan.name), Plan.variation_code)


async def _active_rules(
    session: AsyncSession, service_ids: Iterable[str], *, plan_rules: bool = True
) -> dict[tuple[str, str], dict[str, RuleView]]:
    """{(tier, service_id): {variation_code: rule}} of the active rules ('' = whole service)."""
    query = select(PriceRule).where(PriceRule.service_id.in_(list(service_ids)), PriceRule.active.is_(True))
    if not plan_rules:
        query = query.where(PriceRule.variation_code == "")
    out: dict[tuple[str, str], dict[str, RuleView]] = {}
    for rule in (await session.execute(query)).scalars():
        out.setdefault((rule.tier, rule.service_id), {})[rule.variation_code] = RuleView.of(rule)
    return out


def _effective(
    rules: Mapping[str, RuleView], variation_code: str, tier: str, kind: ServiceKind, config: VtuConfig
) -> tuple[RuleTerms, RuleView | None]:
    """The terms buyers of `tier` get (plan rule, else service rule, else defaults) and the rule used."""
    rule = most_specific(rules, variation_code)
    if rule is None:
        return default_terms(tier, kind, config), None
    return rule.terms, rule


async def preview_rule(
    session: AsyncSession,
    *,
    tier: str,
    service_id: str,
    variation_code: str = "",
    fixed_price_kobo: int | None = None,
    discount_bps: int | None = None,
    config: VtuConfig | None = None,
    provider_slug: str | None = None,
) -> Impact:
    """What this rule would charge and leave as margin; writes nothing. PriceRuleError for invalid input.

    A plan rule prices that plan (active or not); a service rule prices the service's active plans that have
    no plan rule of their own for the tier. `provider_slug` limits plans to one provider's (None: all)."""
    config = config or get_vtu_config()
    variation_code = variation_code or ""
    service = _check(tier, service_id, variation_code, fixed_price_kobo, discount_bps)
    source = PLAN_RULE if variation_code else SERVICE_RULE
    terms = RuleTerms(fixed_price_kobo, discount_bps, source)
    commission = config.provider_commission_bps.get(service.kind, 0)
    rules = (await _active_rules(session, [service_id])).get((tier, service_id), {})
    if service.kind in VARIABLE_KINDS:
        now_terms, _ = _effective(rules, "", tier, service.kind, config)
        return Impact(
            tier,
            service,
            "",
            terms,
            commission,
            example=price_with(terms, EXAMPLE_FACE_KOBO, service.kind, config),
            example_now=price_with(now_terms, EXAMPLE_FACE_KOBO, service.kind, config),
        )
    plans = list((await session.execute(_plans_query(service_id, provider_slug))).scalars())
    if variation_code:
        plans = [p for p in plans if p.variation_code == variation_code]
        if not plans:
            raise PriceRuleError({"variation_code": f"No plan {variation_code!r} for {service.name}."})
    else:
        plans = [p for p in plans if p.active and p.variation_code not in rules]
    lines = tuple(
        PricedLine(
            p.variation_code,
            p.name,
            p.active,
            price_with(terms, p.provider_price_kobo, service.kind, config),
            price_with(
                _effective(rules, p.variation_code, tier, service.kind, config)[0],
                p.provider_price_kobo,
                service.kind,
                config,
            ),
        )
        for p in plans
    )
    return Impact(tier, service, variation_code, terms, commission, lines=lines)


@dataclass(frozen=True, slots=True)
class PlanLine:
    """One plan row of the console, priced per tier as buyers would pay now."""

    id: uuid.UUID
    provider_slug: str
    variation_code: str
    name: str
    provider_price_kobo: int
    active: bool
    source: str
    last_synced_at: datetime.datetime | None
    prices: dict[str, Price]  # tier -> price now
    rules: dict[str, RuleView | None]  # tier -> the rule that applies (None: defaults)
    terms: dict[str, RuleTerms]  # tier -> the terms that apply (the rule's, or the defaults)

    @property
    def plan_rules(self) -> dict[str, RuleView]:
        return {t: r for t, r in self.rules.items() if r is not None and r.variation_code}


@dataclass(frozen=True, slots=True)
class ServicePricing:
    service: Service
    provider_slug: str | None
    plans: list[PlanLine]
    service_rules: dict[str, RuleView | None]  # tier -> whole-service rule
    defaults: dict[str, RuleTerms]  # tier -> what applies with no rule
    commission_bps: int
    last_synced_at: datetime.datetime | None
    orphan_rules: list[RuleView] = field(default_factory=list)  # plan rules for codes not listed here

    @property
    def active_count(self) -> int:
        return sum(1 for p in self.plans if p.active)

    @property
    def loss_count(self) -> dict[str, int]:
        return {
            tier: sum(1 for p in self.plans if p.active and p.prices[tier].margin_kobo < 0) for tier in TIERS
        }


async def service_pricing(
    session: AsyncSession, *, service_id: str, provider_slug: str | None, config: VtuConfig
) -> ServicePricing:
    """Every plan of a service (inactive ones too) with each tier's price now, and the rules in force."""
    service = get_service(service_id)
    if service is None:
        raise PriceRuleError({"service_id": f"Unknown service {service_id!r}."})
    rules = await _active_rules(session, [service_id])
    plans = list((await session.execute(_plans_query(service_id, provider_slug))).scalars())
    lines = []
    for plan in plans:
        prices: dict[str, Price] = {}
        applied: dict[str, RuleView | None] = {}
        used: dict[str, RuleTerms] = {}
        for tier in TIERS:
            terms, rule = _effective(
                rules.get((tier, service_id), {}), plan.variation_code, tier, service.kind, config
            )
            prices[tier] = price_with(terms, plan.provider_price_kobo, service.kind, config)
            applied[tier], used[tier] = rule, terms
        lines.append(
            PlanLine(
                plan.id,
                plan.provider_slug,
                plan.variation_code,
                plan.name,
                plan.provider_price_kobo,
                plan.active,
                plan.source,
                plan.last_synced_at,
                prices,
                applied,
                used,
            )
        )
    codes = {p.variation_code for p in plans}
    orphans = [
        rule
        for tier in TIERS
        for code, rule in sorted(rules.get((tier, service_id), {}).items())
        if code and code not in codes
    ]
    synced = [p.last_synced_at for p in plans if p.last_synced_at is not None]
    return ServicePricing(
        service=service,
        provider_slug=provider_slug,
        plans=lines,
        service_rules={tier: rules.get((tier, service_id), {}).get("") for tier in TIERS},
        defaults={tier: default_terms(tier, service.kind, config) for tier in TIERS},
        commission_bps=config.provider_commission_bps.get(service.kind, 0),
        last_synced_at=max(synced) if synced else None,
        orphan_rules=orphans,
    )


@dataclass(frozen=True, slots=True)
class VariableLine:
    """An airtime / electricity service: per tier, the terms in force and a N1,000 sale priced with them."""

    service: Service
    commission_bps: int
    terms: dict[str, RuleTerms]
    rules: dict[str, RuleView | None]
    example: dict[str, Price]

    def loses(self, tier: str) -> bool:
        return (self.terms[tier].discount_bps or 0) > self.commission_bps or (
            self.terms[tier].fixed_price_kobo is not None and self.example[tier].margin_kobo < 0
        )


async def variable_services(session: AsyncSession, *, config: VtuConfig) -> list[VariableLine]:
    services = [s for s in SERVICES if s.kind in VARIABLE_KINDS]
    rules = await _active_rules(session, [s.service_id for s in services], plan_rules=False)
    out = []
    for service in services:
        terms: dict[str, RuleTerms] = {}
        applied: dict[str, RuleView | None] = {}
        for tier in TIERS:
            terms[tier], applied[tier] = _effective(
                rules.get((tier, service.service_id), {}), "", tier, service.kind, config
            )
        out.append(
            VariableLine(
                service,
                config.provider_commission_bps.get(service.kind, 0),
                terms,
                applied,
                {t: price_with(terms[t], EXAMPLE_FACE_KOBO, service.kind, config) for t in TIERS},
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class PriceChangeLine:
    at: datetime.datetime
    variation_code: str
    name: str
    old_price_kobo: int
    new_price_kobo: int
    source: str

    @property
    def delta_kobo(self) -> int:
        return self.new_price_kobo - self.old_price_kobo


async def recent_price_changes(
    session: AsyncSession, *, service_id: str, provider_slug: str | None, limit: int = 20
) -> list[PriceChangeLine]:
    """The provider price changes of a service's plans (plan_price_changes), newest first."""
    query = (
        select(
            PlanPriceChange.created_at,
            Plan.variation_code,
            Plan.name,
            PlanPriceChange.old_price_kobo,
            PlanPriceChange.new_price_kobo,
            PlanPriceChange.source,
        )
        .join(Plan, Plan.id == PlanPriceChange.plan_id)
        .where(Plan.service_id == service_id)
        .order_by(PlanPriceChange.id.desc())
        .limit(limit)
    )
    if provider_slug is not None:
        query = query.where(Plan.provider_slug == provider_slug)
    return [PriceChangeLine(*row) for row in (await session.execute(query)).all()]


async def current_rule(
    session: AsyncSession, *, tier: str, service_id: str, variation_code: str = ""
) -> RuleView | None:
    """The active rule for exactly (tier, service, plan or '' for the whole service), or None."""
    row = (
        await session.execute(
            select(PriceRule).where(
                PriceRule.tier == tier,
                PriceRule.service_id == service_id,
                PriceRule.variation_code == (variation_code or ""),
                PriceRule.active.is_(True),
            )
        )
    ).scalar_one_or_none()
    return RuleView.of(row) if row is not None else None


# -- writes -------------------------------------------------------------------------------------------------
async def _lock(session: AsyncSession, tier: str, service_id: str, variation_code: str) -> None:
    """Changes to one rule take turns (so `before` in the log is the row this change replaced)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
        {"k": f"price-rule:{tier}:{service_id}:{variation_code}"},
    )


async def _rule_row(
    session: AsyncSession, tier: str, service_id: str, variation_code: str
) -> PriceRule | None:
    return (
        await session.execute(
            select(PriceRule)
            .where(
                PriceRule.tier == tier,
                PriceRule.service_id == service_id,
                PriceRule.variation_code == variation_code,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()


async def set_rule(
    session: AsyncSession,
    *,
    tier: str,
    service_id: str,
    variation_code: str = "",
    fixed_price_kobo: int | None = None,
    discount_bps: int | None = None,
    staff: str,
    allow_loss: bool = False,
    reason: str = "",
    config: VtuConfig | None = None,
    provider_slug: str | None = None,
) -> RuleChange:
    """Set (insert or replace) the active price rule for (tier, service, plan or '' for the whole service).

    Exactly one of `fixed_price_kobo` (> 0) / `discount_bps` (0-10000). A rule that would sell any plan it
    prices below the provider's cost is refused for customers, and for resellers unless `allow_loss=True`
    and a `reason` are given. Raises PriceRuleError (per-field messages) before writing anything."""
    config = config or get_vtu_config()
    variation_code = variation_code or ""
    reason = (reason or "").strip()
    _check(tier, service_id, variation_code, fixed_price_kobo, discount_bps)
    await _lock(session, tier, service_id, variation_code)
    impact = await preview_rule(
        session,
        tier=tier,
        service_id=service_id,
        variation_code=variation_code,
        fixed_price_kobo=fixed_price_kobo,
        discount_bps=discount_bps,
        config=config,
        provider_slug=provider_slug,
    )
    value_field = "fixed_price_kobo" if fixed_price_kobo is not None else "discount_bps"
    loss_allowed = False
    if impact.loss:
        if tier == CUSTOMER:
            raise PriceRuleError(
                {value_field: impact.loss_message() + " Customer prices may never be below cost."}
            )
        if allow_loss is not True:
            raise PriceRuleError(
                {
                    value_field: impact.loss_message()
                    + " To sell to resellers at a loss on purpose, allow it and give a reason."
                }
            )
        if not reason:
            raise PriceRuleError({"reason": "Say why resellers may buy below cost (kept in the log)."})
        if len(reason) > REASON_MAX:
            raise PriceRuleError({"reason": f"Keep the reason under {REASON_MAX} characters."})
        loss_allowed = True
    row = await _rule_row(session, tier, service_id, variation_code)
    before = RuleView.of(row) if row is not None else None
    if row is None:
        row = PriceRule(tier=tier, service_id=service_id, variation_code=variation_code)
        session.add(row)
    row.fixed_price_kobo, row.discount_bps, row.active = fixed_price_kobo, discount_bps, True
    row.updated_at = datetime.datetime.now(datetime.UTC)
    await session.flush()
    after = RuleView.of(row)
    log.info(
        "price_rule_set",
        staff=staff,
        tier=tier,
        service_id=service_id,
        variation_code=variation_code,
        before=before.as_log() if before else None,
        after=after.as_log(),
        loss_allowed=loss_allowed,
        reason=reason if loss_allowed else None,
        plans_below_cost=[line.variation_code for line in impact.losses] if loss_allowed else None,
    )
    return RuleChange(tier, service_id, variation_code, before, after, impact)


async def remove_rule(
    session: AsyncSession,
    *,
    tier: str,
    service_id: str,
    variation_code: str = "",
    staff: str,
    config: VtuConfig | None = None,
    provider_slug: str | None = None,
) -> RuleChange:
    """Deactivate a rule: the plan falls back to the service rule, the service to the defaults.

    Refused (PriceRuleError) when removing a customer plan rule would leave the customer service rule
    selling that plan below cost. `changed` is False when there was no active rule."""
    config = config or get_vtu_config()
    variation_code = variation_code or ""
    service = _check_scope(tier, service_id)
    await _lock(session, tier, service_id, variation_code)
    row = await _rule_row(session, tier, service_id, variation_code)
    if row is None or not row.active:
        return RuleChange(tier, service_id, variation_code, RuleView.of(row) if row else None, None)
    if tier == CUSTOMER and variation_code and service.kind in PLAN_KINDS:
        fallback = (await _active_rules(session, [service_id], plan_rules=False)).get((tier, service_id), {})
        terms, _ = _effective(fallback, "", tier, service.kind, config)
        plans = (await session.execute(_plans_query(service_id, provider_slug))).scalars()
        for plan in plans:
            if plan.variation_code != variation_code:
                continue
            price = price_with(terms, plan.provider_price_kobo, service.kind, config)
            if price.margin_kobo < 0:
                raise PriceRuleError(
                    {
                        "variation_code": (
                            f"Without this rule the service rule ({describe_terms(terms)}) would sell "
                            f"{plan.name} at {format_naira(price.selling_kobo)}, below its cost of "
                            f"{format_naira(price.cost_kobo)}. Change the service rule first."
                        )
                    }
                )
    before = RuleView.of(row)
    row.active = False
    row.updated_at = datetime.datetime.now(datetime.UTC)
    await session.flush()
    after = RuleView.of(row)
    log.info(
        "price_rule_removed",
        staff=staff,
        tier=tier,
        service_id=service_id,
        variation_code=variation_code,
        before=before.as_log(),
        after=after.as_log(),
    )
    return RuleChange(tier, service_id, variation_code, before, after)


async def set_plan_active(session: AsyncSession, plan_id: uuid.UUID, active: bool, staff: str) -> PlanChange:
    """Put a plan on sale or take it off (buy pages, the API and purchases only see active plans).

    Taken off sale here, a plan stays off sale through provider syncs (`staff_hidden`) until staff put it
    back; a plan the provider stopped listing is off sale by the sync whatever staff decide."""
    plan = (
        await session.execute(select(Plan).where(Plan.id == plan_id).with_for_update())
    ).scalar_one_or_none()
    if plan is None:
        raise PriceRuleError({"plan_id": "No such plan."})
    before = plan.active
    if before != active or plan.staff_hidden == active:
        plan.active = active
        plan.staff_hidden = not active
        plan.updated_at = datetime.datetime.now(datetime.UTC)
        await session.flush()
    change = PlanChange(plan.id, plan.service_id, plan.variation_code, plan.name, before, active)
    log.info(
        "plan_active_set",
        staff=staff,
        plan_id=str(plan.id),
        provider=plan.provider_slug,
        service_id=plan.service_id,
        variation_code=plan.variation_code,
        before={"active": before},
        after={"active": active},
        changed=change.changed,
    )
    return change


__all__ = [
    "CUSTOMER",
    "EXAMPLE_FACE_KOBO",
    "PLAN_KINDS",
    "RESELLER",
    "VARIABLE_KINDS",
    "Impact",
    "PlanChange",
    "PlanLine",
    "PriceChangeLine",
    "PriceRuleError",
    "PricedLine",
    "RuleChange",
    "RuleView",
    "ServicePricing",
    "VariableLine",
    "current_rule",
    "describe_terms",
    "percent",
    "preview_rule",
    "recent_price_changes",
    "remove_rule",
    "service_pricing",
    "set_plan_active",
    "set_rule",
    "variable_services",
]
