"""The per-key rate limit lives in Redis, so it holds across web processes: two real `vtu run` processes
(own ports, same database and Redis) share one key's budget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.server import free_port
from tests.integration.api_fixtures import new_reseller

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 5


def _start(port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "API_RATE_LIMIT_PER_MINUTE": str(LIMIT), "LOG_LEVEL": "WARNING"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group we started (uvicorn and its children)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def two_web_processes(service_urls, tmp_path_factory) -> Iterator[list[str]]:
    logs = tmp_path_factory.mktemp("web")
    ports = [free_port(), free_port()]
    procs = [_start(port, logs / f"web-{port}.log") for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 90
        for proc, url in zip(procs, urls, strict=True):
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = "\n".join(p.read_text()[-2000:] for p in logs.iterdir())
                    raise RuntimeError(f"vtu run did not start:\n{text}")
                time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            _stop(proc)


async def test_rate_limit_holds_across_two_processes(two_web_processes, clean_db, sessionmaker):
    one, other = await new_reseller(sessionmaker), await new_reseller(sessionmaker)
    a, b = two_web_processes
    async with httpx.AsyncClient(timeout=30) as client:
        statuses = []
        for i in range(LIMIT):  # alternate between the processes: together they spend the budget
            url = (a, b)[i % 2]
            statuses.append((await client.get(f"{url}/api/v1/wallet", headers=one.headers)).status_code)
        assert statuses == [200] * LIMIT
        for url in (a, b):
            limited = await client.get(f"{url}/api/v1/wallet", headers=one.headers)
            assert limited.status_code == 429, limited.text
            assert limited.json()["error"] == "rate_limited"
            assert 1 <= int(limited.headers["retry-after"]) <= 60
        # Another key of the same moment is not affected, on either process.
        for url in (a, b):
            assert (await client.get(f"{url}/api/v1/wallet", headers=other.headers)).status_code == 200
