"""ASGI entry point: `create_app()` builds the Litestar application from the environment."""

from __future__ import annotations

from litestar import Litestar

from app.config.settings import Settings, get_settings, validate
from app.core.logging import configure_logging


def create_app(settings: Settings | None = None) -> Litestar:
    if settings is None:
        settings = get_settings()
        validate(settings)
        if not (settings.database_url and settings.redis_url) and not settings.is_prod:
            # Zero-setup: start (or reuse) the embedded PostgreSQL and Redis and re-read the settings.
            from app.core.embedded import ensure_services

            ensure_services()
            settings = get_settings()
    else:
        validate(settings)
    configure_logging(settings)
    from app.core.sentry import init_sentry

    init_sentry(settings, component="web")  # before the app is built: the Litestar integration patches it
    from app.api.openapi import BodySchemaPlugin
    from app.core.plugin import AppCore

    # BodySchemaPlugin is given here, not added by AppCore: OpenAPI schema plugins must come before Litestar's
    # own (which would take every msgspec struct), and AppCore can only append.
    return Litestar(plugins=[AppCore(settings), BodySchemaPlugin()])
