"""SAQ's own web UI, for admins only, at `/staff/queue/ui` (the queue page `/staff/queue` is the readable
summary; this is SAQ's full job browser, with retry and abort).

- The controller is litestar-saq's (`build_controller`), behind the console's guard with `opt=needs(ADMIN)`.
- Its page starts with one inline script (`const root_path = "/staff/queue/ui";`): the site's CSP allows that
  exact script by its hash (`INLINE_SCRIPT_HASH`, added in app/core/plugin.py), nothing else inline.
- SAQ ships its CSS and JS gzipped only; they are served here decompressed (the compression middleware
  compresses what it sends), from memory, read once.
- Retry and abort are `fetch` POSTs without our CSRF token: their API is exempt from the token check, and
  instead `same_origin_writes` refuses any unsafe request whose `Origin` is not this site (browsers always
  send Origin on a cross-site POST), on top of the admin guard and the SameSite session cookie.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import cache
from typing import TYPE_CHECKING, Any

from litestar import Controller, MediaType, Response, get
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar_saq.controllers import build_controller
from saq.web.common import STATIC_PATH

from app.accounts.staff_roles import ADMIN, needs, requires_staff_role

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

UI_PATH = "/staff/queue/ui"
CSRF_EXEMPT = rf"^{UI_PATH}/api/"
INLINE_SCRIPT = f'const root_path = "{UI_PATH}";'  # exactly what litestar-saq's page inlines
INLINE_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(INLINE_SCRIPT.encode()).digest()).decode()

_ASSETS = {  # the names SAQ's page asks for -> (file, media type)
    "pico.min.css.gz": ("pico.min.css.gz", "text/css; charset=utf-8"),
    "snabbdom.js.gz": ("snabbdom.js.gz", "text/javascript; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
}
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def same_origin_writes(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse an unsafe request that another site could have made (the API here carries no CSRF token)."""
    if connection.scope.get("method", "GET") in _SAFE_METHODS:
        return
    origin = connection.headers.get("origin", "")
    here = f"{connection.url.scheme}://{connection.url.netloc}"
    if origin != here:
        raise PermissionDeniedException("Refused: this action must come from this site's own page.")


@cache
def _asset(name: str) -> bytes:
    filename, _ = _ASSETS[name]
    data = (STATIC_PATH / filename).read_bytes()
    return gzip.decompress(data) if filename.endswith(".gz") else data


class SaqUiController(build_controller(UI_PATH, [requires_staff_role, same_origin_writes])):  # type: ignore[misc]
    opt = needs(ADMIN)


class SaqUiAssets(Controller):
    path = f"{UI_PATH}/static"
    guards = [requires_staff_role]
    opt = needs(ADMIN)
    include_in_schema = False

    @get("/{name:str}", name="staff:queue-ui-asset")
    async def asset(self, name: str) -> Response[bytes]:
        if name not in _ASSETS:
            raise NotFoundException("No such file.")
        return Response(_asset(name), media_type=_ASSETS[name][1] or MediaType.TEXT)


__all__ = ["CSRF_EXEMPT", "INLINE_SCRIPT_HASH", "UI_PATH", "SaqUiAssets", "SaqUiController"]
