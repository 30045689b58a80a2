"""The staff page /staff/providers over HTTP (real PostgreSQL + Redis): who may see and change routing, the
validation of an order (a 400 with a clear message and nothing written), the audit of every change, what
`ProviderHealth.order_for` then returns, "reset to configured" and "reset breaker"."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.vtu.provider_health import BreakerState, ProviderHealth, remember_float
from app.vtu.provider_routes import ProviderRoute
from tests.factories import PASSWORD, create_user
from tests.helpers import browser_pool, csrf_token, log_in, staff_browser

PAGE = "/staff/providers"


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(app: Any, db: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    async with browser_pool(app) as new:
        yield new


@pytest_asyncio.fixture(loop_scope="session")
async def ops(db: Any, browsers: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    return await staff_browser(db, browsers, role="operations")


async def post(client: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    token = await csrf_token(client, PAGE)
    return await client.post(path, data={**data, "_csrf_token": token}, follow_redirects=False)


async def routes(sessionmaker: Any) -> dict[str, list[str] | None]:
    async with sessionmaker() as session:
        rows = await session.execute(select(ProviderRoute.service_id, ProviderRoute.providers))
        return {sid: (list(p) if p is not None else None) for sid, p in rows}


async def audits(sessionmaker: Any) -> list[AuditEntry]:
    async with sessionmaker() as session:
        found = await session.execute(select(AuditEntry).order_by(AuditEntry.id))
        return list(found.scalars())


def health(app: Any, sessionmaker: Any) -> ProviderHealth:
    return ProviderHealth(app.state.redis, sessionmaker, app.state.settings)


async def test_only_staff_see_it_and_only_operations_change_it(app, db, browsers, sessionmaker) -> None:
    anon = browsers()
    response = await anon.get(PAGE, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    customer = await create_user(db)
    await db.commit()
    browser = browsers()
    await log_in(browser, customer.email, PASSWORD)
    assert (await browser.get(PAGE)).status_code == 403
    token = await csrf_token(browser, "/account/password")
    for path, data in (
        ("/staff/providers/routes", {"service_id": "mtn", "providers": "vtpass"}),
        ("/staff/providers/routes/reset", {"service_id": "mtn"}),
        ("/staff/providers/breaker/reset", {"slug": "vtpass"}),
    ):
        refused = await browser.post(path, data={**data, "_csrf_token": token}, follow_redirects=False)
        assert refused.status_code == 403, path
    # Support reads the page (breakers, floats, orders) but changes nothing.
    support = await staff_browser(db, browsers, role="support")
    page = await support.get(PAGE)
    assert page.status_code == 200
    assert page.text.count("<h1") == 1
    assert 'id="route-mtn"' in page.text and 'id="provider-stub"' in page.text
    assert 'action="/staff/providers/routes"' not in page.text  # no forms it could not use
    for path, data in (
        ("/staff/providers/routes", {"service_id": "mtn", "providers": "vtpass"}),
        ("/staff/providers/breaker/reset", {"slug": "vtpass"}),
    ):
        assert (await post(support, path, **data)).status_code == 403, path
    assert await routes(sessionmaker) == {}
    assert [a.action for a in await audits(sessionmaker)] == []
    # The console links it.
    assert 'href="/staff/providers"' in (await support.get("/staff")).text


async def test_an_order_set_by_operations_is_audited_and_routes_the_service(app, ops, sessionmaker) -> None:
    page = await ops.get(PAGE)
    assert "stub" in page.text and "staff order" not in page.text  # every service on its configured order
    # one line per service (about 25 on a phone): each form folded under its service, none open
    assert page.text.count('<li id="route-') == page.text.count("<details>") > 10
    assert await health(app, sessionmaker).order_for("mtn") is None
    response = await post(
        ops,
        "/staff/providers/routes",
        service_id="mtn",
        providers=" ClubKonnect,  vtpass ",
        reason="VTpass slow",
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/staff/providers#route-mtn"
    assert await routes(sessionmaker) == {"mtn": ["clubkonnect", "vtpass"]}
    from app.vtu.runtime import get_vtu

    runtime = await get_vtu(app)  # the web process's own router sees it at once (no 5 s cache wait)
    assert runtime.health is not None
    assert await runtime.health.order_for("mtn") == ["clubkonnect", "vtpass"]
    assert await health(app, sessionmaker).order_for("mtn") == ["clubkonnect", "vtpass"]
    assert await health(app, sessionmaker).order_for("glo") is None  # other services: configured
    [entry] = await audits(sessionmaker)
    assert (entry.action, entry.target_type, entry.target_id) == (
        "provider_route.set",
        "provider_route",
        "mtn",
    )
    assert entry.before == {"providers": None} and entry.after == {"providers": ["clubkonnect", "vtpass"]}
    assert entry.reason == "VTpass slow" and entry.actor_role == "operations"
    page = await ops.get(PAGE)
    assert "clubkonnect → vtpass" in html.unescape(page.text)
    assert page.text.count("staff order") == 1 and "Set by staff:" in page.text
    # A second change records what it replaced.
    assert (
        await post(ops, "/staff/providers/routes", service_id="mtn", providers="vtpass")
    ).status_code == 303
    assert await health(app, sessionmaker).order_for("mtn") == ["vtpass"]
    assert (await audits(sessionmaker))[-1].before == {"providers": ["clubkonnect", "vtpass"]}


async def test_a_bad_order_is_refused_with_a_clear_error_and_nothing_written(app, ops, sessionmaker) -> None:
    assert (
        await post(ops, "/staff/providers/routes", service_id="dstv", providers="vtpass")
    ).status_code == 303
    before_routes, before_audits = await routes(sessionmaker), len(await audits(sessionmaker))
    cases = (
        ("mtn", "vtpass, vtpass", "vtpass is listed more than once"),
        ("mtn", "vtpass, paystack", "Unknown provider &#39;paystack&#39;"),
        ("mtn", "  ,  ", "List at least one provider"),
        ("mtn", "vtpass, clubkonnect, stub, vtpass2, a, b", "Unknown provider"),
        ("nope", "vtpass", "Unknown service &#39;nope&#39;"),
        ("dstv", "vtpass vtpass", "more than once"),  # an existing route stays as it was
    )
    for service_id, typed, message in cases:
        response = await post(ops, "/staff/providers/routes", service_id=service_id, providers=typed)
        assert response.status_code == 400, (typed, response.status_code)
        assert message in response.text, (typed, response.text[:300])
        if service_id != "nope":
            assert f'id="e-{service_id}"' in response.text  # shown on that service's form, value kept
            assert response.text.count("<details open>") == 1  # that form unfolded
    assert await routes(sessionmaker) == before_routes == {"dstv": ["vtpass"]}
    assert len(await audits(sessionmaker)) == before_audits
    # CSRF: a form post without the token is refused and changes nothing.
    forged = await ops.post(
        "/staff/providers/routes", data={"service_id": "mtn", "providers": "vtpass"}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert await routes(sessionmaker) == {"dstv": ["vtpass"]}


async def test_reset_to_configured(app, ops, sessionmaker) -> None:
    await post(ops, "/staff/providers/routes", service_id="mtn", providers="clubkonnect")
    assert await health(app, sessionmaker).order_for("mtn") == ["clubkonnect"]
    response = await post(ops, "/staff/providers/routes/reset", service_id="mtn")
    assert response.status_code == 303
    assert await routes(sessionmaker) == {"mtn": None}  # kept: who reset it, and when
    assert await health(app, sessionmaker).order_for("mtn") is None
    entry = (await audits(sessionmaker))[-1]
    assert entry.action == "provider_route.reset"
    assert (entry.before, entry.after) == ({"providers": ["clubkonnect"]}, {"providers": None})
    bad = await post(ops, "/staff/providers/routes/reset", service_id="nope")
    assert bad.status_code == 400 and len(await audits(sessionmaker)) == 2


async def test_reset_breaker_closes_it_and_is_audited(app, db, ops, browsers, sessionmaker) -> None:
    h = health(app, sessionmaker)
    for _ in range(app.state.settings.vtu_breaker_errors):
        await h.record_failure("vtpass", "pay: VTpass /pay answered HTTP 503")
    await remember_float(app.state.redis, app.state.settings, "vtpass", 1_234_50)
    assert (await h.breaker("vtpass")).state is BreakerState.OPEN
    page = await ops.get(PAGE)
    assert 'id="provider-vtpass"' in page.text
    assert "open until" in page.text and "answered HTTP 503" in page.text
    assert "₦1,234.50" in page.text
    support = await staff_browser(db, browsers, role="support")
    assert (await post(support, "/staff/providers/breaker/reset", slug="vtpass")).status_code == 403
    assert (await h.breaker("vtpass")).state is BreakerState.OPEN
    assert (await post(ops, "/staff/providers/breaker/reset", slug="nope")).status_code == 400
    response = await post(ops, "/staff/providers/breaker/reset", slug="vtpass")
    assert response.status_code == 303
    breaker = await h.breaker("vtpass")
    assert (breaker.state, breaker.errors) == (BreakerState.CLOSED, 0)
    assert await h.usable("vtpass", 100)
    [entry] = await audits(sessionmaker)
    assert (entry.action, entry.target_id) == ("provider_breaker.reset", "vtpass")
    assert entry.before is not None and entry.before["state"] == "open"
    async with sessionmaker() as session:
        assert (await session.execute(select(func.count()).select_from(ProviderRoute))).scalar_one() == 0
