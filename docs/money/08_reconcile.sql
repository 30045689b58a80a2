-- 08 Reconcile: the ledger proves itself. `vtu ledger reconcile` (app/ledger/reconcile.py, also hourly in
-- the worker) runs these checks in one REPEATABLE READ snapshot and exits 1 on any drift; every database
-- test ends with it.
\set VERBOSITY terse

-- Every account: a wallet's stored balance equals the sum of its entries (and its newest entry's
-- balance_after); a system account's balance IS the sum of its entries. Untouched accounts have none.
SELECT a.code, a.kind, a.balance, coalesce(sum(e.amount), 0) AS sum_of_entries,
       a.balance IS NULL OR a.balance = coalesce(sum(e.amount), 0) AS reconciles
FROM ledger_accounts a
LEFT JOIN ledger_entries e ON e.account_id = a.id
GROUP BY a.code, a.kind, a.balance
ORDER BY a.kind DESC, a.code;

-- Reconcile's checks, each one aggregate query. Every one must return no rows.
-- 1. Wallets whose balance differs from the sum of their entries or from their newest balance_after:
WITH sums AS (
    SELECT account_id, sum(amount) AS total, max(id) AS last_entry_id
    FROM ledger_entries GROUP BY account_id
)
SELECT a.code, a.balance, coalesce(s.total, 0) AS total, e.balance_after
FROM ledger_accounts a
LEFT JOIN sums s ON s.account_id = a.id
LEFT JOIN ledger_entries e ON e.id = s.last_entry_id
WHERE a.kind = 'wallet'
  AND (a.balance IS DISTINCT FROM coalesce(s.total, 0)
       OR (e.id IS NOT NULL AND e.balance_after IS DISTINCT FROM a.balance));

-- 2. Transactions with fewer than two entries, or entries not summing to 0:
SELECT t.idempotency_key, count(e.id) AS entries, coalesce(sum(e.amount), 0) AS total
FROM ledger_transactions t
LEFT JOIN ledger_entries e ON e.transaction_id = t.id
GROUP BY t.id, t.idempotency_key
HAVING count(e.id) < 2 OR coalesce(sum(e.amount), 0) <> 0;

-- 3. The whole ledger sums to 0 (every kobo owed to someone is held or spent somewhere):
SELECT count(*) AS entries, sum(amount) AS sum_of_all_entries FROM ledger_entries;

-- Ada's statement (what /wallet shows her): every movement of her wallet, oldest first, each with the
-- balance it left.
SELECT t.idempotency_key, t.kind, t.memo, e.amount, e.balance_after
FROM ledger_entries e
JOIN ledger_transactions t ON t.id = e.transaction_id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE a.code = 'wallet:0193a5f0-0000-7000-8000-00000000ada1'
ORDER BY e.id;
