"""The `vtu` console script: Litestar's CLI bound to app.asgi:create_app, plus our command groups."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", "app.asgi:create_app")
    from app.config.settings import ConfigError

    try:
        from litestar.cli.main import litestar_group

        litestar_group(prog_name="vtu")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
