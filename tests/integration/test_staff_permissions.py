"""Staff roles over real HTTP: every console route declares the role it needs, and each is refused to the
roles below it, to customers and to anonymous visitors; the audit log is append-only in the database."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.accounts.staff_roles import ROLES, rank, required_role
from app.audit import service as audit
from tests.factories import PASSWORD, create_user
from tests.helpers import csrf_token, log_in

ORIGIN = "http://testserver.local"  # what a browser sends on a POST from our own pages
_PARAM = re.compile(r"\{(\w+):(\w+)\}")


def _concrete(path: str) -> str:
    """A request path for a route template: parameters filled with values of the right type."""

    def fill(match: re.Match[str]) -> str:
        kind = match.group(2)
        if kind == "uuid":
            return str(uuid.uuid4())
        if kind == "int":
            return "1"
        return "x"

    return _PARAM.sub(fill, path)


def console_routes(app: Any) -> list[tuple[str, str, str | None]]:
    """(method, path template, declared role) for every handler under /staff."""
    found = []
    for route in app.routes:
        if not (route.path == "/staff" or route.path.startswith("/staff/")):
            continue
        for handler in route.route_handlers:
            methods = sorted(getattr(handler, "http_methods", None) or {"GET"})
            for method in methods:
                if method in ("HEAD", "OPTIONS"):
                    continue
                found.append((method, route.path, required_role(handler)))
    return sorted(set(found))


def test_every_console_route_declares_a_role(app: Any) -> None:
    routes = console_routes(app)
    assert len(routes) >= 50, routes  # the walk really sees the console (53 on 7 Dec)
    undeclared = [(m, p) for m, p, role in routes if role is None]
    assert undeclared == [], f"console routes without a staff role: {undeclared}"
    # Reads are open to support; anything that changes state needs more than support, except "check now".
    for method, path, role in routes:
        if method == "POST" and not path.endswith("/requery"):
            assert rank(role) > rank("support"), (method, path, role)


def test_a_handler_without_a_role_is_closed_to_everyone() -> None:
    from litestar import get

    from app.accounts.staff_roles import requires_staff_role

    @get("/staff/forgotten", guards=[requires_staff_role])
    async def forgotten() -> str:
        return "open"

    assert required_role(forgotten) is None  # and the guard refuses it: proved over HTTP below


async def _request(client: Any, method: str, path: str, *, signed_in: bool = True) -> Any:
    if method == "GET":
        return await client.get(path, follow_redirects=False)
    token = await csrf_token(client, "/account/password" if signed_in else "/login")
    return await client.request(
        method, path, data={"_csrf_token": token}, headers={"origin": ORIGIN}, follow_redirects=False
    )


async def test_each_console_route_is_refused_below_its_role(app: Any, db: Any, make_client: Any) -> None:
    browsers: dict[str | None, Any] = {}
    for role in (None, *ROLES):  # None: a signed-in customer
        user = await create_user(db, staff_role=role)
        await db.commit()
        client = make_client()
        assert (await log_in(client, user.email, PASSWORD)).status_code == 303
        browsers[role] = client
    anonymous = make_client()
    try:
        checked = 0
        for method, template, needed in console_routes(app):
            assert needed is not None
            path = _concrete(template)
            response = await _request(anonymous, method, path, signed_in=False)
            assert response.status_code in (302, 303, 401), (method, path, response.status_code)
            if response.status_code in (302, 303):
                assert response.headers["location"].startswith("/login"), (method, path)
            for role, client in browsers.items():
                response = await _request(client, method, path)
                if rank(role) < rank(needed):
                    assert response.status_code == 403, (method, path, role, needed, response.status_code)
                    checked += 1
                else:  # allowed through the guard: whatever the handler answers, it is not a refusal
                    assert response.status_code != 403, (method, path, role, response.text[:300])
                    assert response.status_code < 500, (method, path, role, response.text[:300])
        assert checked >= 100  # 53 routes x the roles below each: 119 on 7 Dec
    finally:
        for client in (*browsers.values(), anonymous):
            await client.aclose()


async def test_a_suspended_staff_member_loses_the_console(app: Any, db: Any, make_client: Any) -> None:
    user = await create_user(db, staff_role="admin")
    await db.commit()
    client = make_client()
    try:
        assert (await log_in(client, user.email, PASSWORD)).status_code == 303
        assert (await client.get("/staff/audit")).status_code == 200
        await db.execute(
            text("UPDATE users SET suspended_at = now(), suspended_reason = 'test' WHERE id = :id"),
            {"id": user.id},
        )
        await db.commit()
        assert (await client.get("/staff/audit", follow_redirects=False)).status_code in (302, 303, 401, 403)
    finally:
        await client.aclose()


async def test_the_audit_log_refuses_update_and_delete(db: Any, owner_engine: Any) -> None:
    staff = await create_user(db, staff_role="finance")
    entry = await audit.record(
        db, audit.Actor.staff(staff, ip="203.0.113.9"), "user.suspend", target=("user", staff.id), reason="x"
    )
    await db.commit()
    for statement in (
        "UPDATE audit_log SET reason = 'edited' WHERE id = :id",
        "DELETE FROM audit_log WHERE id = :id",
    ):
        with pytest.raises(DBAPIError):  # the application role: no privilege, and the trigger
            await db.execute(text(statement), {"id": entry})
        await db.rollback()
        async with owner_engine.connect() as conn:  # the owner: the trigger still refuses
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(text(statement), {"id": entry})
            await conn.rollback()
    async with owner_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text("TRUNCATE audit_log"))
        await conn.rollback()
    row = (
        await db.execute(text("SELECT reason, ip, actor_role FROM audit_log WHERE id = :id"), {"id": entry})
    ).one()
    assert tuple(row) == ("x", "203.0.113.9", "finance")


async def test_staff_actions_are_on_the_audit_page(app: Any, db: Any, make_client: Any) -> None:
    finance = await create_user(db, staff_role="finance")
    customer = await create_user(db)
    actor = audit.Actor.staff(finance, ip="198.51.100.7")
    await audit.record(db, actor, "user.tier", target=("user", customer.id), before={"tier": "customer"},
                       after={"tier": "reseller"}, reason="Registered business <b>Ltd</b>")  # fmt: skip
    await audit.record(
        db, actor, "price_rule.set", target=("service", "mtn-data"), after={"discount_bps": 200}
    )
    await db.commit()
    support = await create_user(db, staff_role="support")
    await db.commit()
    client = make_client()
    try:
        assert (await log_in(client, support.email, PASSWORD)).status_code == 303
        page = await client.get("/staff/audit")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "user.tier" in page.text and "price_rule.set" in page.text
        assert "Registered business &lt;b&gt;Ltd&lt;/b&gt;" in page.text  # escaped
        assert f'href="/staff/users/{customer.id}"' in page.text
        only_user = await client.get(
            "/staff/audit", params={"target_type": "user", "target_id": str(customer.id)}
        )
        assert "user.tier" in only_user.text and "price_rule.set" not in only_user.text
        by_prefix = await client.get("/staff/audit", params={"action": "price_rule."})
        assert "price_rule.set" in by_prefix.text and "user.tier" not in by_prefix.text
        nobody = await client.get("/staff/audit", params={"actor": "nobody%"})
        assert 'id="no-entries"' in nobody.text
        weird = await client.get(
            "/staff/audit", params={"since": "not-a-date", "before": "99999999999999999999"}
        )
        assert weird.status_code == 200
    finally:
        await client.aclose()


async def test_existing_console_actions_are_audited(app: Any, db: Any, make_client: Any) -> None:
    """A price-rule change from the plans console writes its audit entry with before/after."""
    from app.vtu.plans import sync_plans
    from app.vtu.providers.stub import StubProvider

    await sync_plans(db, StubProvider(), "mtn-data")
    await db.commit()
    finance = await create_user(db, staff_role="finance")
    await db.commit()
    client = make_client()
    try:
        assert (await log_in(client, finance.email, PASSWORD)).status_code == 303
        token = await csrf_token(client, "/staff/plans?service_id=mtn-data")
        response = await client.post(
            "/staff/plans/rules",
            data={"_csrf_token": token, "service_id": "mtn-data", "tier": "customer", "variation_code": "",
                  "price_naira": "9000", "discount_percent": ""},
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 303, response.text[:500]
        rows = (
            await db.execute(
                text("SELECT actor, actor_role, action, target_id, before, after FROM audit_log")
            )
        ).all()
        assert [(r.actor, r.actor_role, r.action, r.target_id) for r in rows] == [
            (finance.email, "finance", "price_rule.set", "mtn-data")
        ]
        assert rows[0].before is None and rows[0].after["fixed_price_kobo"] == 900_000
    finally:
        await client.aclose()


async def test_saq_web_ui_is_for_admins_and_refuses_cross_site_writes(
    app: Any, db: Any, make_client: Any
) -> None:
    from app.dashboard.queue_ui import INLINE_SCRIPT, INLINE_SCRIPT_HASH

    browsers = {}
    for role in ("operations", "admin"):
        user = await create_user(db, staff_role=role)
        await db.commit()
        browsers[role] = make_client()
        assert (await log_in(browsers[role], user.email, PASSWORD)).status_code == 303
    admin, ops = browsers["admin"], browsers["operations"]
    try:
        page = await admin.get("/staff/queue/ui")
        assert page.status_code == 200 and INLINE_SCRIPT in page.text
        assert f"'{INLINE_SCRIPT_HASH}'" in page.headers["content-security-policy"]
        assert "'unsafe-inline'" not in page.headers["content-security-policy"]
        css = await admin.get("/staff/queue/ui/static/pico.min.css.gz")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert css.text.lstrip().startswith(("@charset", "/*", ":root"))  # served decompressed
        assert (await admin.get("/staff/queue/ui/static/../../../etc/passwd")).status_code == 404
        queues = await admin.get("/staff/queue/ui/api/queues")
        assert queues.status_code == 200 and "queues" in queues.json()
        assert (await ops.get("/staff/queue/ui")).status_code == 403
        assert (await ops.get("/staff/queue/ui/api/queues")).status_code == 403
        retry = "/staff/queue/ui/api/queues/default/jobs/nope/retry"
        for headers in ({}, {"origin": "https://evil.example"}, {"origin": "null"}):
            refused = await admin.post(retry, headers=headers)
            assert refused.status_code == 403, headers
        allowed = await admin.post(retry, headers={"origin": ORIGIN})
        assert allowed.status_code == 404  # through the guards: no such job
    finally:
        for client in browsers.values():
            await client.aclose()


async def test_console_pages_link_their_audit_entries(app: Any, db: Any, make_client: Any) -> None:
    """Each target's page links the log filtered to it (the filter itself is tested above)."""
    support = await create_user(db, staff_role="support")
    await db.commit()
    client = make_client()
    try:
        assert (await log_in(client, support.email, PASSWORD)).status_code == 303
        for page, link in (
            ("/staff/plans", "/staff/audit?action=price_rule."),
            ("/staff/adjustments", "/staff/audit?action=adjustment."),
            (f"/staff/users/{support.id}", f"/staff/audit?target_type=user&amp;target_id={support.id}"),
        ):
            html = (await client.get(page)).text
            assert f'href="{link}"' in html, page
    finally:
        await client.aclose()
