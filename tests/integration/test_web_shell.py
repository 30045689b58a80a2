"""Layout, probes, error pages, static assets and page weight."""

from __future__ import annotations

import gzip
import re

from litestar import get

from tests.factories import PASSWORD, create_user
from tests.helpers import log_in


async def test_health_and_ready(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_landing_page_renders_in_the_layout(client):
    page = await client.get("/")
    assert page.status_code == 200
    assert "Top up anything" in page.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_404_page_uses_the_layout(client):
    page = await client.get("/no/such/page")
    assert page.status_code == 404
    assert "Page not found" in page.text and 'class="topbar"' in page.text


async def test_staff_pages_are_guarded(client, db):
    anon = await client.get("/staff", follow_redirects=False)
    assert anon.status_code == 303 and anon.headers["location"] == "/login?next=%2Fstaff"
    customer = await create_user(db)
    staff = await create_user(db, is_staff=True)
    await db.commit()
    await log_in(client, customer.email, PASSWORD)
    forbidden = await client.get("/staff/")
    assert (
        forbidden.status_code == 403 and "staff only" in forbidden.text and 'class="topbar"' in forbidden.text
    )
    client.cookies.clear()
    await log_in(client, staff.email, PASSWORD)
    ok = await client.get("/staff/")
    assert ok.status_code == 200 and customer.email in ok.text


async def test_htmx_request_for_a_guarded_page_gets_hx_redirect(client):
    response = await client.get("/dashboard", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/login?next=%2Fdashboard"


async def test_500_page_in_layout_without_details(settings):
    import httpx
    from litestar import Litestar

    from app.core.plugin import AppCore

    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    app = Litestar(plugins=[AppCore(settings)], route_handlers=[boom])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        page = await c.get("/boom")
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.text and 'class="topbar"' in page.text
    assert "secret internal detail" not in page.text


async def test_static_assets_are_hashed_cached_and_compressed(client):
    page = await client.get("/")
    css_url = re.search(r'href="(/static/css/app\.[0-9a-f]{10}\.css)"', page.text).group(1)
    js_url = re.search(r'src="(/static/js/htmx\.min\.[0-9a-f]{10}\.js)"', page.text).group(1)
    css = await client.get(css_url, headers={"accept-encoding": "gzip"})
    assert css.status_code == 200
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert css.headers["content-encoding"] == "gzip"
    assert css.headers["content-type"].startswith("text/css")
    again = await client.get(css_url, headers={"if-none-match": css.headers["etag"]})
    assert again.status_code == 304
    assert (await client.get(js_url)).status_code == 200
    assert (await client.get("/static/css/app.0000000000.css")).status_code == 404


async def test_first_page_load_is_under_40_kb_compressed(client):
    """HTML + CSS + JS of the landing and sign-up pages, gzip-compressed as served."""
    for path in ("/", "/signup"):
        page = await client.get(path)
        total = len(gzip.compress(page.content))
        for url in re.findall(r'(?:href|src)="(/static/[^"]+\.(?:css|js))"', page.text):
            asset = await client.get(url, headers={"accept-encoding": "gzip"})
            total += int(asset.headers["content-length"])
        assert total < 40 * 1024, f"{path}: {total} bytes"


async def test_pages_are_gzip_compressed(client):
    page = await client.get("/signup", headers={"accept-encoding": "gzip"})
    assert page.headers.get("content-encoding") == "gzip"


# -- errors for htmx requests and expired forms (issue 13) -----------------------------------------------
SITE = "http://testserver.local"


async def test_htmx_request_with_a_bad_csrf_token_gets_the_message_in_flash(client, db):
    customer = await create_user(db)
    await log_in(client, customer.email, PASSWORD)
    await client.get("/buy/electricity")
    response = await client.post(
        "/buy/electricity/verify",
        data={"service_id": "ikeja-electric", "meter_number": "1111111111111", "meter_type": "prepaid"},
        headers={"HX-Request": "true", "x-csrftoken": "not-the-token", "Origin": SITE},
    )
    assert response.status_code == 403
    assert response.headers["HX-Retarget"] == "#flash"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert "<html" not in response.text and 'role="alert"' in response.text
    assert "This page has expired" in response.text and "Reload the page and try again" in response.text


async def test_expired_plain_form_from_this_site_links_back_without_echoing_what_was_typed(client, db):
    customer = await create_user(db)
    await log_in(client, customer.email, PASSWORD)
    data = {"service_id": "mtn", "phone": "08012345678", "amount": "777", "_csrf_token": "expired"}
    referer = f"{SITE}/buy/airtime?service_id=mtn"
    response = await client.post(
        "/buy/airtime", data=data, headers={"Origin": SITE, "Referer": referer}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "This form expired" in response.text and "Please try again." in response.text
    assert 'href="/buy/airtime?service_id=mtn" id="back-to-form"' in response.text
    # Nothing posted comes back in a form that could be resubmitted with a fresh token.
    assert "08012345678" not in response.text and "777" not in response.text
    assert "<form" not in response.text.split("<main ", 1)[1]


async def test_expired_form_from_elsewhere_gets_no_link_back(client, db):
    customer = await create_user(db)
    await log_in(client, customer.email, PASSWORD)
    data = {"service_id": "mtn", "phone": "08012345678", "amount": "777", "_csrf_token": "forged"}
    cases = [
        {"Origin": "https://evil.example", "Referer": f"{SITE}/buy/airtime"},  # Origin wins
        {"Referer": "https://evil.example/buy/airtime"},
        {"Origin": SITE, "Referer": f"{SITE}//evil.example/x"},  # not a plain same-site path
        {"Origin": SITE},  # no Referer: nowhere known to go back to
    ]
    for headers in cases:
        response = await client.post("/buy/airtime", data=data, headers=headers, follow_redirects=False)
        assert response.status_code == 403, headers
        assert "back-to-form" not in response.text and "evil.example" not in response.text, headers
        assert "sent from another site" in response.text, headers
