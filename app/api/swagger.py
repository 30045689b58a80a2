"""The page at /api/docs: Swagger UI from our own files, rendering the schema Litestar generates."""

from __future__ import annotations

import html
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin


class SelfHostedSwagger(OpenAPIRenderPlugin):
    """Swagger UI from our own static files (vendored swagger-ui-dist 5.31, Apache-2.0, in
    static/vendor/swagger-ui/) with no inline script or style, so the site's CSP (`script-src 'self'`)
    allows it and the docs work without a CDN."""

    def __init__(self, path: str = "/swagger") -> None:
        super().__init__(path=path)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        from app.core.static import static_url

        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        spec = html.escape(self.get_openapi_json_route(request))
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{title}</title>"
            f"<link rel='icon' href='{static_url('img/icon.svg')}' type='image/svg+xml'>"
            f"<link rel='stylesheet' href='{static_url('vendor/swagger-ui/swagger-ui.css')}'>"
            f"<link rel='stylesheet' href='{static_url('css/api-docs.css')}'>"
            f"<script src='{static_url('vendor/swagger-ui/swagger-ui-bundle.js')}' defer></script>"
            f"<script src='{static_url('js/api-docs.js')}' defer></script>"
            "</head><body>"
            "<p class='api-docs-links' id='api-docs-links'>"
            "New to the API? Read the <a href='/api/guide' id='api-guide-link'>integration guide</a> "
            "(authentication, idempotency, callbacks, sandbox numbers).</p>"
            f"<div id='swagger-ui' data-spec-url='{spec}'></div></body></html>"
        ).encode()


__all__ = ["SelfHostedSwagger"]
