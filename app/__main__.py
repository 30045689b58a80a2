"""The `vtu` console script: Litestar's CLI bound to app.asgi:create_app, plus our command groups.

Litestar's CLI imports Litestar and builds the whole application (plugins, routes, templates) before it runs
any command: ~5 s of CPU. Our commands that only need the settings and a database session, Redis or a
client program (FAST_COMMANDS) are dispatched without it: the same commands (app/cli.py), the same
options, output and exit codes, after the same start-up steps `create_app` takes (settings validated,
embedded services when DATABASE_URL/REDIS_URL are unset, logging, Sentry when configured). Everything else
(`vtu --help`, run, database, workers, dev, info, routes, ...) goes through Litestar's CLI, which lists
every command.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from click import Group

# Names from app/cli.py (users, services and DOMAIN_COMMANDS) whose commands need no Litestar app. `dev`
# stays with Litestar's CLI (it runs the web app and the worker).
FAST_COMMANDS = frozenset(
    {
        "users",
        "services",
        "seed",
        "dev-transfer",
        "ledger",
        "funding",
        "plans",
        "purchases",
        "apikeys",
        "backup",
        "keys",
    }
)


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", "app.asgi:create_app")
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default (FORWARDED_ALLOW_IPS): switched off so
    # that TRUSTED_PROXIES alone decides (app/core/proxies.py), for `vtu run` and its worker processes.
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    from app.config.settings import ConfigError

    args = sys.argv[1:]
    try:
        if args and args[0] in FAST_COMMANDS:
            _run_without_litestar(args)
        else:
            from litestar.cli.main import litestar_group

            litestar_group(prog_name="vtu")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)


def prepare_settings() -> None:
    """What `create_app` does before it builds the app (app/asgi.py), which Litestar's CLI runs before any
    command: refuse a bad configuration (ConfigError), start the embedded services when DATABASE_URL /
    REDIS_URL are unset outside prod, configure logging, start Sentry when SENTRY_DSN is set."""
    from app.config.settings import get_settings, validate

    settings = get_settings()
    validate(settings)
    if not (settings.database_url and settings.redis_url) and not settings.is_prod:
        from app.core.embedded import ensure_services

        ensure_services()
        settings = get_settings()
    from app.core.logging import configure_logging

    configure_logging(settings)
    from app.core.sentry import init_sentry

    init_sentry(settings, component="web")


def _root_group() -> Group:
    """A root group that parses and reports errors as Litestar's does (rich-click with its settings when
    installed, as litestar/cli/__init__.py configures it; `-h` and `--help`)."""
    context_settings = {"help_option_names": ["-h", "--help"]}
    try:
        import rich_click
    except ImportError:  # pragma: no cover - Litestar falls back to click likewise
        import click

        return click.Group(name="vtu", context_settings=context_settings)
    config = rich_click.rich_click
    config.TEXT_MARKUP = "rich"
    config.SHOW_ARGUMENTS = True
    config.GROUP_ARGUMENTS_OPTIONS = True
    config.STYLE_ERRORS_SUGGESTION = "magenta italic"
    config.ERRORS_SUGGESTION = ""
    config.ERRORS_EPILOGUE = ""
    config.MAX_WIDTH = 120
    config.THEME = "star"
    return rich_click.RichGroup(name="vtu", context_settings=context_settings)


def _run_without_litestar(args: list[str]) -> None:
    prepare_settings()
    from app.cli import load_command

    root = _root_group()
    root.add_command(load_command(args[0]))
    root.main(args=args, prog_name="vtu")


if __name__ == "__main__":
    main()
