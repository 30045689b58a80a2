"""AppCore: the one plugin that wires settings, database, Redis, sessions, CSRF, templates, routes and CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar.config.compression import CompressionConfig
from litestar.config.csrf import CSRFConfig
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.plugins import CLIPluginProtocol, InitPluginProtocol
from litestar.stores.redis import RedisStore
from litestar_htmx import HTMXPlugin
from litestar_saq import SAQPlugin

from app.config.settings import Settings
from app.core.db import alchemy_config
from app.core.errors import EXCEPTION_HANDLERS
from app.core.hosts import AllowedHostsMiddleware
from app.core.metrics import HttpMetricsMiddleware, metrics_endpoint
from app.core.proxies import ProxyHeadersMiddleware
from app.core.pwa import PATHS as PWA_PATHS
from app.core.redis import make_redis
from app.core.request_context import RequestContextMiddleware, add_request_id_header
from app.core.sentry import enable_asyncio
from app.core.templating import template_config
from app.dashboard.queue_ui import CSRF_EXEMPT as QUEUE_UI_CSRF_EXEMPT
from app.dashboard.queue_ui import INLINE_SCRIPT_HASH as QUEUE_UI_SCRIPT_HASH
from workers.runner import WorkersCLI
from workers.settings import saq_config

if TYPE_CHECKING:
    from click import Group
    from litestar import Litestar
    from litestar.config.app import AppConfig

# Paths that authenticate by signature, secret URL token or API key instead of a browser session
# (/metrics: METRICS_TOKEN, app/core/metrics.py).
CSRF_EXEMPT = [r"^/payments/webhooks/", r"^/vtu/webhooks/", r"^/api/", r"^/metrics$"]


class AppCore(InitPluginProtocol, CLIPluginProtocol):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_cli_init(self, cli: Group) -> None:
        from app.cli import register_commands

        register_commands(cli)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        from app.accounts.auth import SessionUserMiddleware
        from app.accounts.sessions import RotatingSessionConfig
        from app.api.openapi import COMPONENTS as API_COMPONENTS
        from app.api.swagger import SelfHostedSwagger
        from app.routes import route_handlers

        settings = self.settings
        alchemy = alchemy_config(settings)
        redis = make_redis(settings.redis_url)
        templates = template_config(auto_reload=settings.app_env == "dev")  # test and prod: compiled once
        saq = saq_config(settings)

        app_config.debug = settings.debug
        app_config.state = State({"settings": settings, "redis": redis, "alchemy": alchemy, "saq": saq})
        app_config.route_handlers.extend(route_handlers(dev_pages=not settings.is_prod))
        app_config.route_handlers.append(metrics_endpoint)  # GET /metrics (METRICS_TOKEN), not in OpenAPI
        app_config.template_config = templates
        # HTMXPlugin replaces signature_types, so it must come before the other plugins. Appended (not
        # inserted in front): Litestar is iterating this list while it calls us.
        app_config.plugins.extend(
            [
                HTMXPlugin(),
                SQLAlchemyPlugin(config=alchemy),
                SAQPlugin(saq),
                WorkersCLI(),  # after SAQPlugin: our `vtu workers run` replaces its own (workers/runner.py)
            ]
        )
        app_config.stores = {
            "sessions": RedisStore(redis, namespace="sessions"),
            "cache": RedisStore(redis, namespace="cache"),
        }
        app_config.response_cache_config = ResponseCacheConfig(store="cache")
        session = RotatingSessionConfig(
            store="sessions",
            key=cookie_name("vtu_session", settings),
            max_age=settings.session_max_age_seconds,
            secure=settings.cookie_secure,
            httponly=True,
            samesite="lax",
            # Machine-to-machine paths never read or write a browser session (no Redis round trips), nor do
            # the installable app's files: they are the same for everyone and may be kept (app/core/pwa.py).
            exclude=[r"^/static/", r"^/health$", r"^/ready$", *CSRF_EXEMPT, *PWA_PATHS],
        )
        # Outermost first: the request id and a fresh log context, the HTTP metrics (by route template),
        # the real client and scheme (TRUSTED_PROXIES), then the Host check (ALLOWED_HOSTS, port ignored;
        # Litestar's AllowedHostsConfig compares the port too), then sessions.
        app_config.middleware[:0] = [
            RequestContextMiddleware,
            HttpMetricsMiddleware,
            DefineMiddleware(ProxyHeadersMiddleware, trusted_proxies=settings.trusted_proxies),
            DefineMiddleware(AllowedHostsMiddleware, allowed_hosts=settings.allowed_hosts),
            session.middleware,
            DefineMiddleware(
                SessionUserMiddleware, exclude=[r"^/static/", r"^/health$", *CSRF_EXEMPT, *PWA_PATHS]
            ),
        ]
        app_config.csrf_config = CSRFConfig(
            secret=settings.secret_key,
            cookie_name=cookie_name("vtu_csrf", settings),
            cookie_secure=settings.cookie_secure,
            cookie_samesite="lax",
            header_name="x-csrftoken",
            # SAQ's job UI posts without our token; an Origin check guards it (app/dashboard/queue_ui.py)
            exclude=[*CSRF_EXEMPT, QUEUE_UI_CSRF_EXEMPT],
        )
        app_config.compression_config = CompressionConfig(
            backend="gzip", minimum_size=500, gzip_compress_level=6, exclude=[r"^/static/"]
        )
        app_config.exception_handlers = {**EXCEPTION_HANDLERS, **app_config.exception_handlers}
        app_config.openapi_config = OpenAPIConfig(
            title="VTU Platform API",
            version="1.0.0",
            path="/api/docs",
            render_plugins=[SelfHostedSwagger()],  # vendored, CSP-clean (app/api/swagger.py)
            components=API_COMPONENTS,  # the reseller API's bearer scheme (app/api/openapi.py)
            description="Reseller API v1: see docs/api.md. Amounts are integer kobo.",
        )
        app_config.on_startup.extend([enable_asyncio, _start_runtimes])
        app_config.on_shutdown.extend([_stop_runtimes, _close_redis])
        app_config.before_send.append(_security_headers_prod if settings.is_prod else _security_headers)
        app_config.before_send.append(_request_id_header)  # every answer, also a 404 no route matched
        return app_config


async def _close_redis(app: Litestar) -> None:
    await app.state.redis.aclose()


async def _start_runtimes(app: Litestar) -> None:
    """Per-process helpers that need the engine and the queue (created by the plugins' own start-up)."""
    from app.core.db import watch_connections
    from app.core.roles import check_connected_role

    engine = app.state.alchemy.get_engine()
    watch_connections(engine)  # live connections without a ping per checkout (app/core/db.py)
    await check_connected_role(engine, app.state.settings)
    from app.payments.runtime import FundingRuntime
    from app.vtu.runtime import VtuRuntime
    from workers.settings import QUEUE_NAME

    queue = app.state.saq.get_queues().get(QUEUE_NAME)
    await queue.connect()
    sessionmaker = app.state.alchemy.create_session_maker()
    app.state.funding = FundingRuntime(app.state.settings, queue, sessionmaker)
    # redis: provider health (breakers, floats, staff routes), app/vtu/provider_health.py
    app.state["vtu"] = VtuRuntime(app.state.settings, sessionmaker, queue=queue, redis=app.state.redis)
    from app.mail.outbox import use_queue

    use_queue(queue)  # e-mails recorded by requests are handed to the worker after their commit


async def _stop_runtimes(app: Litestar) -> None:
    from app.vtu.runtime import close_vtu

    funding = app.state.get("funding")
    if funding is not None:
        await funding.aclose()
    await close_vtu(app)


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; "
        # ...and one known inline script: SAQ's job UI names its own path (app/dashboard/queue_ui.py)
        + f"script-src 'self' '{QUEUE_UI_SCRIPT_HASH}'; ".encode()
        # The service worker and the manifest (app/core/pwa.py): default-src covers them already; said
        # explicitly so a later change of default-src cannot break the installable app unnoticed.
        + b"worker-src 'self'; manifest-src 'self'; "
        + b"frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    ),
]


# Prod is served over HTTPS only: browsers must never try plain HTTP for this host again.
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
NO_STORE = (b"cache-control", b"no-store")


def cookie_name(name: str, settings: Settings) -> str:
    """`__Host-` in prod: the browser then only accepts the cookie from this exact host over HTTPS with
    Path=/ (no sibling subdomain or plain-HTTP page can plant or overwrite it)."""
    return f"__Host-{name}" if settings.cookie_secure else name


def _add_headers(message: Any, scope: Any, extra: list[tuple[bytes, bytes]]) -> None:
    headers = message.setdefault("headers", [])
    existing = {bytes(name).lower() for name, _ in headers}
    for name, value in [*SECURITY_HEADERS, *extra]:
        if name not in existing:
            headers.append((name, value))
    # Whatever a signed-in user (or an API key) is shown is theirs alone: never kept by the browser or a
    # proxy, so Back after Log out on a shared phone shows nothing.
    if scope.get("user") is not None:
        for i, (name, _) in enumerate(headers):
            if bytes(name).lower() == b"cache-control":
                headers[i] = NO_STORE
                break
        else:
            headers.append(NO_STORE)


async def _request_id_header(message: Any, scope: Any) -> None:
    if message["type"] == "http.response.start":
        add_request_id_header(message, scope)


async def _security_headers(message: Any, scope: Any) -> None:
    if message["type"] == "http.response.start":
        _add_headers(message, scope, [])


async def _security_headers_prod(message: Any, scope: Any) -> None:
    if message["type"] == "http.response.start":
        _add_headers(message, scope, [HSTS])
