"""Error pages in the site layout for browsers, redirects to login for anonymous visitors, JSON for APIs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE

from app.core.redirects import safe_next

log = structlog.get_logger("app.errors")

TITLES = {
    400: "That request did not look right",
    401: "Please log in",
    403: "You can't open this page",
    404: "Page not found",
    405: "That action isn't allowed here",
    413: "That upload is too large",
    422: "Please check the form",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    503: "We are briefly unavailable",
}


def request_path(request: Request[Any, Any, Any]) -> str:
    """The request's path from the ASGI scope: `request.url` parses the Host header, which raises on a
    malformed one (`Host: :Z`), and an error handler must never fail on the request it is answering."""
    return str(request.scope.get("path") or "")


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    path = request_path(request)
    if path.startswith(("/api/", "/payments/webhooks/", "/vtu/webhooks/")):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def render_error(
    request: Request[Any, Any, Any],
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    back: str | None = None,
) -> Response[Any]:
    title = title or TITLES.get(status, "Something went wrong")
    if request_path(request).startswith("/api/v1/"):  # no API route matched: answer in the API's error shape
        from app.api.errors import api_error_for_status

        return api_error_for_status(status, detail)
    if _wants_json(request):
        return Response(
            {"error": title.lower().replace(" ", "_"), "detail": detail or title}, status_code=status
        )
    headers = {}
    if _is_htmx(request):
        # Let htmx swap the message into the page's error area rather than silently ignoring the failure.
        headers = {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}
        return Template(
            template_name="partials/error_flash.html",
            context={"title": title, "detail": detail},
            status_code=status,
            headers=headers,
            media_type=MediaType.HTML,
        )
    return Template(
        template_name="core/error.html",
        context={"status": status, "title": title, "detail": detail, "back": back},
        status_code=status,
        media_type=MediaType.HTML,
    )


def not_authorized_handler(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    if _wants_json(request):
        return render_error(request, 401, exc.detail)
    query = request.scope.get("query_string", b"").decode("latin-1")
    target = request_path(request) + (f"?{query}" if query else "")
    location = f"/login?next={quote(target, safe='')}"
    if _is_htmx(request):
        return Response(b"", status_code=204, headers={"HX-Redirect": location})
    return Redirect(location, status_code=303)


def _this_site(request: Request[Any, Any, Any], url: str) -> bool:
    """`url` (an Origin or a Referer) names this site: same scheme, host and port as the request (the Host
    was checked against ALLOWED_HOSTS and the scheme comes from a trusted proxy: app/core/proxies.py)."""
    try:
        parts = urlsplit(url)
        return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)
    except ValueError:  # a malformed Origin / Referer, or a Host that is no host
        return False


def same_site_form_path(request: Request[Any, Any, Any]) -> str | None:
    """The path of the page a form was posted from, when the request demonstrably comes from this site
    (Origin, or without one the Referer, is ours) and the path is a plain same-site path (`safe_next`);
    else None."""
    origin = request.headers.get("origin")
    referer = request.headers.get("referer", "")
    if origin and origin != "null" and not _this_site(request, origin):
        return None
    if not referer or not _this_site(request, referer):
        return None
    parts = urlsplit(referer)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return safe_next(path, default="") or None


def permission_denied_handler(
    request: Request[Any, Any, Any], exc: PermissionDeniedException
) -> Response[Any]:
    detail = exc.detail
    if "CSRF" in (detail or ""):
        back = None if _is_htmx(request) else same_site_form_path(request)
        if back is not None:
            # A form of ours whose token no longer matches (the csrf cookie expired or was cleared, the page
            # sat open in a tab for days). Re-rendering the form with what was typed would mean echoing the
            # posted values into a page that carries a fresh, valid token: if the Origin/Referer check were
            # ever fooled, another site's POST would come back ready to resubmit with our token. So the
            # typed data is not kept: the customer goes back to the form (a plain GET of a checked same-site
            # path) and types it again. Nothing was done with the request.
            return render_error(request, 403, "Please try again.", title="This form expired", back=back)
        if _is_htmx(request):  # shown in #flash of the page the customer is looking at
            return render_error(request, 403, "Reload the page and try again.", title="This page has expired")
        detail = "This form has expired or was sent from another site. Reload the page and try again."
    return render_error(request, 403, detail)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    detail = exc.detail if status < 500 else None
    if status == 404:
        detail = "The page you asked for does not exist or has moved."
    if status >= 500:
        log.error("http_error", status=status, path=request_path(request), detail=exc.detail)
    response = render_error(request, status, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    from app.core.unavailable import RETRY_AFTER_SECONDS, unavailable_service

    service = unavailable_service(exc)
    if service is not None:  # PostgreSQL or Redis unreachable for a moment: not a bug, say so (503)
        log.warning("service_unavailable", service=service, path=request_path(request), error=repr(exc)[:300])
        detail = "Please try again in a minute. Nothing was charged twice."
        response = render_error(request, HTTP_503_SERVICE_UNAVAILABLE, detail)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    log.exception("unhandled_error", path=request_path(request), method=request.method, exc_info=exc)
    return render_error(request, HTTP_500_INTERNAL_SERVER_ERROR, None)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    NotAuthorizedException: not_authorized_handler,
    PermissionDeniedException: permission_denied_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}
