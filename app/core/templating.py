"""Jinja environment: filters and globals every template may use."""

from __future__ import annotations

import datetime

from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from app.config.settings import BASE_DIR
from app.core.flash import get_flashes
from app.core.lagos import LAGOS
from app.core.naira import format_naira
from app.core.static import static_url


def lagos_time(value: datetime.datetime | None, fmt: str = "%d %b %Y, %I:%M %p") -> str:
    """Customers read times in Lagos time (WAT), whatever the server's zone."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(LAGOS).strftime(fmt)


def _configure(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.filters["naira"] = format_naira
    env.filters["lagos"] = lagos_time
    env.globals["static_url"] = static_url
    env.globals["site_name"] = "TopUp NG"
    engine.register_template_callable("get_flashes", get_flashes)
    env.trim_blocks = True
    env.lstrip_blocks = True


def template_config(*, auto_reload: bool = True) -> TemplateConfig[JinjaTemplateEngine]:
    """`auto_reload`: Jinja checks each template file's modification time on every render (development:
    an edited template shows at once); off, compiled templates are kept for the process's life."""

    def configure(engine: JinjaTemplateEngine) -> None:
        _configure(engine)
        engine.engine.auto_reload = auto_reload

    return TemplateConfig(
        directory=BASE_DIR / "templates", engine=JinjaTemplateEngine, engine_callback=configure
    )
