"""The `vtu` console script: Litestar's CLI bound to app.asgi:create_app, plus our command groups."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", "app.asgi:create_app")
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default (FORWARDED_ALLOW_IPS): switched off so
    # that TRUSTED_PROXIES alone decides (app/core/proxies.py), for `vtu run` and its worker processes.
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    from app.config.settings import ConfigError

    try:
        from litestar.cli.main import litestar_group

        litestar_group(prog_name="vtu")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
