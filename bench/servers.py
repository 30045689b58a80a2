"""uvicorn vs granian serving the same app: which ASGI server should `vtu run` use?

    uv run --with granian python -m bench.servers [--seconds 10] [--clients 32] [--workers 2] [--rounds 2]

The same app (`app.asgi:create_app`) on a freshly migrated throwaway database, two web processes each:
uvicorn through `vtu run --workers N` (what production runs) and granian (`granian --interface asgi
--factory --workers N`). For each server: a customer logs in through the real form, then `--clients`
keep-alive clients hammer `/health` and then the signed-in `/dashboard` (session in Redis, a few queries)
for `--seconds` each. Rounds alternate the order (uvicorn, granian, granian, uvicorn, ...) so neither always
runs on a warmer machine. Prints req/s and p99 per server and page; the anchor is the faster server on
the dashboard, and the last line is uvicorn's dashboard rate over it. granian is not a dependency of the
project: `uv run --with granian` brings it for this run only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.common import ROOT, RawHttpPool, free_port, run_workers, server, throwaway_database

EMAIL = "bench-customer@example.ng"
PASSWORD = "bench-Customer-password-1"
PAGES = (("health", "/health"), ("dashboard", "/dashboard"))


def _command(name: str, port: int, workers: int) -> list[str]:
    if name == "uvicorn":
        address = ["--host", "127.0.0.1", "--port", str(port)]
        return [sys.executable, "-m", "app", "run", *address, "--workers", str(workers)]
    granian = shutil.which("granian") or ""
    if not granian:
        raise SystemExit(
            "granian is not installed: run this with `uv run --with granian python -m bench.servers`"
        )
    return [
        *(granian, "--interface", "asgi", "--factory", "--workers", str(workers)),
        *("--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--no-ws", "app.asgi:create_app"),
    ]


@contextmanager
def _serving(name: str, database_url: str, workers: int) -> Iterator[int]:
    import httpx

    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "dev", "LOG_LEVEL": "WARNING"}
    env["FORWARDED_ALLOW_IPS"] = ""
    env["KYC_LIMITS"] = ""  # bench users buy far more than a level-0 customer may
    process = subprocess.Popen(
        _command(name, port, workers), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{name} did not become ready")
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def _log_in(port: int) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        page = await client.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token, "no CSRF token on /login"
        data = {"email": EMAIL, "password": PASSWORD, "_csrf_token": token.group(1)}
        answer = await client.post("/login", data=data, follow_redirects=False)
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"log-in failed: HTTP {answer.status_code}")
        if (await client.get("/dashboard")).status_code != 200:
            raise RuntimeError("the dashboard did not open after log-in")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def _hammer(port: int, clients: int, seconds: float) -> dict[str, tuple[float, float, int]]:
    """{page: (req/s, p99 ms, errors)} for each page in PAGES."""
    from bench.common import percentile

    cookie = await _log_in(port)
    figures = {}
    for page, path in PAGES:
        pool = RawHttpPool("127.0.0.1", port)
        await pool.connect(clients)

        async def one(worker: int, path: str = path, pool: RawHttpPool = pool) -> None:
            status, body = await pool.request(worker, "GET", path, headers={"cookie": cookie})
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}: {body[:200]!r}")

        for worker in range(clients):  # warm-up: every connection, both processes' caches
            await one(worker)
        result = await run_workers(one, workers=clients, seconds=seconds)
        await pool.aclose()
        errors = sum(result.errors.values())
        figures[page] = (result.rate, percentile(result.latencies, 99) * 1000, errors)
    return figures


def _create_customer(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "app", "users", "create", "--email", EMAIL, "--password", PASSWORD],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "APP_ENV": "dev"},
        check=True,
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    srv = server()
    results: dict[str, list[dict[str, tuple[float, float, int]]]] = {"uvicorn": [], "granian": []}
    with throwaway_database(srv, "servers", migrate=True) as url:
        _create_customer(url)
        order = ["uvicorn", "granian"]
        for round_ in range(args.rounds):
            for name in order if round_ % 2 == 0 else order[::-1]:
                with _serving(name, url, args.workers) as port:
                    figures = asyncio.run(_hammer(port, args.clients, args.seconds))
                results[name].append(figures)
                line = ", ".join(
                    f"{p} {r:,.0f}/s p99 {q:.1f} ms (errors {e})" for p, (r, q, e) in figures.items()
                )
                print(f"round {round_ + 1} {name}: {line}", flush=True)
    best: dict[str, dict[str, tuple[float, float]]] = {}
    for name, runs in results.items():
        best[name] = {}
        for page, _ in PAGES:
            rates = [run[page][0] for run in runs]
            p99s = [run[page][1] for run in runs]
            best[name][page] = (sum(rates) / len(rates), sum(p99s) / len(p99s))
            rate, p99 = best[name][page]
            print(f"{name} {page}: {rate:,.0f} req/s, p99 {p99:.1f} ms (mean of {len(runs)})")
    anchor = max(best, key=lambda name: best[name]["dashboard"][0])
    ratio = best["uvicorn"]["dashboard"][0] / best[anchor]["dashboard"][0]
    print(f"anchor: {anchor} (dashboard, {args.workers} processes, {args.clients} clients)")
    print(f"ratio uvicorn/{anchor} dashboard: {ratio:.2f}")


if __name__ == "__main__":
    main()
