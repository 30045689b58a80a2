"""The staff PLANS & PRICES console (/staff/plans) against the real app on real PostgreSQL + Redis, selling
through the stub provider: guard, the plan table's prices / margins / rule sources (expected values computed
here from the rules, independently of app.vtu.pricing), rules set and removed through the forms changing what
real purchases are charged, below-cost refusals, invalid input (400, nothing written), taking a plan off sale
(buy pages, priced_plans and purchases), "Sync now" and the airtime / electricity rules."""

from __future__ import annotations

import html as html_lib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, text

from app.core.naira import format_naira
from app.vtu import price_rules
from app.vtu.config import VtuConfig
from app.vtu.errors import InvalidPurchase
from app.vtu.models import SUCCESSFUL, Plan, PriceRule
from app.vtu.orders import PurchaseRequest
from app.vtu.plans import priced_plans, sync_plans
from app.vtu.providers import StubProvider
from app.vtu.providers.catalog import ServiceKind
from app.vtu.providers.stub import DATA_PLANS, DELIVERED_PHONE
from app.vtu.runtime import VtuRuntime
from tests.factories import PASSWORD, create_user
from tests.helpers import browser_pool, csrf_token, log_in, running, staff_browser
from tests.integration.purchase_fixtures import assert_reconciled, money, new_buyer

# The provider pays 3% back on data and airtime (cost = face - 3%); resellers get the default 1% / 2% off.
COMMISSION_BPS = 300
CONFIG = VtuConfig(
    provider_commission_bps={ServiceKind.DATA: COMMISSION_BPS, ServiceKind.AIRTIME: COMMISSION_BPS},
)
SERVICE = "mtn-data"
FACE = {code: naira * 100 for code, _name, naira in DATA_PLANS[SERVICE]}
NAMES = {code: name for code, name, _naira in DATA_PLANS[SERVICE]}
ONE_GB = "mtn-1gb-1day"  # N350
SEVEN_GB = "mtn-7gb-30days"  # N3,500
START = 1_000_000  # N10,000 in each buyer's wallet
PAGE = f"/staff/plans?service_id={SERVICE}"


# -- the expected arithmetic, written out here (not imported from app.vtu.pricing) ---------------------------
def off(face: int, bps: int) -> int:
    """Face value less a basis-point discount rounded down to the kobo (in the platform's favour)."""
    return face - (face * bps) // 10_000


def cost(face: int) -> int:
    return off(face, COMMISSION_BPS)


# -- the app under test: the stub provider, with CONFIG as its purchase rules --------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plans_app(settings: Any) -> AsyncIterator[Any]:
    from app.asgi import create_app
    from app.vtu.runtime import close_vtu

    application = create_app(settings)
    async with running(application):
        runtime = VtuRuntime(
            application.state.settings, application.state.alchemy.create_session_maker(), config=CONFIG
        )
        application.state["vtu"] = runtime  # get_vtu(app) returns it: pages and purchases share CONFIG
        yield application
        await close_vtu(application)


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(plans_app: Any, db: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """New browsers (own cookie jars) on the app under test, on a clean database."""
    async with browser_pool(plans_app) as new:
        yield new


@pytest_asyncio.fixture(loop_scope="session")
async def staff(db: Any, browsers: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    return await staff_browser(db, browsers, role="finance")  # price rules are finance's


@pytest_asyncio.fixture(loop_scope="session")
async def runtime(plans_app: Any) -> VtuRuntime:
    return plans_app.state["vtu"]  # type: ignore[no-any-return]


async def seed_plans(sessionmaker: Any, *service_ids: str) -> None:
    """The plans table as a plan sync from the stub provider leaves it."""
    for service_id in service_ids:
        async with sessionmaker() as session:
            await sync_plans(session, StubProvider(), service_id)


async def post(client: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    token = await csrf_token(client, PAGE)
    return await client.post(path, data={**data, "_csrf_token": token}, follow_redirects=False)


async def set_rule(client: httpx.AsyncClient, **data: str) -> httpx.Response:
    fields = {"service_id": SERVICE, "variation_code": "", "price_naira": "", "discount_percent": ""}
    return await post(client, "/staff/plans/rules", **{**fields, **data})


async def saved(client: httpx.AsyncClient, response: httpx.Response) -> str:
    """A successful action: 303 back to the console; returns the page it leads to (with its flash)."""
    assert response.status_code == 303, response.text[-3000:]
    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    return page.text


def flashes(html: str) -> list[str]:
    return [
        html_lib.unescape(re.sub(r"\s+", " ", m).strip())
        for m in re.findall(r'<p class="alert alert-\w+" role="status">(.*?)</p>', html, re.S)
    ]


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', html)
    assert match, f"no error shown on {field}"
    return html_lib.unescape(match.group(1))


def input_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    assert match, name
    return match.group(1)


def cells(html: str, row_id: str) -> dict[str, dict[str, str]]:
    """{tier: {price, margin, source, loss}} of one row of the plan (or airtime / electricity) table."""
    row = re.search(rf'<tr [^>]*id="{re.escape(row_id)}"[^>]*>(.*?)</tr>', html, re.S)
    assert row, f"no row {row_id}"
    out = {}
    for cls, tier, body in re.findall(
        r'<td class="tier-price([^"]*)"[^>]*data-tier="(\w+)">(.*?)</td>', row.group(1), re.S
    ):
        price = re.search(r'class="price">([^<]+)<', body)
        margin = re.search(r'class="margin-value[^"]*">([^<]+)<', body)
        source = re.search(r'class="[^"]*\brule-source">([^<]+)<', body)
        assert price and margin and source, body
        out[tier] = {
            "price": price.group(1),
            "margin": margin.group(1),
            "source": source.group(1),
            "loss": "loss" if "loss" in cls else "",
        }
    return out


def cell(price: int, margin: int, source: str) -> dict[str, str]:
    """What a tier cell should show."""
    loss = "loss" if margin < 0 else ""
    return {"price": format_naira(price), "margin": format_naira(margin), "source": source, "loss": loss}


def row_html(html: str, row_id: str) -> str:
    row = re.search(rf'<tr [^>]*id="{re.escape(row_id)}"[^>]*>(.*?)</tr>', html, re.S)
    assert row, row_id
    return row.group(0)


async def rule_rows(sessionmaker: Any) -> list[tuple[str, str, str, int | None, int | None, bool]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(
                PriceRule.tier,
                PriceRule.service_id,
                PriceRule.variation_code,
                PriceRule.fixed_price_kobo,
                PriceRule.discount_bps,
                PriceRule.active,
            ).order_by(PriceRule.tier, PriceRule.service_id, PriceRule.variation_code)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def plan_states(sessionmaker: Any) -> dict[str, bool]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Plan.variation_code, Plan.active).where(Plan.service_id == SERVICE)
        )
        return dict(rows.all())  # type: ignore[arg-type]


async def tier_prices(sessionmaker: Any, tier: str) -> dict[str, int]:
    """What buyers of `tier` are offered (GET /api/v1/plans and the buy pages use this)."""
    async with sessionmaker() as session:
        plans = await priced_plans(session, slug="stub", service_id=SERVICE, tier=tier, config=CONFIG)
        return {p.variation_code: p.price_kobo for p in plans}


async def buy_data(runtime: VtuRuntime, buyer: Any, code: str) -> Any:
    request = PurchaseRequest(service_id=SERVICE, phone=DELIVERED_PHONE, variation_code=code)
    return await runtime.purchases.buy(buyer, request)


# -- guard ---------------------------------------------------------------------------------------------------
async def test_only_staff_see_or_change_plans_and_prices(db, browsers, sessionmaker) -> None:
    await seed_plans(sessionmaker, SERVICE)
    anon = browsers()
    for path in ("/staff/plans", PAGE, "/staff/plans/preview"):
        response = await anon.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2Fstaff%2Fplans")
    customer = await create_user(db)
    await db.commit()
    browser = browsers()
    await log_in(browser, customer.email, PASSWORD)
    assert (await browser.get(PAGE)).status_code == 403
    token = await csrf_token(browser, "/buy/data")
    plan_id = (await db.execute(select(Plan.id).where(Plan.variation_code == ONE_GB))).scalar_one()
    for path, data in (
        ("/staff/plans/rules", {"service_id": SERVICE, "tier": "customer", "price_naira": "9000"}),
        ("/staff/plans/rules/remove", {"service_id": SERVICE, "tier": "customer"}),
        (f"/staff/plans/{plan_id}/deactivate", {}),
        ("/staff/plans/sync", {"service_id": SERVICE}),
    ):
        refused = await browser.post(path, data={**data, "_csrf_token": token}, follow_redirects=False)
        assert refused.status_code == 403, path
    assert await rule_rows(sessionmaker) == []
    assert all((await plan_states(sessionmaker)).values())
    # The overview links the console.
    staff_user = await create_user(db, staff_role="finance")
    await db.commit()
    staff = browsers()
    await log_in(staff, staff_user.email, PASSWORD)
    assert 'href="/staff/plans"' in (await staff.get("/staff")).text


# -- the table -----------------------------------------------------------------------------------------------
async def test_table_shows_what_buyers_pay_and_the_margin_for_defaults_service_and_plan_rules(
    staff, sessionmaker
) -> None:
    await seed_plans(sessionmaker, SERVICE)
    page = await staff.get(PAGE)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert 'id="last-synced"' in html and "never" not in re.search(
        r'id="last-synced">(.*?)</dd>', html, re.S
    ).group(1)
    # Defaults: customers pay face value, resellers 1% off (VtuConfig default for data).
    for code, face in FACE.items():
        row = cells(html, f"plan-{code}")
        assert row["customer"] == cell(face, face - cost(face), "default"), code
        assert row["reseller"]["price"] == format_naira(off(face, 100)), code
        assert row["reseller"]["margin"] == format_naira(off(face, 100) - cost(face)), code
        assert row["reseller"]["source"] == "default"
        assert format_naira(face) in row_html(html, f"plan-{code}")  # the provider price column
        assert ">active<" in row_html(html, f"plan-{code}") and ">synced<" in row_html(html, f"plan-{code}")

    # A customer service rule (2% off), a customer plan rule (fixed N400 on 1GB), a reseller plan rule (2.5%).
    html = await saved(staff, await set_rule(staff, tier="customer", discount_percent="2"))
    assert flashes(html) == [
        "Customer price for every MTN Data plan without its own rule is now 2% off "
        f"({len(FACE)} active plans; "
        f"margins {format_naira(min(off(f, 200) - cost(f) for f in FACE.values()))} to "
        f"{format_naira(max(off(f, 200) - cost(f) for f in FACE.values()))})."
    ]
    html = await saved(
        staff, await set_rule(staff, tier="customer", variation_code=ONE_GB, price_naira="400")
    )
    assert flashes(html) == [
        f"Customer price for {NAMES[ONE_GB]} is now fixed ₦400.00 "
        f"(margin {format_naira(40_000 - cost(35_000))})."
    ]
    html = await saved(
        staff, await set_rule(staff, tier="reseller", variation_code=SEVEN_GB, discount_percent="2.5")
    )
    page = (await staff.get(PAGE)).text
    for code, face in FACE.items():
        row = cells(page, f"plan-{code}")
        if code == ONE_GB:
            expected_customer, source = 40_000, "plan rule"
        else:
            expected_customer, source = off(face, 200), "service rule"
        assert row["customer"]["price"] == format_naira(expected_customer), code
        assert row["customer"]["margin"] == format_naira(expected_customer - cost(face)), code
        assert row["customer"]["source"] == source, code
        expected_reseller = off(face, 250) if code == SEVEN_GB else off(face, 100)
        assert row["reseller"]["price"] == format_naira(expected_reseller), code
        assert row["reseller"]["margin"] == format_naira(expected_reseller - cost(face)), code
        assert row["reseller"]["source"] == ("plan rule" if code == SEVEN_GB else "default"), code
    # The service-rule block and the rules' own descriptions.
    assert re.search(r'id="service-rule-customer">.*?2% off.*?service rule', page, re.S)
    assert "fixed ₦400.00" in row_html(page, f"plan-{ONE_GB}")
    assert "2.5% off" in row_html(page, f"plan-{SEVEN_GB}")
    # What buyers are offered is exactly what the table shows.
    for tier in ("customer", "reseller"):
        offered = await tier_prices(sessionmaker, tier)
        assert {c: format_naira(p) for c, p in offered.items()} == {
            c: cells(page, f"plan-{c}")[tier]["price"] for c in FACE
        }
    assert await rule_rows(sessionmaker) == [
        ("customer", SERVICE, "", None, 200, True),
        ("customer", SERVICE, ONE_GB, 40_000, None, True),
        ("reseller", SERVICE, SEVEN_GB, None, 250, True),
    ]
    # "Edit" opens the form on the rule in force.
    edit = (await staff.get(f"{PAGE}&tier=customer&plan={ONE_GB}")).text
    assert input_value(edit, "price_naira") == "400"
    assert re.search(rf'<option value="{ONE_GB}" selected>', edit)


async def test_a_rule_set_here_is_what_a_real_purchase_is_charged(staff, sessionmaker, runtime) -> None:
    await seed_plans(sessionmaker, SERVICE)
    customer = await new_buyer(sessionmaker, fund=START)
    reseller = await new_buyer(sessionmaker, fund=START, tier="reseller")
    await saved(staff, await set_rule(staff, tier="customer", variation_code=ONE_GB, price_naira="420"))
    await saved(staff, await set_rule(staff, tier="reseller", discount_percent="2.75"))
    page = (await staff.get(PAGE)).text

    bought = await buy_data(runtime, customer, ONE_GB)
    assert bought.status == SUCCESSFUL and bought.amount_kobo == 42_000
    assert (await money(sessionmaker, customer.id, "stub")).wallet == START - 42_000
    assert cells(page, f"plan-{ONE_GB}")["customer"]["price"] == format_naira(42_000)
    assert bought.margin_kobo == 42_000 - cost(35_000)

    expected = off(FACE[SEVEN_GB], 275)
    bought = await buy_data(runtime, reseller, SEVEN_GB)
    assert bought.status == SUCCESSFUL and bought.amount_kobo == expected
    assert (await money(sessionmaker, reseller.id, "stub")).wallet == START - expected
    assert cells(page, f"plan-{SEVEN_GB}")["reseller"]["price"] == format_naira(expected)
    await assert_reconciled(sessionmaker)


# -- refusals ------------------------------------------------------------------------------------------------
async def test_below_cost_is_refused_for_customers_and_needs_a_reason_for_resellers(
    staff, sessionmaker
) -> None:
    await seed_plans(sessionmaker, SERVICE)
    # N340 for a plan that costs us N339.50 is fine; N339 is not.
    refused = await set_rule(staff, tier="customer", variation_code=ONE_GB, price_naira="339")
    assert refused.status_code == 400
    assert "pay less than the provider's cost" in field_error(refused.text, "price_naira")
    assert "Customer prices may never be below cost" in field_error(refused.text, "price_naira")
    assert input_value(refused.text, "price_naira") == "339"  # the values are kept
    assert re.search(rf'<option value="{ONE_GB}" selected>', refused.text)
    # Even when "allow a loss" is ticked: never for customers.
    refused = await set_rule(staff, tier="customer", discount_percent="3.5", allow_loss="yes", reason="promo")
    assert refused.status_code == 400 and "discount_percent" in refused.text
    assert "Customer prices may never be below cost" in field_error(refused.text, "discount_percent")
    assert await rule_rows(sessionmaker) == []

    # Resellers: refused without an explicit allowance, then without a reason, accepted with both.
    refused = await set_rule(staff, tier="reseller", discount_percent="5")
    assert refused.status_code == 400
    assert "give a reason" in field_error(refused.text, "discount_percent")
    refused = await set_rule(staff, tier="reseller", discount_percent="5", allow_loss="yes")
    assert refused.status_code == 400 and field_error(refused.text, "reason")
    assert await rule_rows(sessionmaker) == []
    html = await saved(
        staff,
        await set_rule(staff, tier="reseller", discount_percent="5", allow_loss="yes", reason="Q4 promo"),
    )
    assert await rule_rows(sessionmaker) == [("reseller", SERVICE, "", None, 500, True)]
    row = cells(html, f"plan-{SEVEN_GB}")["reseller"]
    assert row["loss"] == "loss" and row["margin"] == format_naira(off(3500_00, 500) - cost(3500_00))
    assert row["margin"].startswith("-₦")
    assert f'<span class="small margin neg">margin <span class="margin-value">{row["margin"]}' in html
    assert re.search(
        r'id="loss-count">Customer: <span class="">0</span> · Reseller: <span class="neg">8</span>', html
    )


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"price_naira": "400", "discount_percent": "2"}, "price_naira", "not both"),
        ({"price_naira": "-100"}, "price_naira", "more than ₦0"),
        ({"price_naira": "0"}, "price_naira", "more than ₦0"),
        ({"price_naira": "12.50"}, "price_naira", "whole naira"),
        ({"price_naira": "abc"}, "price_naira", "whole naira"),
        ({"discount_percent": "100.01"}, "discount_percent", "0% to 100%"),
        ({"discount_percent": "-1"}, "discount_percent", "0% to 100%"),
        ({"discount_percent": "1.234"}, "discount_percent", "two decimals"),
        ({}, "price_naira", "Give a fixed price or a discount"),
        ({"variation_code": "mtn-nope", "price_naira": "500"}, "variation_code", "No plan 'mtn-nope'"),
        ({"tier": "vip", "price_naira": "9000"}, "tier", "customer or reseller"),
    ],
)
async def test_invalid_input_is_a_400_with_field_errors_and_nothing_written(
    staff, sessionmaker, data, field, message
) -> None:
    await seed_plans(sessionmaker, SERVICE)
    response = await set_rule(staff, **{"tier": "customer", **data})
    assert response.status_code == 400, response.text[-2000:]
    assert message in field_error(response.text, field)
    for name, value in data.items():
        if name in ("price_naira", "discount_percent"):
            assert input_value(response.text, name) == value
    assert await rule_rows(sessionmaker) == []


async def test_the_rules_service_validates_before_writing(db, sessionmaker) -> None:
    await seed_plans(sessionmaker, SERVICE)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"fixed_price_kobo": 40_000, "discount_bps": 100}, "fixed_price_kobo"),
        ({"fixed_price_kobo": -1}, "fixed_price_kobo"),
        ({"fixed_price_kobo": True}, "fixed_price_kobo"),
        ({"discount_bps": 10_001}, "discount_bps"),
        ({"discount_bps": -5}, "discount_bps"),
        ({"variation_code": "nope", "fixed_price_kobo": 50_000}, "variation_code"),
        ({"service_id": "nope-data", "discount_bps": 0}, "service_id"),
        ({"service_id": "mtn", "fixed_price_kobo": 50_000}, "fixed_price_kobo"),  # airtime: discounts only
        ({"service_id": "mtn", "variation_code": "x", "discount_bps": 0}, "variation_code"),
        ({"service_id": "dstv", "fixed_price_kobo": 5_000_000}, "fixed_price_kobo"),  # renewals: per bouquet
        ({"tier": "gold", "discount_bps": 0}, "tier"),
        ({"fixed_price_kobo": 30_000, "variation_code": ONE_GB}, "fixed_price_kobo"),  # below cost
    ]
    for kwargs, field in cases:
        args = {
            "tier": "customer",
            "service_id": SERVICE,
            "staff": "ops@example.ng",
            "config": CONFIG,
            **kwargs,
        }
        with pytest.raises(price_rules.PriceRuleError) as caught:
            await price_rules.set_rule(db, **args)
        assert field in caught.value.fields, (kwargs, caught.value.fields)
        await db.rollback()
    assert await rule_rows(sessionmaker) == []
    # allow_loss must be exactly True (not a truthy string) and comes with a reason.
    with pytest.raises(price_rules.PriceRuleError):
        await price_rules.set_rule(
            db, tier="reseller", service_id=SERVICE, discount_bps=900, staff="x", config=CONFIG,
            allow_loss="yes", reason="r",
        )  # fmt: skip
    await db.rollback()
    change = await price_rules.set_rule(
        db, tier="reseller", service_id=SERVICE, discount_bps=900, staff="x", config=CONFIG,
        allow_loss=True, reason="launch",
    )  # fmt: skip
    await db.commit()
    assert change.before is None and change.after is not None and change.impact is not None
    assert len(change.impact.losses) == len(FACE)
    # An upsert: setting it again replaces the same row and reports what it replaced.
    change = await price_rules.set_rule(
        db, tier="reseller", service_id=SERVICE, discount_bps=150, staff="x", config=CONFIG
    )
    await db.commit()
    assert change.before is not None and change.before.discount_bps == 900
    assert await rule_rows(sessionmaker) == [("reseller", SERVICE, "", None, 150, True)]


async def test_removing_a_rule_restores_the_default_price(staff, sessionmaker, runtime) -> None:
    await seed_plans(sessionmaker, SERVICE)
    await saved(staff, await set_rule(staff, tier="customer", variation_code=ONE_GB, price_naira="500"))
    await saved(staff, await set_rule(staff, tier="reseller", discount_percent="3"))
    assert (await tier_prices(sessionmaker, "customer"))[ONE_GB] == 50_000

    html = await saved(
        staff,
        await post(
            staff, "/staff/plans/rules/remove", service_id=SERVICE, tier="customer", variation_code=ONE_GB
        ),
    )
    assert flashes(html) == [
        f"Customer plan rule for {ONE_GB} removed: prices are back to the service rule or the defaults."
    ]
    assert cells(html, f"plan-{ONE_GB}")["customer"] == cell(35_000, 35_000 - cost(35_000), "default")
    html = await saved(
        staff,
        await post(
            staff, "/staff/plans/rules/remove", service_id=SERVICE, tier="reseller", variation_code=""
        ),
    )
    assert cells(html, f"plan-{ONE_GB}")["reseller"]["price"] == format_naira(off(35_000, 100))
    assert await rule_rows(sessionmaker) == [
        ("customer", SERVICE, ONE_GB, 50_000, None, False),
        ("reseller", SERVICE, "", None, 300, False),
    ]
    # Removing again changes nothing.
    html = await saved(
        staff,
        await post(
            staff, "/staff/plans/rules/remove", service_id=SERVICE, tier="reseller", variation_code=""
        ),
    )
    assert flashes(html) == ["There was no active reseller service rule: nothing changed."]
    buyer = await new_buyer(sessionmaker, fund=START)
    bought = await buy_data(runtime, buyer, ONE_GB)
    assert bought.amount_kobo == 35_000
    assert (await money(sessionmaker, buyer.id, "stub")).wallet == START - 35_000
    # Setting a rule again reactivates the same row.
    await saved(staff, await set_rule(staff, tier="reseller", discount_percent="1.5"))
    assert ("reseller", SERVICE, "", None, 150, True) in await rule_rows(sessionmaker)
    await assert_reconciled(sessionmaker)


async def test_a_customer_plan_rule_cannot_be_removed_when_the_service_rule_would_then_lose_money(
    db, sessionmaker
) -> None:
    await seed_plans(sessionmaker, SERVICE)
    # A service rule at 3% off (= the commission: margin 0 or more everywhere) is fine ...
    await price_rules.set_rule(
        db, tier="customer", service_id=SERVICE, discount_bps=300, staff="x", config=CONFIG
    )
    await price_rules.set_rule(
        db,
        tier="customer",
        service_id=SERVICE,
        variation_code=ONE_GB,
        fixed_price_kobo=36_000,
        staff="x",
        config=CONFIG,
    )
    await db.commit()
    # ... and a commission cut makes it a loss; the plan rule then keeps 1GB above cost and stays.
    cut = VtuConfig(provider_commission_bps={ServiceKind.DATA: 200})
    with pytest.raises(price_rules.PriceRuleError) as caught:
        await price_rules.remove_rule(
            db, tier="customer", service_id=SERVICE, variation_code=ONE_GB, staff="x", config=cut
        )
    assert "below its cost" in caught.value.fields["variation_code"]
    await db.rollback()
    assert ("customer", SERVICE, ONE_GB, 36_000, None, True) in await rule_rows(sessionmaker)


# -- plans off sale ------------------------------------------------------------------------------------------
async def test_a_plan_taken_off_sale_disappears_for_buyers_and_cannot_be_bought(
    db, staff, browsers, sessionmaker, runtime
) -> None:
    await seed_plans(sessionmaker, SERVICE)
    customer_user = await create_user(db)
    await db.commit()
    shopper = browsers()
    await log_in(shopper, customer_user.email, PASSWORD)
    assert ONE_GB in (await shopper.get(f"/buy/data/plans?service_id={SERVICE}")).text
    plan_id = (await db.execute(select(Plan.id).where(Plan.variation_code == ONE_GB))).scalar_one()
    await db.commit()

    html = await saved(staff, await post(staff, f"/staff/plans/{plan_id}/deactivate"))
    assert flashes(html)[0].startswith(f"{NAMES[ONE_GB]} is off sale")
    assert ">inactive<" in row_html(html, f"plan-{ONE_GB}") and "Put on sale" in row_html(
        html, f"plan-{ONE_GB}"
    )
    assert (await plan_states(sessionmaker))[ONE_GB] is False
    assert ONE_GB not in (await shopper.get(f"/buy/data/plans?service_id={SERVICE}")).text
    for tier in ("customer", "reseller"):
        assert ONE_GB not in await tier_prices(sessionmaker, tier)
    buyer = await new_buyer(sessionmaker, fund=START)
    with pytest.raises(InvalidPurchase) as refused:
        await buy_data(runtime, buyer, ONE_GB)
    assert "variation_code" in refused.value.fields
    assert (await money(sessionmaker, buyer.id, "stub")).wallet == START
    # Again: nothing to change.
    html = await saved(staff, await post(staff, f"/staff/plans/{plan_id}/deactivate"))
    assert flashes(html) == [f"{NAMES[ONE_GB]} was already off sale: nothing changed."]

    html = await saved(staff, await post(staff, f"/staff/plans/{plan_id}/reactivate"))
    assert flashes(html) == [f"{NAMES[ONE_GB]} is on sale again."]
    assert ONE_GB in (await shopper.get(f"/buy/data/plans?service_id={SERVICE}")).text
    assert (await buy_data(runtime, buyer, ONE_GB)).amount_kobo == 35_000
    # An unknown plan id.
    html = await saved(staff, await post(staff, f"/staff/plans/{uuid.uuid4()}/deactivate"))
    assert flashes(html) == ["No such plan: nothing changed."]
    await assert_reconciled(sessionmaker)


async def test_a_plan_staff_took_off_sale_stays_off_sale_through_syncs(staff, sessionmaker) -> None:
    from app.vtu.plans import sync_plans
    from app.vtu.providers import StubProvider

    await seed_plans(sessionmaker, SERVICE)
    async with sessionmaker() as session:
        plan_id = (await session.execute(select(Plan.id).where(Plan.variation_code == ONE_GB))).scalar_one()
    await saved(staff, await post(staff, f"/staff/plans/{plan_id}/deactivate"))
    async with sessionmaker() as session:  # the provider still lists it
        report = await sync_plans(session, StubProvider(), SERVICE)
    assert ONE_GB not in report.reactivated
    assert (await plan_states(sessionmaker))[ONE_GB] is False
    await saved(staff, await post(staff, f"/staff/plans/{plan_id}/reactivate"))
    async with sessionmaker() as session:
        await sync_plans(session, StubProvider(), SERVICE)
    assert (await plan_states(sessionmaker))[ONE_GB] is True


# -- sync now ------------------------------------------------------------------------------------------------
async def test_sync_now_fetches_plans_and_reports_what_changed(staff, sessionmaker) -> None:
    page = (await staff.get(PAGE)).text
    assert 'id="no-plans"' in page and re.search(r'id="last-synced"><span class="neg">never', page)
    html = await saved(staff, await post(staff, "/staff/plans/sync", service_id=SERVICE))
    n = len(FACE)
    assert flashes(html)[0].startswith(
        f"mtn-data from stub: {n} listed, {n} new, 0 price changes, 0 renamed, 0 reactivated, 0 deactivated."
    )
    assert len(re.findall(r'<tr class="plan-row', html)) == n
    assert "never" not in re.search(r'id="last-synced">(.*?)</dd>', html, re.S).group(1)

    # The provider's price moved (as seen by our last sync) and a plan was taken off sale by staff.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE plans SET provider_price_kobo = 30000 WHERE variation_code = :c"), {"c": ONE_GB}
        )
        await session.execute(
            text("UPDATE plans SET active = false WHERE variation_code = :c"), {"c": SEVEN_GB}
        )
    html = await saved(staff, await post(staff, "/staff/plans/sync", service_id=SERVICE))
    assert flashes(html) == [
        f"mtn-data from stub: {n} listed, 0 new, 1 price changes, 0 renamed, 1 reactivated, 0 deactivated. "
        f"{ONE_GB}: ₦300.00 → ₦350.00."
    ]
    changes = re.search(r'id="price-changes">(.*?)</section>', html, re.S).group(1)
    assert NAMES[ONE_GB] in changes and "₦300.00 → ₦350.00" in changes and "+₦50.00" in changes
    # Airtime has no plans to sync.
    html = await saved(staff, await post(staff, "/staff/plans/sync", service_id="mtn"))
    assert flashes(html) == ["mtn has no plans to sync."]


# -- airtime and electricity ---------------------------------------------------------------------------------
async def test_airtime_and_electricity_rules_are_discounts_for_the_whole_service(
    staff, sessionmaker, runtime
) -> None:
    page = (await staff.get(PAGE)).text
    mtn = cells(page, "variable-mtn")
    face = price_rules.EXAMPLE_FACE_KOBO
    assert mtn["customer"] == cell(face, face - cost(face), "default")
    assert mtn["reseller"]["price"] == format_naira(off(face, 200))
    assert mtn["reseller"]["margin"] == format_naira(off(face, 200) - cost(face))
    # Electricity: no commission configured, resellers get no default discount: margin 0.
    ikeja = cells(page, "variable-ikeja-electric")
    assert ikeja["reseller"] == {
        "price": format_naira(face),
        "margin": "₦0.00",
        "source": "default",
        "loss": "",
    }

    airtime_page = (await staff.get("/staff/plans?service_id=mtn")).text
    assert 'id="plans-table"' not in airtime_page and 'name="price_naira"' not in airtime_page
    refused = await post(staff, "/staff/plans/rules", service_id="mtn", tier="customer", price_naira="900")
    assert refused.status_code == 400 and "use a discount" in field_error(refused.text, "price_naira")
    refused = await post(
        staff, "/staff/plans/rules", service_id="mtn", tier="customer", discount_percent="3.01"
    )
    assert refused.status_code == 400
    assert "more than the provider's 3% commission" in field_error(refused.text, "discount_percent")
    assert await rule_rows(sessionmaker) == []

    html = await saved(
        staff,
        await post(staff, "/staff/plans/rules", service_id="mtn", tier="reseller", discount_percent="2.5"),
    )
    assert flashes(html) == [
        f"Reseller price for MTN Airtime is now 2.5% off (on ₦1,000.00: pays {format_naira(off(face, 250))}, "
        f"margin {format_naira(off(face, 250) - cost(face))})."
    ]
    row = cells(html, "variable-mtn")["reseller"]
    assert (row["price"], row["source"]) == (format_naira(off(face, 250)), "service rule")
    reseller = await new_buyer(sessionmaker, fund=START, tier="reseller")
    bought = await runtime.purchases.buy(
        reseller, PurchaseRequest(service_id="mtn", phone=DELIVERED_PHONE, amount_kobo=200_000)
    )
    assert bought.status == SUCCESSFUL and bought.amount_kobo == off(200_000, 250)
    assert (await money(sessionmaker, reseller.id, "stub")).wallet == START - off(200_000, 250)
    await assert_reconciled(sessionmaker)


# -- preview and CSRF ----------------------------------------------------------------------------------------
async def test_preview_shows_the_price_and_margin_and_writes_nothing(staff, sessionmaker) -> None:
    await seed_plans(sessionmaker, SERVICE)
    fragment = await staff.get(
        "/staff/plans/preview",
        params={"service_id": SERVICE, "tier": "customer", "variation_code": ONE_GB, "price_naira": "400"},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert re.search(r'id="preview-price">₦400.00<', fragment.text)
    assert re.search(rf'id="preview-margin">{re.escape(format_naira(40_000 - cost(35_000)))}<', fragment.text)
    loss = await staff.get(
        "/staff/plans/preview",
        params={"service_id": SERVICE, "tier": "customer", "variation_code": "", "discount_percent": "4"},
    )
    assert "preview-loss" in loss.text and "will be refused" in loss.text
    assert f"{len(FACE)} active plans" in loss.text
    bad = await staff.get(
        "/staff/plans/preview", params={"service_id": SERVICE, "tier": "customer", "discount_percent": "x"}
    )
    assert 'id="preview-problem"' in bad.text
    assert await rule_rows(sessionmaker) == []


async def test_forms_need_the_csrf_token(staff, sessionmaker) -> None:
    await seed_plans(sessionmaker, SERVICE)
    await staff.get(PAGE)
    refused = await staff.post(
        "/staff/plans/rules",
        data={"service_id": SERVICE, "tier": "customer", "price_naira": "9000"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    assert await rule_rows(sessionmaker) == []
    async with sessionmaker() as session:
        assert (await session.execute(select(func.count()).select_from(PriceRule))).scalar_one() == 0
