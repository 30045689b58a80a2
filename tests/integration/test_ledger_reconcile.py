"""`vtu ledger reconcile` and the hourly job: clean on a consistent ledger, loud on any drift.

Drift cannot be created through the posting API or plain SQL (that is the point); these tests create it
the only way left, with triggers switched off (session_replication_role = replica), and repair it after.
"""

from __future__ import annotations

import os
import subprocess
import sys

from structlog.testing import capture_logs

from app.ledger.posting import transfer
from app.ledger.reconcile import run_reconcile
from app.ledger.tasks import reconcile_ledger
from tests.integration.ledger_fixtures import bypass_triggers, make_wallets


def _vtu_reconcile() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "ledger", "reconcile"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


async def _activity(sessionmaker) -> tuple[int, int]:
    a, b = await make_wallets(sessionmaker, 2, fund=5_000)
    async with sessionmaker() as session, session.begin():
        for i in range(3):
            await transfer(session, key=f"t:{i}", from_account=a, to_account=b, amount=100, kind="transfer")
    return a, b


async def test_clean_ledger_reconciles_and_the_command_exits_0(db, sessionmaker):
    await _activity(sessionmaker)
    report = await run_reconcile(sessionmaker)
    assert report.ok
    assert (report.accounts_checked, report.wallets_checked) == (3, 2)
    assert (report.transactions_checked, report.entries_checked, report.ledger_sum) == (4, 9, 0)
    result = _vtu_reconcile()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ledger reconcile: OK" in result.stdout
    assert "accounts checked: 3 (2 wallets)" in result.stdout
    assert "transactions checked: 4" in result.stdout


async def test_wallet_balance_drift_is_reported_and_exits_non_zero(db, sessionmaker, superuser_engine):
    a, _ = await _activity(sessionmaker)
    await bypass_triggers(
        superuser_engine, f"UPDATE ledger_accounts SET balance = balance + 5 WHERE id = {a}"
    )
    try:
        report = await run_reconcile(sessionmaker)
        assert not report.ok and report.drift_count == 1
        (drift,) = report.drifts
        assert drift.kind == "wallet_balance" and f"account {a} " in drift.subject
        assert "balance 4705 but entries sum to 4700" in drift.detail
        result = _vtu_reconcile()
        assert result.returncode == 1
        assert "ledger reconcile: DRIFT" in result.stdout and f"account {a} " in result.stdout
    finally:
        await bypass_triggers(
            superuser_engine, f"UPDATE ledger_accounts SET balance = balance - 5 WHERE id = {a}"
        )
    assert (await run_reconcile(sessionmaker)).ok


async def test_unbalanced_transaction_and_ledger_sum_are_reported(db, sessionmaker, superuser_engine):
    await _activity(sessionmaker)
    stray = (
        "INSERT INTO ledger_entries (transaction_id, account_id, amount)"
        " SELECT t.id, a.id, 250 FROM ledger_transactions t, ledger_accounts a"
        " WHERE t.idempotency_key = 't:0' AND a.code = 'monnify_clearing'"
    )
    await bypass_triggers(superuser_engine, stray)
    try:
        report = await run_reconcile(sessionmaker)
        kinds = sorted(d.kind for d in report.drifts)
        assert kinds == ["ledger_sum", "unbalanced_transaction"]
        assert report.ledger_sum == 250
        unbalanced = next(d for d in report.drifts if d.kind == "unbalanced_transaction")
        assert "(t:0)" in unbalanced.subject and "3 entries summing to 250" in unbalanced.detail
        assert _vtu_reconcile().returncode == 1
    finally:
        await bypass_triggers(superuser_engine, "DELETE FROM ledger_entries WHERE amount = 250")
    assert (await run_reconcile(sessionmaker)).ok


async def test_hourly_job_logs_an_alert_on_drift(db, sessionmaker, superuser_engine):
    a, _ = await _activity(sessionmaker)
    ctx = {"sessionmaker": sessionmaker}
    with capture_logs() as logs:
        assert (await reconcile_ledger(ctx))["ok"] is True
    assert [e["event"] for e in logs] == ["ledger_reconciled"]

    await bypass_triggers(
        superuser_engine, f"UPDATE ledger_accounts SET balance = balance + 1 WHERE id = {a}"
    )
    try:
        with capture_logs() as logs:
            summary = await reconcile_ledger(ctx)
        assert summary["ok"] is False and summary["drift"] == 1
        (event,) = logs
        assert event["event"] == "ledger_drift_detected"
        assert event["log_level"] == "error" and event["alert"] is True
        assert f"account {a} " in event["drifts"][0]
    finally:
        await bypass_triggers(
            superuser_engine, f"UPDATE ledger_accounts SET balance = balance - 1 WHERE id = {a}"
        )


def test_reconcile_is_scheduled_hourly_with_an_explicit_timeout():
    from workers.settings import CRON, TASKS, _resolve

    assert "app.ledger.tasks:reconcile_ledger" in TASKS
    (entry,) = [c for c in CRON if c[0] == "app.ledger.tasks:reconcile_ledger"]
    _, cron, timeout = entry
    minute, hour, *_ = cron.split()
    assert minute.isdigit() and hour == "*" and timeout >= 60
    assert _resolve(entry[0]) is reconcile_ledger
