"""Selling prices per user tier, and the margin they leave over the provider's cost.

Rule lookup: an active price rule for (tier, service, plan) beats one for (tier, service, whole service);
with neither, the defaults apply: customers pay face value, resellers get the configured discount for the
service kind (VTU_RESELLER_DISCOUNT_BPS). Discounts round in the platform's favour (down to the kobo).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from app.core.db import connection_of
from app.vtu.config import VtuConfig
from app.vtu.providers.catalog import ServiceKind
from app.vtu.views import Executor

T = TypeVar("T")

CUSTOMER = "customer"
RESELLER = "reseller"


@dataclass(frozen=True, slots=True)
class RuleTerms:
    fixed_price_kobo: int | None = None
    discount_bps: int | None = None
    source: str = "default"  # "default", "service rule", "plan rule"


@dataclass(frozen=True, slots=True)
class Price:
    face_kobo: int  # what the provider delivers (airtime value, plan price, electricity amount)
    selling_kobo: int  # what the wallet is charged
    cost_kobo: int  # what the provider takes from our float
    source: str

    @property
    def margin_kobo(self) -> int:
        return self.selling_kobo - self.cost_kobo


def discounted(face_kobo: int, bps: int) -> int:
    """Face value minus a basis-point discount; the discount is rounded down to the kobo."""
    return face_kobo - face_kobo * bps // 10_000


def provider_cost(face_kobo: int, kind: ServiceKind, config: VtuConfig) -> int:
    """Expected provider cost: face value minus the provider's commission (0 unless configured)."""
    return discounted(face_kobo, config.provider_commission_bps.get(kind, 0))


def default_terms(tier: str, kind: ServiceKind, config: VtuConfig) -> RuleTerms:
    if tier == RESELLER:
        return RuleTerms(discount_bps=config.reseller_discount_bps.get(kind, 0))
    return RuleTerms(discount_bps=0)


def price_with(terms: RuleTerms, face_kobo: int, kind: ServiceKind, config: VtuConfig) -> Price:
    if terms.fixed_price_kobo is not None:
        selling = terms.fixed_price_kobo
    else:
        selling = discounted(face_kobo, terms.discount_bps or 0)
    # A rule can never make a sale free: at least 1 kobo is charged.
    return Price(face_kobo, max(selling, 1), provider_cost(face_kobo, kind, config), terms.source)


# Every purchase runs it: sent as driver SQL (prepared once per connection, no SQL compilation per call).
# A whole-service rule has variation_code ''.
_RULES = (
    "SELECT variation_code, fixed_price_kobo, discount_bps FROM price_rules"
    " WHERE tier = $1 AND service_id = $2 AND (variation_code = '' OR variation_code = $3) AND active"
)


def most_specific(rules_by_code: Mapping[str, T], variation_code: str | None) -> T | None:
    """Which active rule prices a product: the plan's own rule, else the whole service's (code ''), else
    none (the tier's defaults). The one statement of that precedence, for single lookups and the console."""
    return (rules_by_code.get(variation_code) if variation_code else None) or rules_by_code.get("")


async def rule_terms(
    session: Executor, tier: str, service_id: str, variation_code: str | None
) -> RuleTerms | None:
    """The most specific active rule for this tier and product, or None."""
    conn = await connection_of(session)
    rows = (await conn.exec_driver_sql(_RULES, (tier, service_id, variation_code or ""))).all()
    best = most_specific({r.variation_code: r for r in rows}, variation_code)
    if best is None:
        return None
    source = "plan rule" if best.variation_code else "service rule"
    return RuleTerms(best.fixed_price_kobo, best.discount_bps, source)


async def price_for(
    session: Executor,
    *,
    tier: str,
    service_id: str,
    kind: ServiceKind,
    face_kobo: int,
    variation_code: str | None,
    config: VtuConfig,
    fixed_price_allowed: bool = True,
) -> Price:
    """What `tier` pays for a product of face value `face_kobo`. `fixed_price_allowed=False` when the face is
    not the plan's own price (a cable renewal): a fixed-price rule then gives way to the defaults."""
    terms = await rule_terms(session, tier, service_id, variation_code)
    if terms is not None and terms.fixed_price_kobo is not None and not fixed_price_allowed:
        terms = None
    return price_with(terms or default_terms(tier, kind, config), face_kobo, kind, config)


__all__ = [
    "CUSTOMER",
    "RESELLER",
    "Price",
    "RuleTerms",
    "default_terms",
    "discounted",
    "most_specific",
    "price_for",
    "price_with",
    "provider_cost",
    "rule_terms",
]
