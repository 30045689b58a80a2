"""The anchor of `bench.pages`: a bare Litestar app with one route that renders a trivial Jinja template
through Litestar's template engine, served by `litestar run` exactly as `vtu run` serves the real app (see
bench/README.md, "pages").

    uv run litestar --app bench.bare_app:create_app run --host 127.0.0.1 --port 8001 --wc 2
"""

from __future__ import annotations

import logging.config
from pathlib import Path

from litestar import Litestar, get
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig

TEMPLATES = Path(__file__).resolve().parent / "templates"


@get("/", sync_to_thread=False)
def home() -> Template:
    return Template(template_name="bare.html", context={"name": "customer", "items": ["a", "b", "c"]})


@get("/ready", sync_to_thread=False)
def ready() -> dict[str, str]:
    return {"status": "ok"}


def _logging() -> None:
    """What the real app's logging does to uvicorn's access log (app/core/logging.py): below WARNING, so
    uvicorn still makes each access record and the level check drops it, the same work in both servers."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {"uvicorn.access": {"level": "WARNING"}},
        }
    )


def create_app() -> Litestar:
    _logging()
    return Litestar(
        route_handlers=[home, ready],
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        logging_config=None,
    )
