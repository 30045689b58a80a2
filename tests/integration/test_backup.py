"""`vtu backup create|restore` as real processes: pg_dump of a database with users, fundings and purchases,
restored into a fresh database on the same server, proves the same rows, the same balances and a clean
`vtu ledger reconcile`; retention keeps exactly N; a non-empty target is refused with nothing changed."""

from __future__ import annotations

import dataclasses
import datetime
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio
from sqlalchemy.engine import make_url

from app.core.roles import DEV_APP_ROLE, DEV_OWNER_ROLE
from app.vtu.config import VtuConfig
from app.vtu.models import FAILED, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import StubProvider
from tests.factories import create_user
from tests.integration.purchase_fixtures import fund_wallet, make_service, new_buyer


def _vtu(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


def _url(url: str, *, database: str | None = None, role: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    if role:
        parsed = parsed.set(username=role)
    return parsed.render_as_string(hide_password=False)


async def _snapshot(url: str) -> dict[str, Any]:
    """Row counts of every table and every ledger account's balance."""
    conn = await asyncpg.connect(_url(url))
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public'"
        )
        counts = {r["t"]: await conn.fetchval(f"SELECT count(*) FROM {r['t']}") for r in tables}
        balances = [
            tuple(r)
            for r in await conn.fetch("SELECT code, kind, balance FROM ledger_accounts ORDER BY code")
        ]
        wallets = await conn.fetch(
            "SELECT u.email, a.balance FROM users u JOIN ledger_accounts a ON a.user_id = u.id"
            " WHERE a.kind = 'wallet' ORDER BY u.email"
        )
        return {"counts": counts, "balances": balances, "wallets": [tuple(w) for w in wallets]}
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_database(service_urls: dict[str, str]) -> AsyncIterator[str]:
    """An empty database owned by the owner role on the test server; the superuser URL of it."""
    base = service_urls["superuser_database_url"]
    name = f"vtu_restore_{os.getpid()}"
    admin = await asyncpg.connect(_url(base, database="postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{DEV_OWNER_ROLE}"')
        yield _url(base, database=name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _shop(db: Any, sessionmaker: Any, settings: Any) -> None:
    """Users (through sign-up), fundings and purchases: delivered ones and a failed, refunded one."""
    for _ in range(3):
        user = await create_user(db)
        await db.commit()
        await fund_wallet(sessionmaker, user.id, 250_000)
    harness = make_service(
        sessionmaker,
        dataclasses.replace(settings, vtu_provider="stub"),
        config=VtuConfig(airtime_min_kobo=100),
        providers={"stub": StubProvider()},
    )
    try:
        buyer = await new_buyer(sessionmaker, fund=1_000_000)
        for amount in (10_000, 20_000, 30_000):
            bought = await harness.service.buy(
                buyer, PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=amount)
            )
            assert bought.status == SUCCESSFUL
        failed = await harness.service.buy(
            buyer, PurchaseRequest(service_id="mtn", phone="08099999999", amount_kobo=5_000)
        )
        assert failed.status == FAILED
    finally:
        await harness.aclose()


async def test_backup_then_restore_into_a_fresh_database(
    db, sessionmaker, settings, service_urls, fresh_database, tmp_path: Path
) -> None:
    await _shop(db, sessionmaker, settings)
    source = await _snapshot(service_urls["superuser_database_url"])
    assert source["counts"]["users"] == 4 and source["counts"]["purchases"] == 4
    assert source["counts"]["ledger_transactions"] >= 4 + 3 + 2

    backups = tmp_path / "backups"
    made = _vtu("backup", "create", BACKUP_DIR=str(backups))
    assert made.returncode == 0, made.stderr
    [archive] = list(backups.iterdir())
    assert f"backup written: {archive}" in made.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert archive.stat().st_size > 10_000

    target = _url(fresh_database, role=DEV_OWNER_ROLE)
    restored = _vtu("backup", "restore", str(archive), "--target-url", target)
    assert restored.returncode == 0, restored.stderr
    assert "ledger reconcile: OK" in restored.stdout and "drift: none" in restored.stdout
    copy = await _snapshot(fresh_database)
    assert copy == source
    assert sum(balance for _, balance in copy["wallets"]) == 3 * 250_000 + 1_000_000 - 60_000

    # The application's own reconcile, as the application role, against the restored database.
    app_url = _url(fresh_database, role=DEV_APP_ROLE)
    check = _vtu("ledger", "reconcile", DATABASE_URL=app_url, DATABASE_OWNER_URL=target)
    assert check.returncode == 0, check.stderr + check.stdout
    assert "ledger reconcile: OK" in check.stdout

    # Again into the now non-empty database: refused, nothing touched ...
    refused = _vtu("backup", "restore", str(archive), "--target-url", target)
    assert refused.returncode == 1
    assert "refusing to restore" in refused.stderr and "not empty" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert await _snapshot(fresh_database) == source
    # ... unless --yes: replaced, not doubled.
    replaced = _vtu("backup", "restore", str(archive), "--target-url", target, "--yes")
    assert replaced.returncode == 0, replaced.stderr
    assert "replaced the contents of" in replaced.stdout and "ledger reconcile: OK" in replaced.stdout
    assert await _snapshot(fresh_database) == source


def _cli(*args: str, **env: str) -> Any:
    """The `vtu backup` commands in this process (click's runner): no app start-up per call."""
    from click.testing import CliRunner

    from app.config.settings import get_settings
    from app.core.backup import backup_group

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(backup_group, list(args), env=env)
    finally:
        get_settings.cache_clear()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_retention_keeps_exactly_the_newest_n(service_urls, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    database = make_url(service_urls["database_owner_url"]).database
    # oldest first: a second archive within the same second gets a "-1" suffix
    old = [
        backups / f"vtu-{database}-{stamp}.dump"
        for stamp in ("20240101T000000Z", "20250101T000000Z", "20250101T000000Z-1", "20250601T120000Z")
    ]
    others = [backups / "vtu-otherdb-20200101T000000Z.dump", backups / "notes.txt"]
    for path in old + others:
        path.write_bytes(b"x")

    made = _cli("create", "--keep", "2", BACKUP_DIR=str(backups))
    assert made.exit_code == 0, made.stderr
    new = [p for p in backups.iterdir() if p not in old + others]
    assert len(new) == 1 and new[0].name.startswith(f"vtu-{database}-")
    assert new[0].name[len(f"vtu-{database}-") :][:4] == str(datetime.datetime.now(datetime.UTC).year)
    assert sorted(backups.iterdir()) == sorted([old[-1], new[0], *others])  # exactly 2 of this database
    assert made.stdout.count("removed old backup") == 3

    # The default comes from BACKUP_KEEP; a second archive in the same second gets its own name.
    again = _cli("create", BACKUP_DIR=str(backups), BACKUP_KEEP="1")
    assert again.exit_code == 0, again.stderr
    mine = [p for p in backups.iterdir() if p.name.startswith(f"vtu-{database}-")]
    assert len(mine) == 1 and mine[0] not in (old[-1], new[0])
    assert not [p for p in backups.iterdir() if p.name.endswith(".partial")]


def test_bad_input_is_a_clear_error(service_urls, tmp_path: Path) -> None:
    missing = _cli("restore", str(tmp_path / "nope.dump"))
    assert missing.exit_code == 1 and "nope.dump: no such file" in missing.stderr

    junk = tmp_path / "junk.dump"
    junk.write_text("not an archive")
    target = _url(service_urls["superuser_database_url"], database="vtu_no_such_db", role=DEV_OWNER_ROLE)
    no_db = _cli("restore", str(junk), "--target-url", target)
    assert no_db.exit_code == 1 and "'vtu_no_such_db' does not exist" in no_db.stderr
    not_archive = _cli("restore", str(junk), "--target-url", _url(service_urls["database_owner_url"]))
    assert not_archive.exit_code == 1 and "is not an archive" in not_archive.stderr

    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    no_client = _cli("create", BACKUP_DIR=str(tmp_path / "b"), BACKUP_PG_BIN_DIR=str(empty_bin))
    assert no_client.exit_code == 1 and "pg_dump not found" in no_client.stderr
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())

    bad_keep = _cli("create", "--keep", "-1", BACKUP_DIR=str(tmp_path / "b"))
    assert bad_keep.exit_code == 2 and "--keep" in bad_keep.stderr
