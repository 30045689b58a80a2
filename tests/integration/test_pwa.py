"""The installable app over HTTP: manifest, service worker, offline page, CSP (app/core/pwa.py)."""

from __future__ import annotations

import json
import re

from tests.factories import PASSWORD, create_user
from tests.helpers import log_in

HASHED = re.compile(r"^/static/[\w/.-]+\.[0-9a-f]{10}\.\w+$")


def _shell(script: str) -> dict:
    first, _, _ = script.partition("\n")
    match = re.fullmatch(r"const SHELL = (\{.*\});", first)
    assert match, first
    return json.loads(match.group(1))


async def test_manifest_fields_and_icons(client):
    response = await client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/manifest+json")
    assert response.headers["cache-control"] == "no-cache"
    doc = response.json()
    assert doc["short_name"] == "TopUp NG" and doc["name"].startswith("TopUp NG")
    assert (doc["start_url"], doc["scope"], doc["display"]) == ("/dashboard", "/", "standalone")
    assert doc["theme_color"] == "#0a7d4f" and doc["background_color"] == "#f5f7f8"
    css = (
        await client.get((await client.get("/login")).text.split('rel="stylesheet" href="')[1].split('"')[0])
    ).text
    assert "--green:#0a7d4f" in css and "--bg:#f5f7f8" in css  # the manifest's colours are the site's
    sizes = {(icon["sizes"], icon["purpose"]) for icon in doc["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    for icon in doc["icons"]:
        assert HASHED.match(icon["src"]), icon  # the fingerprinted URL the static handler serves
        png = await client.get(icon["src"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        width, height = int.from_bytes(png.content[16:20], "big"), int.from_bytes(png.content[20:24], "big")
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n" and f"{width}x{height}" == icon["sizes"]
    etag = response.headers["etag"]
    again = await client.get("/manifest.webmanifest", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""


async def test_pages_link_the_manifest_and_the_apple_icon(client):
    page = (await client.get("/login")).text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert '<meta name="theme-color" content="#0a7d4f">' in page
    apple = re.search(r'<link rel="apple-touch-icon" href="([^"]+)">', page).group(1)
    icon = await client.get(apple)
    assert icon.status_code == 200 and int.from_bytes(icon.content[16:20], "big") == 180


async def test_service_worker_headers_and_precache_list(client):
    response = await client.get("/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "service-worker-allowed" not in response.headers  # root path: its scope is "/" already
    shell = _shell(response.text)
    urls = shell["urls"]
    assert "/offline" in urls and shell["offline"] == "/offline"
    static = [u for u in urls if u != "/offline"]
    assert static and all(HASHED.match(u) for u in static), urls
    assert not any(u.startswith(("/api", "/purchases", "/statement", "/dashboard", "/wallet")) for u in urls)
    page = (await client.get("/login")).text
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+\.(?:css|js))"', page):
        assert asset in urls  # the shell's assets are the ones pages actually use
    for url in urls:
        assert (await client.get(url)).status_code == 200
    assert (
        await client.get("/sw.js", headers={"if-none-match": response.headers["etag"]})
    ).status_code == 304


async def test_worker_cache_name_follows_the_assets(monkeypatch):
    """A deploy that changes any asset is a new worker with a new cache (old ones deleted on activate)."""
    from app.core import pwa

    pwa.worker_script.cache_clear()
    before = _shell(pwa.worker_script().decode())
    pwa.worker_script.cache_clear()
    monkeypatch.setattr(pwa, "static_url", lambda rel: f"/static/{rel}.changed")
    after = _shell(pwa.worker_script().decode())
    pwa.worker_script.cache_clear()
    assert before["cache"] != after["cache"] and before["urls"] != after["urls"]
    source = pwa.WORKER_SOURCE.read_text()
    assert "caches.delete" in source and "name !== SHELL.cache" in source


async def test_signed_in_answers_are_not_different_for_the_shell(client, db):
    """The three files carry nothing of the session: same bytes signed in or not, never `no-store`."""
    anonymous = {p: (await client.get(p)).content for p in ("/sw.js", "/manifest.webmanifest", "/offline")}
    user = await create_user(db)
    await db.commit()
    await log_in(client, user.email, PASSWORD)
    assert (await client.get("/dashboard")).headers["cache-control"] == "no-store"
    for path, body in anonymous.items():
        signed_in = await client.get(path)
        assert signed_in.headers["cache-control"] == "no-cache", path
        assert "set-cookie" not in signed_in.headers or "session" not in signed_in.headers["set-cookie"]
        assert signed_in.content == body, path
    assert user.email not in (await client.get("/offline")).text


async def test_csp_allows_the_worker_and_the_manifest_only_from_this_site(client):
    for path in ("/", "/offline", "/sw.js"):
        csp = (await client.get(path)).headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["worker-src"] == "'self'" and directives["manifest-src"] == "'self'", path
        assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in csp


async def test_offline_page(client):
    page = await client.get("/offline")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    text = page.text
    assert "You're offline" in text and "data-retry" in text and "Last balance seen" in text
    assert "may be out of date" in text
    assert "<script>" not in text and "csrf" not in text.lower() and 'action="/logout"' not in text
    assert "data-offline-page" in text


async def test_balance_elements_carry_the_kobo_for_the_offline_page(client, db, sessionmaker):
    from tests.integration.purchase_fixtures import fund_wallet

    user = await create_user(db)
    await db.commit()
    await fund_wallet(sessionmaker, user.id, 123_450)
    await log_in(client, user.email, PASSWORD)
    for path in ("/dashboard", "/statement", "/buy/airtime"):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert re.search(r'id="wallet-balance" data-balance-kobo="123450"', page.text), path
