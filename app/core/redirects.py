"""Redirects after a form: only ever to a path on this site, the same way for htmx (HX-Redirect) and plain
posts (303 Location).

A `next` value comes from the request (a query string, a hidden field), so it is checked before it goes into
a header: browsers drop tabs and newlines inside URLs (`/\\t/evil.example` becomes `//evil.example`, another
host), and a CR or LF in a header makes the server drop the connection. Anything that is not a plain
absolute path on this site falls back to the default.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from litestar import Response
from litestar.response import Redirect

DEFAULT_NEXT = "/dashboard"
MAX_NEXT_LENGTH = 1000


def _plain_path(value: str) -> bool:
    if not value.isascii() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return False  # control characters, spaces and anything a header cannot carry as is
    if "\\" in value or not value.startswith("/") or value.startswith("//"):
        return False
    parts = urlsplit(value)
    return not (parts.scheme or parts.netloc)


def safe_next(target: str | None, default: str = DEFAULT_NEXT) -> str:
    """`target` when it is a same-site path (also once percent-decoded, since some clients decode), else
    `default`."""
    if not target or len(target) > MAX_NEXT_LENGTH:
        return default
    decoded = target
    for _ in range(3):  # %252F... : decode until stable, a bounded number of times
        if not _plain_path(decoded):
            return default
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    else:
        return default
    return target


def done(request: Any, location: str) -> Response[Any]:
    """The answer to a successful form post: HX-Redirect for htmx, 303 otherwise. `location` must be a path
    we built or one that went through `safe_next`."""
    if getattr(request, "htmx", False):
        return Response(b"", status_code=200, headers={"HX-Redirect": location})
    return Redirect(location, status_code=303)


__all__ = ["DEFAULT_NEXT", "done", "safe_next"]
