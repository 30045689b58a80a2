"""The installable app: the web app manifest, the service worker and the offline page.

- `/manifest.webmanifest`: name, colours (static/css/app.css's `--green` and `--bg`) and icons, whose
  URLs are the content-hashed ones of app/core/static.py.
- `/sw.js`: app/core/sw.js behind one generated line, `const SHELL = {...}`: the cache name (a hash of the
  whole script, so any change of an asset, the offline page or the worker is a new worker and a new cache)
  and the precache list (SHELL_ASSETS' hashed URLs and /offline). Served `no-cache` from the root, so its
  scope is the whole site and a deploy is picked up on the next visit.
- `/offline`: a page with nothing of the user in it (rendered without the session, fetched by the worker
  without cookies); app.js fills in the last balance the browser remembered.

These three paths are outside the session middleware (app/core/plugin.py): no Redis round trip, and no
signed-in answer (`no-store`, a user's name, a CSRF token) can reach Cache Storage. docs/architecture.md,
"The installable app".
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from litestar import Controller, Request, get
from litestar.response import Response, Template

from app.config.settings import BASE_DIR
from app.core.static import static_url

SITE_NAME = "TopUp NG"
THEME_COLOR = "#0a7d4f"  # --green in static/css/app.css
BACKGROUND_COLOR = "#f5f7f8"  # --bg
START_URL = "/dashboard"  # the signed-in home (signed-out visitors are sent to log in from there)
OFFLINE_URL = "/offline"
# What the offline page and an installed app's first paint need; nothing else is precached.
SHELL_ASSETS = (
    "css/app.css",
    "js/app.js",
    "js/htmx.min.js",
    "img/icon.svg",
    "img/icon-192.png",
    "img/icon-512.png",
    "img/icon-maskable-512.png",
    "img/apple-touch-icon.png",
)
PATHS = (r"^/sw\.js$", r"^/manifest\.webmanifest$", r"^/offline$")  # outside the session (plugin.py)

WORKER_SOURCE = BASE_DIR / "app" / "core" / "sw.js"
OFFLINE_TEMPLATE = BASE_DIR / "templates" / "core" / "offline.html"
NO_CACHE = "no-cache"


def manifest_document() -> dict[str, Any]:
    return {
        "id": "/",
        "name": f"{SITE_NAME}: airtime, data, electricity, cable TV",
        "short_name": SITE_NAME,
        "description": "Buy airtime, data, electricity and cable TV from your wallet in seconds.",
        "lang": "en-NG",
        "start_url": START_URL,
        "scope": "/",
        "display": "standalone",
        "theme_color": THEME_COLOR,
        "background_color": BACKGROUND_COLOR,
        "icons": [
            {
                "src": static_url("img/icon-192.png"),
                "sizes": "192x192",
                "type": "image/png",
                "purpose": "any",
            },
            {
                "src": static_url("img/icon-512.png"),
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "any",
            },
            {
                "src": static_url("img/icon-maskable-512.png"),
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
        ],
    }


def precache_urls() -> list[str]:
    return [*(static_url(rel) for rel in SHELL_ASSETS), OFFLINE_URL]


@cache
def _manifest_body() -> bytes:
    return json.dumps(manifest_document(), separators=(",", ":")).encode()


@cache
def worker_script() -> bytes:
    """The worker as served. Its cache name is a hash of everything that shapes it: the list (the assets'
    hashes), the offline page's template and the worker's own source."""
    urls = precache_urls()
    source = WORKER_SOURCE.read_bytes()
    digest = hashlib.sha256()
    for part in (json.dumps(urls).encode(), OFFLINE_TEMPLATE.read_bytes(), source):
        digest.update(hashlib.sha256(part).digest())
    shell = {"cache": f"shell-{digest.hexdigest()[:12]}", "offline": OFFLINE_URL, "urls": urls}
    return f"const SHELL = {json.dumps(shell)};\n".encode() + source


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:16]}"'


def _revalidated(request: Request[Any, Any, Any], body: bytes, media_type: str) -> Response[bytes]:
    """`no-cache` with an ETag: the browser asks every time and a slow phone mostly gets a 304."""
    etag = _etag(body)
    headers = {"cache-control": NO_CACHE, "etag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


class PwaController(Controller):
    include_in_schema = False

    @get("/manifest.webmanifest", sync_to_thread=False, cache=False)
    def manifest(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        return _revalidated(request, _manifest_body(), "application/manifest+json")

    @get("/sw.js", sync_to_thread=False, cache=False)
    def service_worker(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        return _revalidated(request, worker_script(), "text/javascript")  # Litestar adds "; charset=utf-8"

    @get(OFFLINE_URL, name="offline", cache=False)
    async def offline(self) -> Template:
        return Template(template_name="core/offline.html", headers={"cache-control": NO_CACHE})
