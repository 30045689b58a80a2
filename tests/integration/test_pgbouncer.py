"""The app through PgBouncer in transaction pooling (README "Scaling", DATABASE_PGBOUNCER).

A pgbouncer process of the test's own (Debian's package; skipped when it is not installed) sits between a
live server and this process's test database, with fewer server connections than the app has client
connections, so statements of different requests really share server connections. Over real HTTP and at
once: web sign-ins and signed-in pages, reseller API purchases and Monnify funding webhooks. No 5xx, the
balances are exact and the ledger reconciles (read on a direct connection).

The failure mode without the setting is shown too: a statement cached in one transaction is executed by
name in a later one, which PgBouncer may run on another server connection ("does not exist"). (asyncpg's
names, `__asyncpg_stmt_<n>__`, are numbered per process, so several processes behind one PgBouncer would
also collide: "already exists".)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.core.db import make_engine
from app.ledger.queries import wallet_balance
from app.ledger.reconcile import run_reconcile
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator
from tests.fakes.server import free_port, serve
from tests.helpers import log_in
from tests.integration.api_fixtures import DELIVERED, airtime, new_reseller

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
)
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer is not installed (Debian: apt-get install pgbouncer)"
)

SERVER_POOL = 3  # server connections PgBouncer keeps per database/user pair
APP_POOL = 8  # client connections of the served app: more than SERVER_POOL, so they share
RESELLERS, PURCHASES_EACH = 4, 6  # 24 API purchases at once
WEB_USERS = 5  # each signs in, is funded by a webhook and opens the signed-in pages
FUNDING = 500_000
AIRTIME_RESELLER_PRICE = (
    9_800  # N100 airtime at the reseller tier (tests/integration/test_api_concurrency.py)
)
PAGES = ("/dashboard", "/statement", "/purchases", "/buy/airtime", "/account/password")


@dataclass
class Bouncer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def url(self, database_url: str) -> str:
        """`database_url` (user, password, database name) through this PgBouncer."""
        url = make_url(database_url)
        return url.set(host="127.0.0.1", port=self.port, query={}).render_as_string(hide_password=False)

    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")

    def show(self, what: str) -> list[list[str]]:
        """Rows of the admin console's `SHOW <what>` (psql: the console speaks the simple protocol only)."""
        psql = shutil.which("psql")
        if psql is None:
            pytest.skip("psql is needed to read PgBouncer's admin console")
        console = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "pgbouncer_admin", "-d", "pgbouncer"]
        out = subprocess.run(
            [psql, *console, "-AtF", "|", "-c", f"SHOW {what}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout
        return [line.split("|") for line in out.splitlines() if line]


@contextlib.contextmanager
def pgbouncer(target_url: str, *, pool_size: int, ignore: str = "extra_float_digits") -> Iterator[Bouncer]:
    """A pgbouncer of our own in transaction pooling, in front of the server of `target_url`."""
    assert PGBOUNCER is not None
    target = make_url(target_url)
    host = target.host or str(target.query.get("host") or "127.0.0.1")  # a directory: a unix socket
    server_port = target.port or int(str(target.query.get("port") or 5432))
    # pgbouncer refuses to run as root: as root, it runs as nobody (TCP) or as the owner of the socket
    # directory (the embedded server's unix socket, which only its owner may reach).
    run_as = pwd.getpwuid(os.stat(host).st_uid if host.startswith("/") else 65534).pw_name
    roles = {"vtu_app", "vtu_owner", "pgbouncer_admin", str(target.username or "postgres")}
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="vtu-pgbouncer-"))
    directory.chmod(0o755)  # read by the unprivileged user pgbouncer switches to
    (directory / "users.txt").write_text("".join(f'"{role}" ""\n' for role in sorted(roles)))
    (directory / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "users.txt"}
admin_users = pgbouncer_admin
pool_mode = transaction
max_client_conn = 100
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
server_reset_query =
ignore_startup_parameters = {ignore}
"""
    )
    command = [PGBOUNCER, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command += ["-u", run_as]
    with (directory / "pgbouncer.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    bouncer = Bouncer(port, directory, process)
    try:
        deadline = time.monotonic() + 15
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start:\n{bouncer.log()}")
            time.sleep(0.05)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def bouncer(service_urls: dict[str, str]) -> Iterator[Bouncer]:
    with pgbouncer(service_urls["database_url"], pool_size=SERVER_POOL) as running:
        yield running


@pytest.fixture(scope="module")
def bounced_server(bouncer: Bouncer, settings: Any) -> Iterator[Any]:
    """The real app served over HTTP, its database connections going through PgBouncer."""
    from app.asgi import create_app

    through = dataclasses.replace(
        settings,
        database_url=bouncer.url(settings.database_url),
        database_pgbouncer=True,
        database_pool_size=APP_POOL,
        database_max_overflow=0,
        api_rate_limit_per_minute=0,
        api_daily_spend_limit_kobo=0,
    )
    with serve(create_app(through)) as server:
        yield server


async def _web_user(db: Any) -> Any:
    user = await create_user(db)
    await db.commit()
    return user


async def _browse(base_url: str, email: str) -> list[httpx.Response]:
    """Sign in and open every signed-in page, like one customer in a browser."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        signed_in = await log_in(client, email, PASSWORD)
        pages = [await client.get(path) for path in PAGES]
        return [signed_in, *pages]


async def test_the_app_works_through_pgbouncer_transaction_pooling(
    bouncer: Bouncer, bounced_server: Any, db: Any, sessionmaker: Any, settings: Any
) -> None:
    resellers = [await new_reseller(sessionmaker, fund=1_000_000) for _ in range(RESELLERS)]
    customers = [await _web_user(db) for _ in range(WEB_USERS)]
    sim = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )
    webhooks = [sim.build_webhook(user.account_reference, FUNDING) for user in customers]

    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=bounced_server.url, timeout=60, limits=limits) as http:

        async def buy(reseller: Any) -> httpx.Response:
            return await http.post(
                "/api/v1/purchases", json=airtime(DELIVERED), headers=reseller.buy_headers()
            )

        async def fund(body: bytes, signature: str) -> httpx.Response:
            return await http.post(
                "/payments/webhooks/monnify/",
                content=body,
                headers={"content-type": "application/json", "monnify-signature": signature},
            )

        results = await asyncio.gather(
            *(buy(r) for r in resellers for _ in range(PURCHASES_EACH)),
            *(fund(body, signature) for body, signature in webhooks),
            *(_browse(bounced_server.url, user.email) for user in customers),
            *(http.get("/api/v1/wallet", headers=r.headers) for r in resellers),
        )
        # ... and once more with every wallet funded: the pages read balances and history
        browsed_again = await asyncio.gather(*(_browse(bounced_server.url, u.email) for u in customers))
        # Readiness (its database probe has 2 s, too short for a queue behind 3 server connections on a
        # busy 2-core machine: asked once the burst is over).
        ready = await http.get("/ready")
    assert ready.status_code == 200, ready.text

    responses: list[httpx.Response] = []
    for item in [*results, *browsed_again]:
        responses.extend(item if isinstance(item, list) else [item])
    failed = [
        (r.request.method, r.request.url.path, r.status_code, r.text[:300])
        for r in responses
        if r.status_code >= 400
    ]
    assert not failed, f"{failed}\n--- pgbouncer log ---\n{bouncer.log()[-3000:]}"

    purchases = results[: RESELLERS * PURCHASES_EACH]
    assert {r.status_code for r in purchases} == {201}
    assert {r.json()["status"] for r in purchases} == {"successful"}
    funded = results[RESELLERS * PURCHASES_EACH : RESELLERS * PURCHASES_EACH + WEB_USERS]
    assert [r.status_code for r in funded] == [200] * WEB_USERS
    for browsed in [*results[RESELLERS * PURCHASES_EACH + WEB_USERS :][:WEB_USERS], *browsed_again]:
        signed_in, *pages = browsed
        assert signed_in.status_code == 303
        assert [p.status_code for p in pages] == [200] * len(PAGES)
    assert all(p.url.path == path for p, path in zip(browsed_again[0][1:], PAGES, strict=True))  # no redirect

    # Read on this process's direct connection (not through PgBouncer).
    async with sessionmaker() as session:
        for reseller in resellers:
            expected = 1_000_000 - PURCHASES_EACH * AIRTIME_RESELLER_PRICE
            assert await wallet_balance(session, reseller.user_id) == expected
        for user in customers:
            assert await wallet_balance(session, user.id) == FUNDING
    report = await run_reconcile(sessionmaker)
    assert report.ok, report.lines()

    # The server connections were really shared: more app clients than server connections, never more
    # server connections than the pool allows.
    clients = [row for row in bouncer.show("CLIENTS") if row[1] == "vtu_app"]
    servers = [row for row in bouncer.show("SERVERS") if row[1] == "vtu_app"]
    assert len(servers) <= SERVER_POOL < len(clients), (clients, servers)
    assert "prepared statement" not in bouncer.log()
    # ... and no prepared statement was left behind on them (asyncpg would close the last statement of each
    # transaction later, on whatever server connection its next one gets: app/core/db.py).
    assert await _prepared_statements_per_server(bouncer, settings) == [1] * SERVER_POOL  # (the count's own)


async def _prepared_statements_per_server(bouncer: Bouncer, settings: Any) -> list[int]:
    """pg_prepared_statements on every server connection: as many clients hold a transaction at once as
    PgBouncer has server connections, so each one reads another."""
    through = bouncer.url(settings.database_url)
    pooled = make_engine(
        dataclasses.replace(settings, database_url=through, database_pgbouncer=True),
        pool_size=SERVER_POOL,
        max_overflow=0,
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(pooled.connect()) for _ in range(SERVER_POOL)]
            count = text("SELECT count(*) FROM pg_prepared_statements")
            counts = [(await conn.execute(count)).scalar_one() for conn in conns]
            backends = {(await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() for conn in conns}
            assert len(backends) == SERVER_POOL  # one per server connection indeed
            return counts
    finally:
        await pooled.dispose()


async def test_the_fast_paths_run_in_a_transaction_only_through_pgbouncer(
    bouncer: Bouncer, settings: Any, engine: Any, sessionmaker: Any
) -> None:
    """The paths that skip BEGIN / COMMIT on a direct connection (`driver_connection`, `reads_only`) put
    their statements in a transaction under DATABASE_PGBOUNCER: the only unit PgBouncer keeps on one server
    connection (a statement's Parse and Bind go in two round trips; between them, another client may take
    the server connection: rare, so proven here by the contract rather than by waiting for the race)."""
    from app.core.db import driver_connection, make_sessionmaker, reads_only, uses_pgbouncer

    pooled = make_engine(
        dataclasses.replace(
            settings, database_url=bouncer.url(settings.database_url), database_pgbouncer=True
        )
    )
    try:
        assert uses_pgbouncer(pooled) and not uses_pgbouncer(engine)
        for eng, in_transaction in ((pooled, True), (engine, False)):
            async with driver_connection(eng) as conn:
                assert conn.is_in_transaction() is in_transaction
                assert await conn.fetchval("SELECT 42") == 42
            async with make_sessionmaker(eng)() as session:
                assert uses_pgbouncer(session) is in_transaction
                await reads_only(session)
                assert (await session.execute(text("SELECT 42"))).scalar_one() == 42
                raw = await (await session.connection()).get_raw_connection()
                assert raw.driver_connection.is_in_transaction() is in_transaction
        # A statement that fails inside `driver_connection` rolls its transaction back; the connection
        # goes on working.
        with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
            async with driver_connection(pooled) as conn:
                await conn.fetchval("SELECT 1 / 0")
        async with driver_connection(pooled) as conn:
            assert await conn.fetchval("SELECT 7") == 7
    finally:
        await pooled.dispose()


async def test_without_the_setting_a_cached_statement_meets_another_server_connection(
    service_urls: dict[str, str], settings: Any
) -> None:
    """DATABASE_PGBOUNCER=false through PgBouncer (`jit` ignored so the default connect arguments get in):
    a statement prepared (and cached) in one transaction is executed by name in the next one, which PgBouncer
    may run on another server connection, where no such statement exists. Made deterministic here: a second
    client holds the first server connection in an open transaction meanwhile. With the setting, the same
    steps work (every statement is prepared afresh, under a unique name, inside its transaction)."""
    with pgbouncer(service_urls["database_url"], pool_size=2, ignore="extra_float_digits,jit") as two:
        bounced = dataclasses.replace(settings, database_url=two.url(settings.database_url))

        async def steps(pgbouncer_mode: bool) -> None:
            engine = make_engine(
                dataclasses.replace(bounced, database_pgbouncer=pgbouncer_mode), pool_size=2, max_overflow=0
            )
            query = text("SELECT 41 + 1")
            try:
                async with engine.connect() as first, engine.connect() as second:
                    assert (await first.execute(query)).scalar_one() == 42  # prepared on server connection 1
                    await first.commit()  # ... which goes back to PgBouncer's pool
                    await second.execute(text("SELECT 1"))  # the second client holds it, in a transaction
                    assert (await first.execute(query)).scalar_one() == 42  # on server connection 2
                    await first.commit()
                    await second.commit()
            finally:
                await engine.dispose()

        await steps(pgbouncer_mode=True)
        with pytest.raises(DBAPIError, match=r"prepared statement .*__asyncpg_stmt_\w+__.* does not exist"):
            await steps(pgbouncer_mode=False)
