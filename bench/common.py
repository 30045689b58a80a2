"""Shared benchmark plumbing: the server, throwaway databases, pgbench, concurrent workers, statistics.

Benchmarks run against the embedded PostgreSQL (or DATABASE_URL's server) in databases they create and
drop themselves, so they never touch development or test data.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Server:
    """Where the PostgreSQL server is, in the pieces libpq tools want."""

    url: str  # libpq URL of the maintenance database
    host: str  # host name or unix socket directory
    port: str
    user: str
    password: str

    def url_for(self, database: str) -> str:
        parsed = urlparse(self.url)
        return parsed._replace(path=f"/{database}").geturl()

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PGHOST": self.host, "PGPORT": self.port, "PGUSER": self.user}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def server() -> Server:
    """Start or reuse the embedded PostgreSQL (unless DATABASE_URL points elsewhere)."""
    from app.core.embedded import ensure_services

    url = ensure_services(export=False).database_url.replace("+asyncpg", "")
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    host = query.get("host", [parsed.hostname or "localhost"])[0]
    return Server(
        url=parsed._replace(path="/postgres").geturl(),
        host=host,
        port=str(query.get("port", [parsed.port or 5432])[0]),
        user=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password or ""),
    )


def _psql(srv: Server, sql: str) -> None:
    from app.core.embedded import postgres_bin_dir

    psql = postgres_bin_dir() / "psql"
    subprocess.run(
        [str(psql) if psql.exists() else "psql", "-X", "-q", "-d", "postgres", "-c", sql],
        env=srv.env(),
        check=True,
        capture_output=True,
    )


@contextmanager
def throwaway_database(srv: Server, name: str, *, migrate: bool = False) -> Iterator[str]:
    """A fresh database (migrated with the project's Alembic migrations if asked); dropped afterwards."""
    database = f"bench_{name}_{os.getpid()}"
    _psql(srv, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _psql(srv, f'CREATE DATABASE "{database}"')
    url = srv.url_for(database)
    try:
        if migrate:
            subprocess.run(
                [sys.executable, "-m", "app", "database", "upgrade", "--no-prompt"],
                cwd=ROOT,
                env={**os.environ, "DATABASE_URL": url},
                check=True,
                capture_output=True,
            )
        yield url
    finally:
        _psql(srv, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@dataclass(frozen=True, slots=True)
class PgbenchResult:
    tps: float
    latency_ms: float
    transactions: int
    seconds: float
    clients: int
    scale: int | None = None  # tpcb-like runs only


class Pgbench:
    """pgbench on one database: its built-in tpcb-like script (after `initialise`), or a custom script."""

    def __init__(self, srv: Server, database: str, *, clients: int = 20, threads: int = 2) -> None:
        from app.core.embedded import pgbench_path

        self.srv, self.database, self.clients, self.threads = srv, database, clients, threads
        self.base = [pgbench_path(), "-h", srv.host, "-p", srv.port, "-U", srv.user]
        self.scale: int | None = None

    def initialise(self, scale: int) -> None:
        """`pgbench -i -s scale` (tpcb-like tables). pgbench's documentation: the scale factor should be at
        least the number of clients. Each tpcb-like transaction updates one of `scale` pgbench_branches rows,
        so with fewer branches than clients the clients queue on those row locks (at scale 1, all on one):
        the anchor then measures lock waits, not the server (about half the tps on a 2-core machine)."""
        if scale < self.clients:
            raise ValueError(f"pgbench scale {scale} is below its {self.clients} clients")
        subprocess.run(
            [*self.base, "-i", "-q", "-s", str(scale), self.database],
            env=self.srv.env(),
            check=True,
            capture_output=True,
        )
        self.scale = scale

    def run(self, seconds: int, *, script: Path | None = None, prepared: bool = False) -> PgbenchResult:
        """tpcb-like (needs `initialise`), or `script` (a pgbench script file, `-f`). `prepared`:
        `-M prepared` (statements parsed and planned once per connection, as asyncpg does)."""
        if script is None and self.scale is None:
            raise RuntimeError("initialise the tpcb-like tables first")
        args = ["-c", str(self.clients), "-j", str(self.threads), "-T", str(seconds), "-n"]
        args += ["-f", str(script)] if script is not None else []
        args += ["-M", "prepared"] if prepared else []
        done = subprocess.run(
            [*self.base, *args, self.database],
            env=self.srv.env(),
            check=False,
            capture_output=True,
            text=True,
        )
        tps = re.search(r"tps = ([\d.]+)", done.stdout)
        latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
        count = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
        if done.returncode != 0 or not (tps and latency and count):
            raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return PgbenchResult(
            float(tps.group(1)),
            float(latency.group(1)),
            int(count.group(1)),
            float(seconds),
            self.clients,
            self.scale if script is None else None,
        )


@contextmanager
def pgbench_database(
    srv: Server, *, clients: int = 20, threads: int = 2, scale: int | None = None
) -> Iterator[Pgbench]:
    """A throwaway database initialised for tpcb-like runs on the same server, at a scale of at least the
    number of clients (default: exactly that; see Pgbench.initialise for why)."""
    with throwaway_database(srv, "pgbench") as url:
        bench = Pgbench(srv, urlparse(url).path.lstrip("/"), clients=clients, threads=threads)
        bench.initialise(clients if scale is None else scale)
        yield bench


def pgbench_tpcb(
    srv: Server, *, clients: int = 20, threads: int = 2, seconds: int = 15, scale: int | None = None
) -> PgbenchResult:
    """One tpcb-like run in its own throwaway database (`pgbench -i -s S`, S >= clients; then `-c -j -T`)."""
    with pgbench_database(srv, clients=clients, threads=threads, scale=scale) as bench:
        return bench.run(seconds)


def describe_pgbench(label: str, result: PgbenchResult) -> str:
    scale = f", scale {result.scale}" if result.scale is not None else ""
    latency = f"avg latency {result.latency_ms:.2f} ms"
    return f"{label}: {result.tps:,.0f} tps ({result.clients} clients{scale}, {latency})"


@dataclass(slots=True)
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful operations only
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu: float = 0.0  # CPU seconds this (client) process used during the run

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; 0.0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def mean(samples: list[float]) -> float:
    return statistics.fmean(samples) if samples else 0.0


async def run_workers(
    operation: Callable[[int], Awaitable[None]], *, workers: int, seconds: float
) -> LoadResult:
    """Call `operation(worker_index)` in a loop from `workers` concurrent tasks for `seconds`.

    Latency is measured per successful call; exceptions are counted by type and do not stop the worker.
    """
    result = LoadResult(seconds=seconds)
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        clock = time.perf_counter
        while (start := clock()) < deadline:
            try:
                await operation(index)
            except Exception as exc:
                name = type(exc).__name__
                result.errors[name] = result.errors.get(name, 0) + 1
            else:
                result.latencies.append(clock() - start)

    started, cpu_before = time.perf_counter(), _cpu_seconds()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    result.seconds = time.perf_counter() - started
    result.client_cpu = _cpu_seconds() - cpu_before
    return result


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_async(coroutine: Coroutine[Any, Any, T], *, loop: str = "uvloop") -> T:
    """asyncio.run on uvloop (what uvicorn uses when installed) or on the standard loop."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def describe(label: str, result: LoadResult) -> str:
    errors = ", ".join(f"{k}={v}" for k, v in sorted(result.errors.items())) or "none"
    cpu = result.client_cpu / result.ok * 1e6 if result.ok else 0.0
    return (
        f"{label}: {result.rate:,.0f}/s ({result.ok:,} in {result.seconds:.1f} s), "
        f"p50 {result.percentile_ms(50):.2f} ms, p99 {result.percentile_ms(99):.2f} ms, "
        f"client CPU {cpu:.0f} us/op ({result.client_cpu / result.seconds:.0%} of a core), errors: {errors}"
    )


class RawHttpPool:
    """A minimal HTTP/1.1 keep-alive client: one connection per load worker, a few µs of CPU per request.

    The load generator shares the machine's two cores with the server under test; httpx costs ~3 ms of CPU
    per request, which would bench the client more than the server. Only what the benchmarks need:
    requests with a body or without, responses with Content-Length.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def connect(self, workers: int, spacing_seconds: float = 0.01) -> None:
        """Open the workers' connections one at a time. Opened in a burst, they would mostly land on one
        web process (the first to wake accepts every pending connection), leaving the others idle for the
        whole run; one at a time, each is accepted by whichever process is free at that moment."""
        for worker in range(workers):
            if worker not in self._connections:
                self._connections[worker] = await asyncio.open_connection(self.host, self.port)
                await asyncio.sleep(spacing_seconds)

    async def request(
        self, worker: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        status, _, payload = await self.exchange(worker, method, path, body, headers)
        return status, payload

    async def exchange(
        self, worker: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, bytes]:
        """`request`, with the response's head (status line and headers, raw) too."""
        connection = self._connections.get(worker)
        if connection is None:
            connection = await asyncio.open_connection(self.host, self.port)
            self._connections[worker] = connection
        reader, writer = connection
        lines = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        lines.append(f"content-length: {len(body)}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self._connections.pop(worker, None)
            writer.close()
            raise
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await reader.readexactly(length) if length else b""
        if b"connection: close" in head.lower():
            self._connections.pop(worker, None)
            writer.close()
        return status, head, payload

    def discard(self, worker: int) -> None:
        """Close `worker`'s connection (e.g. a timeout left it mid-answer); the next request opens one."""
        connection = self._connections.pop(worker, None)
        if connection is not None:
            connection[1].close()

    async def aclose(self) -> None:
        for _, writer in self._connections.values():
            writer.close()
        self._connections.clear()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def app_server(
    database_url: str, env: dict[str, str], *, web_workers: int = 2, port: int = 0, stderr: Any = None
) -> Iterator[str]:
    """The real app (`vtu run --wc N`) on a free port against `database_url`; yields its base URL once
    /ready answers. Its own process group (`vtu run` hands over to a uvicorn child) is stopped as a whole.
    `stderr`: where its logs go (a file; default: this process's stderr)."""
    import signal

    import httpx

    port = port or free_port()
    command = [sys.executable, "-m", "app", "run", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--wc", str(web_workers)]
    # KYC_LIMITS off: bench users buy far more than a level-0 customer may (figures stay comparable)
    full_env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "dev", "LOG_LEVEL": "WARNING",
                "KYC_LIMITS": "", **env}  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the app did not become ready")
        yield base
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


# Targets, restated on 7 Dec against the honest anchors (pgbench tpcb-like at scale >= clients; the scale-1
# anchor of earlier rounds measured about half the server). Each is a floor a little under the quiet figure
# measured then, so a regression shows; bench/README.md keeps the figures behind them.
TARGETS = {
    "ledger_post from pgbench/pgbench": 0.69,  # the single-function SQL ledger we compare with: 0.69-0.77
    "ledger/pgbench": 0.28,  # the Python posting path (measured 0.31)
    "purchases/pgbench": 0.08,  # reseller API over HTTP, stub provider (measured 0.10)
    "webhooks/pgbench": 0.10,  # signed Monnify webhooks, 2 processes (measured 0.12)
    # customer pages / a bare Litestar + Jinja app: out of reach for any signed-in page (the signed-in floor
    # measured in the same run reaches 0.17-0.19; bench/README.md "pages")
    "pages": 0.35,
}


def ratio_line(name: str, value: float) -> str:
    """`ratio <name>: 0.31 (target >= 0.28: met)` -- the last line a benchmark prints."""
    target = TARGETS.get(name)
    if target is None:
        return f"ratio {name}: {value:.2f}"
    verdict = "met" if value >= target else "BELOW TARGET"
    return f"ratio {name}: {value:.2f} (target >= {target:.2f}: {verdict})"
