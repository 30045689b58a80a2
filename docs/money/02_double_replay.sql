-- 02 Double replay: Monnify sends the same webhook again (it retries until it sees a 200, and may send
-- twice anyway). Nothing moves, at either of the two levels that guard it.
\set VERBOSITY terse

-- Level 1, the stored event: the dedupe key is already there, so monnify_receive returns the stored
-- event's status (created = false) and does nothing else: no second credit is even attempted. (user_id
-- and the transaction id are returned only by the call that credited.)
SELECT status, created, user_id, credit_error
FROM monnify_receive(
    'SUCCESSFUL_TRANSACTION:MNFY|20261201|000001', 'SUCCESSFUL_TRANSACTION', 'MNFY|20261201|000001',
    'VTUEXAMPLEADA2', 500000,
    '{"eventType": "SUCCESSFUL_TRANSACTION",
      "eventData": {"transactionReference": "MNFY|20261201|000001", "paymentStatus": "PAID",
                    "amountPaid": 5000, "settlementAmount": 4950,
                    "product": {"type": "RESERVED_ACCOUNT", "reference": "VTUEXAMPLEADA2"}}}',
    '203.0.113.10', 'received', NULL, true, 2500, 5000);

SELECT count(*) AS events, sum(credited_kobo) AS credited_kobo FROM monnify_events;

-- Level 2, the ledger key: whoever posts `monnify:<transactionReference>` again (the worker retrying the
-- event, a second web process racing the first) gets the first transaction back, replayed = true, and
-- nothing moves. The legs go to ledger_post sorted by account id, as app/ledger/posting.py sends them.
-- The key, the kind and the legs must match; memo, reference and created_by are not compared (here they
-- differ from the first posting's).
SELECT post.replayed, post.wallet_balances
FROM (SELECT array_agg(a.id ORDER BY a.id) AS ids, array_agg(leg.amount ORDER BY a.id) AS amounts
      FROM (VALUES ('wallet:0193a5f0-0000-7000-8000-00000000ada1', 497500),
                   ('revenue:funding_fees', 2500),
                   ('expense:monnify_fees', -5000),
                   ('monnify_clearing', -495000)) AS leg(code, amount)
      JOIN ledger_accounts a ON a.code = leg.code) AS legs,
     ledger_post('monnify:MNFY|20261201|000001', 'funding', 'retried by the worker',
                 NULL, NULL, 'worker', legs.ids, legs.amounts) AS post;

-- The same key with different legs is a bug in the caller, never a second credit: refused (LG002).
SELECT post.replayed
FROM (SELECT array_agg(a.id ORDER BY a.id) AS ids, array_agg(leg.amount ORDER BY a.id) AS amounts
      FROM (VALUES ('wallet:0193a5f0-0000-7000-8000-00000000ada1', 500000),
                   ('monnify_clearing', -500000)) AS leg(code, amount)
      JOIN ledger_accounts a ON a.code = leg.code) AS legs,
     ledger_post('monnify:MNFY|20261201|000001', 'funding', 'retried by the worker',
                 NULL, NULL, 'worker', legs.ids, legs.amounts) AS post;
\echo :LAST_ERROR_SQLSTATE

-- Still one funding transaction, and Ada's wallet still holds N4,975.
SELECT t.idempotency_key, count(e.id) AS entries
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
GROUP BY t.idempotency_key;

SELECT code, balance FROM ledger_accounts WHERE kind = 'wallet';
