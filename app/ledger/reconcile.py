"""Reconciliation: prove invariants 2 and 6 over the whole ledger with a few set-based queries.

Checks, each one aggregate statement (so each is self-consistent even while postings continue):
- every wallet: balance == SUM(its entries), and its newest entry's balance_after == balance;
- every transaction: >= 2 entries summing to 0;
- the whole ledger: SUM(all entries) == 0.
`vtu ledger reconcile` and the hourly SAQ job `reconcile_ledger` both run `run_reconcile`.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

MAX_REPORTED = 50  # drift lines kept in the report; the counts are always complete

_WALLET_DRIFT = text("""
WITH sums AS (
    SELECT account_id, sum(amount) AS total, max(id) AS last_entry_id
    FROM ledger_entries GROUP BY account_id
)
SELECT a.id, a.code, a.balance, coalesce(s.total, 0) AS total, e.balance_after
FROM ledger_accounts a
LEFT JOIN sums s ON s.account_id = a.id
LEFT JOIN ledger_entries e ON e.id = s.last_entry_id
WHERE a.kind = 'wallet'
  AND (a.balance IS DISTINCT FROM coalesce(s.total, 0)
       OR (e.id IS NOT NULL AND e.balance_after IS DISTINCT FROM a.balance))
ORDER BY a.id
""")

_UNBALANCED = text("""
SELECT t.id, t.idempotency_key, coalesce(e.n, 0) AS entries, coalesce(e.total, 0) AS total
FROM ledger_transactions t
LEFT JOIN (
    SELECT transaction_id, count(*) AS n, sum(amount) AS total FROM ledger_entries GROUP BY transaction_id
) e ON e.transaction_id = t.id
WHERE coalesce(e.n, 0) < 2 OR coalesce(e.total, 0) <> 0
ORDER BY t.id
""")

_TOTALS = text("""
SELECT
    (SELECT count(*) FROM ledger_accounts) AS accounts,
    (SELECT count(*) FROM ledger_accounts WHERE kind = 'wallet') AS wallets,
    (SELECT count(*) FROM ledger_transactions) AS transactions,
    count(*) AS entries,
    coalesce(sum(amount), 0) AS total
FROM ledger_entries
""")


@dataclass(frozen=True, slots=True)
class Drift:
    kind: str  # "wallet_balance" | "unbalanced_transaction" | "ledger_sum"
    subject: str
    detail: str


@dataclass(slots=True)
class ReconcileReport:
    accounts_checked: int = 0
    wallets_checked: int = 0
    transactions_checked: int = 0
    entries_checked: int = 0
    ledger_sum: int = 0
    drift_count: int = 0
    drifts: list[Drift] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.drift_count == 0

    def add(self, drift: Drift) -> None:
        self.drift_count += 1
        if len(self.drifts) < MAX_REPORTED:
            self.drifts.append(drift)

    def lines(self) -> list[str]:
        out = [
            f"ledger reconcile: {'OK' if self.ok else 'DRIFT'}",
            f"  accounts checked: {self.accounts_checked} ({self.wallets_checked} wallets)",
            f"  transactions checked: {self.transactions_checked}",
            f"  entries checked: {self.entries_checked}; sum of all entries: {self.ledger_sum} kobo",
            f"  drift: {self.drift_count or 'none'}",
        ]
        out += [f"    {d.kind} {d.subject}: {d.detail}" for d in self.drifts]
        if self.drift_count > len(self.drifts):
            out.append(f"    ... and {self.drift_count - len(self.drifts)} more")
        return out


async def reconcile(session: AsyncSession) -> ReconcileReport:
    """Run every check in the session's current transaction. Read-only."""
    report = ReconcileReport()
    totals = (await session.execute(_TOTALS)).one()
    report.accounts_checked = int(totals.accounts)
    report.wallets_checked = int(totals.wallets)
    report.transactions_checked = int(totals.transactions)
    report.entries_checked = int(totals.entries)
    report.ledger_sum = int(totals.total)
    for row in await session.execute(_WALLET_DRIFT):
        report.add(
            Drift(
                "wallet_balance",
                f"account {row.id} ({row.code})",
                f"balance {row.balance} but entries sum to {row.total}"
                f", last balance_after {row.balance_after}",
            )
        )
    for row in await session.execute(_UNBALANCED):
        report.add(
            Drift(
                "unbalanced_transaction",
                f"transaction {row.id} ({row.idempotency_key})",
                f"{row.entries} entries summing to {row.total} kobo",
            )
        )
    if report.ledger_sum != 0:
        report.add(Drift("ledger_sum", "all entries", f"sum to {report.ledger_sum} kobo, not 0"))
    return report


async def run_reconcile(sessionmaker: async_sessionmaker[AsyncSession]) -> ReconcileReport:
    """Reconcile in one REPEATABLE READ, read-only transaction: every check sees the same snapshot."""
    async with sessionmaker() as session:
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
        try:
            return await reconcile(session)
        finally:
            await session.rollback()


# The hourly job's last result (Redis): the staff overview shows it, the alert checker alerts when not clean.
LAST_RESULT_KEY = "vtu:ledger:last_reconcile"


@dataclass(frozen=True, slots=True)
class LastReconcile:
    at: datetime.datetime
    ok: bool
    drift: int
    summary: dict[str, Any]


async def save_result(redis: Any, summary: dict[str, Any], *, at: datetime.datetime | None = None) -> None:
    when = at or datetime.datetime.now(datetime.UTC)
    await redis.set(LAST_RESULT_KEY, json.dumps({**summary, "at": when.isoformat()}, default=str))


async def last_result(redis: Any) -> LastReconcile | None:
    raw = await redis.get(LAST_RESULT_KEY)
    if not raw:
        return None
    try:
        value = json.loads(raw)
        return LastReconcile(
            datetime.datetime.fromisoformat(value["at"]), bool(value["ok"]), int(value.get("drift", 0)), value
        )
    except (ValueError, KeyError, TypeError):
        return None


__all__ = [
    "LAST_RESULT_KEY",
    "Drift",
    "LastReconcile",
    "ReconcileReport",
    "last_result",
    "reconcile",
    "run_reconcile",
    "save_result",
]
