-- 07 Refusals: what the database itself refuses, whatever the client. Each refused statement writes
-- nothing. (psql shows each error on one line; error messages that name an account or transaction id
-- are shown with <id>, see README.md.)
\set VERBOSITY terse

-- Insufficient funds: Ada (N4,975) tries to buy N10,000 of airtime. ledger_post's conditional update
-- (`... WHERE balance + amount >= 0`) finds no row and raises LG001; purchase_open is one statement, so
-- the purchase row it had inserted is undone with it. The service answers 402.
SELECT created
FROM purchase_open(
    '0193a5f0-1000-7000-8000-000000000003', '0193a5f0-0000-7000-8000-00000000ada1', 'web', 'mtn',
    'airtime', '08031234567', '08031234567', NULL, NULL, 'MTN Airtime', NULL, 1000000, 1000000, 980000,
    'vtpass', '202612011030a1s2d3f4g5h6', now(), now() + interval '30 seconds', NULL,
    '0e1d2c3b-4a59-4687-9a5b-4c3d2e1f0a9b',
    encode(sha256('{"amount_kobo":1000000,"phone":"08031234567","service_id":"mtn"}'), 'hex'),
    0, NULL, 'user:0193a5f0-0000-7000-8000-00000000ada1',
    '{}', '{}', NULL);
\echo :LAST_ERROR_SQLSTATE

SELECT (SELECT count(*) FROM purchases WHERE id = '0193a5f0-1000-7000-8000-000000000003') AS purchase_rows,
       (SELECT count(*) FROM ledger_transactions
        WHERE idempotency_key = 'purchase:0193a5f0-1000-7000-8000-000000000003') AS transactions,
       (SELECT balance FROM ledger_accounts
        WHERE code = 'wallet:0193a5f0-0000-7000-8000-00000000ada1') AS wallet_balance;

-- The API's daily spend limit, checked in the same statement under a per-user lock: N200 more would
-- take Ada's API spending today (pending and successful purchases, this one included) past N100, so
-- purchase_open refuses it (VT001) and, again, writes nothing.
SELECT created
FROM purchase_open(
    '0193a5f0-1000-7000-8000-000000000004', '0193a5f0-0000-7000-8000-00000000ada1', 'api', 'mtn',
    'airtime', '08031234567', '08031234567', NULL, NULL, 'MTN Airtime', NULL, 20000, 20000, 19600,
    'vtpass', '202612011031z9x8c7v6b5n4', now(), now() + interval '30 seconds', NULL, 'api-order-17',
    encode(sha256('{"amount_kobo":20000,"phone":"08031234567","service_id":"mtn"}'), 'hex'),
    10000, now() - interval '1 hour', 'user:0193a5f0-0000-7000-8000-00000000ada1',
    '{}', '{}', NULL);
\echo :LAST_ERROR_SQLSTATE

SELECT count(*) AS purchases FROM purchases;

-- An unbalanced posting: legs that do not sum to 0 are refused before anything is written (LG004).
SELECT post.replayed
FROM (SELECT array_agg(a.id ORDER BY a.id) AS ids, array_agg(leg.amount ORDER BY a.id) AS amounts
      FROM (VALUES ('staff_adjustments', -10000),
                   ('wallet:0193a5f0-0000-7000-8000-00000000ada1', 10001)) AS leg(code, amount)
      JOIN ledger_accounts a ON a.code = leg.code) AS legs,
     ledger_post('adjustment:example-1', 'adjustment', 'Goodwill credit', NULL, NULL, 'staff:tolu',
                 legs.ids, legs.amounts) AS post;
\echo :LAST_ERROR_SQLSTATE

-- Legs must also come sorted by account id, one per account (so that concurrent postings lock wallet rows
-- in one order and cannot deadlock): here in descending order, refused (LG004).
SELECT post.replayed
FROM (SELECT array_agg(a.id ORDER BY a.id DESC) AS ids, array_agg(leg.amount ORDER BY a.id DESC) AS amounts
      FROM (VALUES ('staff_adjustments', -10000),
                   ('wallet:0193a5f0-0000-7000-8000-00000000ada1', 10000)) AS leg(code, amount)
      JOIN ledger_accounts a ON a.code = leg.code) AS legs,
     ledger_post('adjustment:example-1', 'adjustment', 'Goodwill credit', NULL, NULL, 'staff:tolu',
                 legs.ids, legs.amounts) AS post;
\echo :LAST_ERROR_SQLSTATE

-- Writing the tables directly, past ledger_post: a transaction with a single entry is caught at COMMIT
-- by the deferred zero-sum constraint triggers (LG004), and the whole transaction is rolled back.
BEGIN;
INSERT INTO ledger_transactions (idempotency_key, kind, memo, legs_hash)
VALUES ('adjustment:by-hand', 'adjustment', 'one-sided', 'none');
INSERT INTO ledger_entries (transaction_id, account_id, amount)
SELECT t.id, a.id, 10000
FROM ledger_transactions t, ledger_accounts a
WHERE t.idempotency_key = 'adjustment:by-hand' AND a.code = 'suspense';
COMMIT;
\echo :LAST_ERROR_SQLSTATE

SELECT count(*) AS by_hand FROM ledger_transactions WHERE idempotency_key = 'adjustment:by-hand';

-- The ledger is append-only: entries and transactions are never updated or deleted (LG005); a mistake
-- is corrected by a new, reversing transaction.
UPDATE ledger_entries SET amount = amount * 2;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM ledger_entries;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM ledger_transactions WHERE kind = 'purchase_refund';
\echo :LAST_ERROR_SQLSTATE

-- A wallet's balance changes only inside ledger_post, which writes the entries in the same statement:
-- anything else is refused (LG005), so balance == SUM(entries) cannot drift.
UPDATE ledger_accounts SET balance = balance + 100000
WHERE code = 'wallet:0193a5f0-0000-7000-8000-00000000ada1';
\echo :LAST_ERROR_SQLSTATE

-- Nothing above changed anything: the same transactions and balances as after 06.
SELECT count(*) AS transactions, (SELECT count(*) FROM ledger_entries) AS entries
FROM ledger_transactions;

SELECT code, balance FROM ledger_accounts WHERE kind = 'wallet';
