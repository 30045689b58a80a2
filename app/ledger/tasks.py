"""SAQ jobs of the ledger. `reconcile_ledger` runs hourly (workers/settings.py CRON)."""

from __future__ import annotations

from typing import Any

import structlog

from app.ledger.reconcile import run_reconcile, save_result

log = structlog.get_logger("app.ledger.reconcile")


async def reconcile_ledger(ctx: dict[str, Any]) -> dict[str, Any]:
    report = await run_reconcile(ctx["sessionmaker"])
    summary: dict[str, Any] = {
        "ok": report.ok,
        "accounts": report.accounts_checked,
        "transactions": report.transactions_checked,
        "entries": report.entries_checked,
        "ledger_sum": report.ledger_sum,
        "drift": report.drift_count,
    }
    redis = ctx.get("redis")
    if redis is not None:  # the staff overview and the alert checker read the last result
        await save_result(redis, summary)
    if report.ok:
        log.info("ledger_reconciled", **summary)
    else:
        # alert=True: the field log-based alerting (and Sentry's logging integration) keys on.
        log.error(
            "ledger_drift_detected",
            alert=True,
            drifts=[f"{d.kind} {d.subject}: {d.detail}" for d in report.drifts],
            **summary,
        )
    return summary
