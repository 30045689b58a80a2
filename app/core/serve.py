"""`vtu run`: Litestar's run command, with any number of web processes and a graceful shutdown.

Litestar's own `run` caps `--wc` at the machine's cores + 1 and gives uvicorn no shutdown grace. This one
takes `--workers N` (1-64; `--wc`/`--web-concurrency` and WEB_CONCURRENCY are the same option) and starts N
uvicorn worker processes under uvicorn's supervisor, each building the app with `create_app`. Every other
option of Litestar's command keeps its name and meaning. docs/architecture.md "Processes".
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from types import FrameType

    from litestar.cli._utils import LitestarEnv

MAX_WORKERS = 64


class _Paths(click.Path):
    """A comma-separated list of paths (Litestar's CommaSplittedPath)."""

    envvar_list_splitter = ","


@click.command(name="run", help="Serve the app (uvicorn): `vtu run [--host H] [--port P] [--workers N]`.")
@click.option(
    "-r", "--reload", help="Reload on code changes (one process).", is_flag=True, envvar="LITESTAR_RELOAD"
)
@click.option("-R", "--reload-dir", type=_Paths(), multiple=True, help="Directories to watch.")
@click.option("-I", "--reload-include", type=_Paths(), multiple=True, help="Globs to watch.")
@click.option("-E", "--reload-exclude", type=_Paths(), multiple=True, help="Globs not to watch.")
@click.option("-p", "--port", type=int, default=8000, show_default=True, envvar="LITESTAR_PORT")
@click.option(
    "-W",
    "--workers",
    "--wc",
    "--web-concurrency",
    "workers",
    type=click.IntRange(min=1, max=MAX_WORKERS),
    default=1,
    show_default=True,
    envvar=["WEB_CONCURRENCY", "LITESTAR_WEB_CONCURRENCY"],
    help="Web worker processes (uvicorn's supervisor restarts one that dies). Default: WEB_CONCURRENCY or 1.",
)
@click.option("-H", "--host", default="127.0.0.1", show_default=True, envvar="LITESTAR_HOST")
@click.option("-F", "--fd", "--file-descriptor", type=int, default=None, help="Bind to this socket fd.")
@click.option("-U", "--uds", "--unix-domain-socket", default=None, help="Bind to a UNIX domain socket.")
@click.option("-d", "--debug", is_flag=True, envvar="LITESTAR_DEBUG", help="Debug mode.")
@click.option("-P", "--pdb", "--use-pdb", is_flag=True, envvar="LITESTAR_PDB", help="PDB on an exception.")
@click.option("--ssl-certfile", default=None, envvar="LITESTAR_SSL_CERT_PATH")
@click.option("--ssl-keyfile", default=None, envvar="LITESTAR_SSL_KEY_PATH")
@click.option("--create-self-signed-cert", is_flag=True, envvar="LITESTAR_CREATE_SELF_SIGNED_CERT")
def run_command(
    reload: bool,
    reload_dir: tuple[str, ...],
    reload_include: tuple[str, ...],
    reload_exclude: tuple[str, ...],
    port: int,
    workers: int,
    host: str,
    fd: int | None,
    uds: str | None,
    debug: bool,
    pdb: bool,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    create_self_signed_cert: bool,
    env: LitestarEnv,
) -> None:
    import uvicorn
    from litestar.cli._utils import create_ssl_files, validate_ssl_file_paths
    from litestar.cli.commands.core import _server_lifespan

    from app.config.settings import get_settings

    if debug:
        os.environ["LITESTAR_DEBUG"] = "1"
    if pdb:
        os.environ["LITESTAR_PDB"] = "1"
    reload = reload or bool(reload_dir or reload_include or reload_exclude)
    if reload and workers > 1:
        raise click.UsageError("--reload runs a single process: leave out --workers (or WEB_CONCURRENCY)")
    certfile, keyfile = (
        create_ssl_files(ssl_certfile, ssl_keyfile, host)
        if create_self_signed_cert
        else validate_ssl_file_paths(ssl_certfile, ssl_keyfile)
    )
    settings = get_settings()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "fd": fd,
        "uds": uds,
        "factory": env.is_app_factory,
        "workers": workers,
        "reload": reload,
        "reload_dirs": list(reload_dir) or None,
        "reload_includes": list(reload_include) or None,
        "reload_excludes": list(reload_exclude) or None,
        "ssl_certfile": certfile,
        "ssl_keyfile": keyfile,
        # TRUSTED_PROXIES alone decides whose X-Forwarded-* is believed (app/core/proxies.py)
        "proxy_headers": False,
        "forwarded_allow_ips": "",
        # SIGTERM: stop accepting, let requests in flight finish for up to this long, then cancel them
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds or None,
    }
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully (the process would then end
    # "killed by SIGTERM"): a clean stop exits 0, also when SIGTERM comes before the server is up.
    signal.signal(signal.SIGTERM, _exit_zero)
    # One process: serve the app the CLI has already built (create_app, ~2 s of CPU) instead of building it
    # a second time from its import path. Several processes or reloading need the import path.
    single = workers == 1 and not reload
    with _server_lifespan(env.app):
        if single:
            uvicorn.run(env.app, **{**options, "factory": False})
        else:
            uvicorn.run(env.app_path, **options)


def _exit_zero(_signum: int, _frame: FrameType | None) -> None:
    sys.exit(0)
