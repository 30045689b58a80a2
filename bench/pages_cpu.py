"""CPU per request of the customer pages, in one process, no HTTP server: where bench.pages' time goes.

    uv run python -m bench.pages_cpu [--requests 300] [--customers 4] [--profile cprofile|none] [--page NAME]
    uv run --with pyinstrument python -m bench.pages_cpu --profile pyinstrument --page dashboard

The data of bench.pages (same seed, fewer customers) in a throwaway database; the app built by
`create_app` (APP_ENV=dev, stub provider, LOG_LEVEL=WARNING, as bench.pages' server); customers log in
through the real log-in form (Litestar's AsyncTestClient), then each page is requested `--requests` times by
calling the ASGI app directly (one request at a time, cookies and `accept-encoding: gzip` as bench.pages'
client sends them). Per page: CPU ms per request (`time.process_time`, this process only: the app's work,
not PostgreSQL's or Redis') and wall ms. The bare anchor app (bench/bare_app.py) is measured the same way.
With `--profile`, the top of a cProfile (cumulative) or a pyinstrument tree per page.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import os
import pstats
import time
from typing import Any

from bench.common import server, throwaway_database
from bench.pages import PAGES, PASSWORD, _content_problem, _seed


async def _call(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """One GET through the ASGI app, as uvicorn would make it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    body = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(body)


@dataclasses.dataclass(slots=True)
class Figures:
    cpu_ms: float
    wall_ms: float


async def _measure(
    app: Any, path: str, jars: list[dict[str, str]], requests: int, profile: str
) -> tuple[Figures, str]:
    headers_for = [
        [
            (b"accept-encoding", b"gzip, deflate"),
            (b"accept", b"text/html"),
            *([(b"cookie", "; ".join(f"{k}={v}" for k, v in jar.items()).encode())] if jar else []),
        ]
        for jar in jars
    ]
    for i in range(20):  # warm-up: templates compiled, statements prepared, pool filled
        status, _ = await _call(app, path, headers_for[i % len(headers_for)])
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}")
    profiler: Any = None
    if profile == "cprofile":
        profiler = cProfile.Profile()
    elif profile == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled", interval=0.0002)
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable() if profile == "cprofile" else profiler.start()
    for i in range(requests):
        status, _ = await _call(app, path, headers_for[i % len(headers_for)])
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}")
    if profiler is not None:
        profiler.disable() if profile == "cprofile" else profiler.stop()
    figures = Figures(
        (time.process_time() - cpu) / requests * 1000, (time.perf_counter() - wall) / requests * 1000
    )
    report = ""
    if profile == "cprofile":
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(
            os.environ.get("PAGES_CPU_SORT", "tottime")
        ).print_stats(int(os.environ.get("PAGES_CPU_TOP", "45")))
        report = out.getvalue()
    elif profile == "pyinstrument":
        report = profiler.output_text(unicode=False, color=False, show_all=False)
    return figures, report


async def _run_app(url: str, customers: list[Any], args: argparse.Namespace) -> None:
    import httpx

    from app.asgi import create_app
    from app.config.settings import get_settings

    os.environ.update({"DATABASE_URL": url, "APP_ENV": "dev", "LOG_LEVEL": "WARNING", "VTU_PROVIDER": "stub"})
    os.environ["KYC_LIMITS"] = ""  # seeded customers buy far more than a level-0 customer may
    get_settings.cache_clear()
    app = create_app()
    transport = httpx.ASGITransport(app=app)
    counts: dict[str, int] = {}
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
    ):
        jars = [await _log_in(client, customer) for customer in customers]
        _count_database_work(app.state.alchemy.get_engine().sync_engine, counts)
        for name, path in PAGES:
            if args.page and args.page != name:
                continue
            status, body = await _call(app, path, [(b"cookie", _cookie(jars[0]))])
            problem = _content_problem(path, body.decode(), customers[0]) if status == 200 else status
            if problem:
                raise RuntimeError(f"{name}: {problem}")
            counts.clear()
            figures, report = await _measure(app, path, jars, args.requests, args.profile)
            per = {k: v / (args.requests + 20) for k, v in counts.items()}
            print(
                f"{name:<14} CPU {figures.cpu_ms:6.2f} ms/request  wall {figures.wall_ms:6.2f} ms/request  "
                f"pool checkouts {per.get('checkout', 0):.1f}, SQLAlchemy statements "
                f"{per.get('statement', 0):.1f}, socket writes (PostgreSQL + Redis round trips) "
                f"{per.get('write', 0):.1f} per request"
            )
            if report:
                print(report)


async def _log_in(client: Any, customer: Any) -> dict[str, str]:
    """The real log-in form (CSRF token, throttles); the session's cookies."""
    import re

    client.cookies.clear()
    page = await client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on /login"
    data = {"email": customer.email, "password": PASSWORD, "_csrf_token": token.group(1)}
    answer = await client.post("/login", data=data, follow_redirects=False)
    if answer.status_code not in (302, 303):
        raise RuntimeError(f"log-in of {customer.email} failed: HTTP {answer.status_code}")
    return dict(client.cookies.items())


def _kept_database(srv: Any, args: argparse.Namespace) -> tuple[str, list[Any]]:
    """`--keep-database NAME`: made, migrated and seeded on first use; its customers read back later."""
    import subprocess
    import sys

    import asyncpg

    from bench.common import ROOT, _psql
    from bench.pages import Customer

    url = srv.url_for(args.keep_database)

    async def customers() -> list[Customer] | None:
        try:
            conn = await asyncpg.connect(url)
        except asyncpg.InvalidCatalogNameError:
            return None
        try:
            rows = await conn.fetch(
                "SELECT id, email, full_name FROM users WHERE email LIKE 'bench%' ORDER BY email"
            )
        except asyncpg.UndefinedTableError:
            return None
        finally:
            await conn.close()
        return [Customer(r["id"], r["email"], r["full_name"]) for r in rows] or None

    found = asyncio.run(customers())
    if found is None:
        _psql(srv, f'DROP DATABASE IF EXISTS "{args.keep_database}" WITH (FORCE)')
        _psql(srv, f'CREATE DATABASE "{args.keep_database}"')
        subprocess.run(
            [sys.executable, "-m", "app", "database", "upgrade", "--no-prompt"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url},
            check=True,
            capture_output=True,
        )
        found = asyncio.run(_seed(url, args, print))
    return url, found


def _count_database_work(engine: Any, counts: dict[str, int]) -> None:
    """Pool checkouts, statements sent through SQLAlchemy (not those sent on the driver connection) and
    socket writes of this process (each a round trip to PostgreSQL or Redis: the app is called without a
    server, so no HTTP write is counted), counted into `counts`."""
    from asyncio import selector_events

    from sqlalchemy import event

    transport = selector_events._SelectorSocketTransport
    write = transport.write

    def counted_write(self: Any, data: Any) -> None:
        counts["write"] = counts.get("write", 0) + 1
        write(self, data)

    transport.write = counted_write  # type: ignore[method-assign]

    def bump(name: str) -> Any:
        def listener(*_: Any, **__: Any) -> None:
            counts[name] = counts.get(name, 0) + 1

        return listener

    event.listen(engine.pool, "checkout", bump("checkout"))
    event.listen(engine, "before_cursor_execute", bump("statement"))


def _cookie(jar: dict[str, str]) -> bytes:
    return "; ".join(f"{k}={v}" for k, v in jar.items()).encode()


async def _run_bare(args: argparse.Namespace) -> None:
    from bench.bare_app import create_app

    app = create_app()
    async with app.lifespan():
        figures, report = await _measure(app, "/", [{}], args.requests, args.profile)
    print(
        f"{'bare template':<14} CPU {figures.cpu_ms:6.2f} ms/request  wall {figures.wall_ms:6.2f} ms/request"
    )
    if report:
        print(report)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per page (300)")
    parser.add_argument("--customers", type=int, default=4, help="signed-in customers, round robin (4)")
    parser.add_argument("--purchases", type=int, default=50, help="purchases per customer (50)")
    parser.add_argument("--fundings", type=int, default=5, help="Monnify fundings per customer (5)")
    parser.add_argument("--profile", choices=("none", "cprofile", "pyinstrument"), default="none")
    parser.add_argument(
        "--keep-database",
        default="",
        help="a database of this name, made and seeded once, then reused (drop it yourself afterwards)",
    )
    parser.add_argument("--page", default="", help="one page only (dashboard, statement, buy data)")
    args = parser.parse_args()
    args.concurrency = args.customers  # what bench.pages' seed reads
    srv = server()
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.requests} requests per page")
    if args.keep_database:
        url, customers = _kept_database(srv, args)
        asyncio.run(_run_app(url, customers, args))
    else:
        with throwaway_database(srv, "pages_cpu", migrate=True) as url:
            customers = asyncio.run(_seed(url, args, print))
            asyncio.run(_run_app(url, customers, args))
    asyncio.run(_run_bare(args))


if __name__ == "__main__":
    main()
