"""The integrator's guide as a page: `GET /api/guide` renders docs/api.md (the one copy of the guide) to HTML
on the server, once per process. Raw HTML in the Markdown is not passed through (escaped), and the page has
no script at all, so the site's CSP has nothing to allow."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from litestar import Controller, MediaType, Request, get
from litestar.response import Template
from markdown_it import MarkdownIt

from app.config.settings import BASE_DIR

GUIDE = BASE_DIR / "docs" / "api.md"


@lru_cache(maxsize=1)
def guide_html(path: Path = GUIDE) -> str:
    """docs/api.md as HTML (CommonMark plus tables; embedded HTML is escaped, not rendered)."""
    markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    html = markdown.enable("table").render(path.read_text(encoding="utf-8"))
    # Code blocks scroll sideways on phones: focusable, so keyboards can scroll them (WCAG 2.1.1,
    # docs/architecture.md "Accessibility"). Safe as a text replace: the Markdown's own HTML is escaped.
    return html.replace("<pre>", '<pre tabindex="0">')


class ApiGuideController(Controller):
    path = "/api/guide"
    include_in_schema = False

    @get("/", media_type=MediaType.HTML, name="api_guide")
    async def guide(self, request: Request[Any, Any, Any]) -> Template:
        return Template(template_name="api/guide.html", context={"guide": guide_html()})


__all__ = ["ApiGuideController", "guide_html"]
