"""schemathesis fuzzing from the served OpenAPI schema: valid and invalid requests to every /api/v1 operation,
with a real key and without one, never get a 5xx (and the ledger still reconciles afterwards: clean_db)."""

from __future__ import annotations

import asyncio
import time

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from app.vtu.plans import sync_plans
from app.vtu.providers.stub import StubProvider
from tests.integration import api_fixtures
from tests.integration.api_fixtures import new_reseller

api_server = api_fixtures.api_server
api = api_fixtures.api

EXAMPLES = 25  # per operation and mode: ~300 requests, well under 30 s
BUDGET_SECONDS = 60


async def test_no_generated_request_gets_a_server_error(api, sessionmaker):
    async with sessionmaker() as session:
        await sync_plans(session, StubProvider(), "mtn-data")
        await sync_plans(session, StubProvider(), "dstv")
    reseller = await new_reseller(sessionmaker, fund=50_000_000)

    def fuzz() -> list[str]:
        schema = schemathesis.openapi.from_url(f"{api.url}/api/docs/openapi.json").include(
            path_regex="^/api/v1/"
        )
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 10  # wallet, plans, services, purchases x3, callbacks, verify, bulk x2
        seen: list[str] = []
        started = time.monotonic()
        with requests.Session() as http:
            for operation in operations:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    for auth in (reseller.headers, {}):
                        examples = EXAMPLES if auth else 5

                        @settings(max_examples=examples, deadline=None, database=None,
                                  suppress_health_check=list(HealthCheck))  # fmt: skip
                        @given(case=operation.as_strategy(generation_mode=mode))
                        def check(case) -> None:
                            response = case.call(base_url=api.url, session=http, headers=auth, timeout=30)
                            seen.append(f"{case.method} {response.status_code}")
                            assert response.status_code < 500, (
                                f"{response.status_code} for {case.as_curl_command()}\n{response.text[:500]}"
                            )
                            if response.status_code >= 400:
                                body = response.json()
                                assert isinstance(body.get("error"), str) and isinstance(
                                    body.get("detail"), str
                                )
                            if not auth:
                                assert response.status_code == 401

                        check()
            assert time.monotonic() - started < BUDGET_SECONDS
        return seen

    seen = await asyncio.to_thread(fuzz)
    statuses = {s.split()[1] for s in seen}
    assert "200" in statuses and "400" in statuses and "401" in statuses, statuses


async def test_a_host_header_that_is_no_host_never_gets_a_500(api):
    """Found by the fuzzer: `Host: :Z` made the error handler itself raise (request.url parses the Host), so
    the answer was 500. A raw request over a socket, as a client could send it, for an API path and a page."""
    host, port = api.url.split("//", 1)[1].split(":")

    async def status_of(path: str, bad_host: str) -> int:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {bad_host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return int(status_line.split()[1])

    for bad_host in (":Z", ":\\", "[::1"):
        for path in ("/api/v1/purchases", "/dashboard", "/"):
            status = await status_of(path, bad_host)
            assert status < 500, (path, bad_host, status)  # refused or redirected, never a crash
