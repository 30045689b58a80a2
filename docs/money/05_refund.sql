-- 05 Refund: Ada buys a N500 MTN data bundle; VTpass answers "016 TRANSACTION FAILED", a definite
-- failure. The purchase fails and the price goes back to her wallet, once.
\set VERBOSITY terse

-- The purchase is opened as in 03: N500 from the wallet into purchases_in_flight.
SELECT created
FROM purchase_open(
    '0193a5f0-1000-7000-8000-000000000002', '0193a5f0-0000-7000-8000-00000000ada1', 'web', 'mtn-data',
    'data', '08031234567', '08031234567', 'mtn-1gb-30', NULL, 'MTN Data 1GB - 30 days', NULL,
    50000, 50000, 49000, 'vtpass', '202612011020r7t1y6u2i9o3', now(), now() + interval '30 seconds',
    NULL, '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
    encode(sha256('{"phone":"08031234567","service_id":"mtn-data","variation_code":"mtn-1gb-30"}'), 'hex'),
    0, NULL, 'user:0193a5f0-0000-7000-8000-00000000ada1',
    '{}', '{}', NULL);

-- The failed answer, as app/vtu/transitions.py (mark_failed) applies it: purchase_fail
-- (app/vtu/sql/purchases.sql), ONE statement:
--   1. the guarded transition pending -> failed (`UPDATE ... WHERE status = 'pending'`; it matches no row if
--      another answer got there first, and then nothing below happens), with the answer's code, message,
--      token and units, and the needs-attention rule of a final answer (purchase_attention_when_final);
--   2. the refund: key `refund:<purchase id>`, kind purchase_refund, memo 'Refund: <message>', legs
--      purchases_in_flight -> wallet (never delivered, so the money is still in flight), sorted by account
--      id, through ledger_post. The caller passes the wallet and in-flight account ids (PurchaseAccounts).
SELECT status, provider_code, provider_message, needs_attention, completed_at IS NOT NULL AS completed,
       jsonb_array_length(exchanges) AS exchanges_logged
FROM purchase_fail(
    '0193a5f0-1000-7000-8000-000000000002',
    '[{"kind": "pay", "source": "web", "outcome": "failed", "code": "016",
       "message": "TRANSACTION FAILED"}]',                       -- appended to the exchange log
    now(),
    'TRANSACTION FAILED', '016', NULL,                           -- message, code, provider reference
    NULL, NULL,                                                  -- token, units (electricity)
    NULL,                                                        -- staff alert (none)
    (SELECT id FROM ledger_accounts WHERE code = 'wallet:0193a5f0-0000-7000-8000-00000000ada1'),
    (SELECT id FROM ledger_accounts WHERE code = 'purchases_in_flight')
);

SELECT kind, memo, reference_type, created_by
FROM ledger_transactions WHERE idempotency_key = 'refund:0193a5f0-1000-7000-8000-000000000002';

-- The purchase's whole story in the ledger: debited, then refunded.
SELECT t.idempotency_key, a.code, e.amount, e.balance_after
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE t.reference_type = 'purchase' AND t.reference_id = '0193a5f0-1000-7000-8000-000000000002'
ORDER BY t.id, a.code;

-- The same answer again (a requery job, a callback): the purchase is no longer pending, so the guarded
-- update matches nothing: no row comes back and nothing moves.
SELECT count(*) AS applied
FROM purchase_fail(
    '0193a5f0-1000-7000-8000-000000000002',
    '[{"kind": "requery", "source": "worker", "outcome": "failed", "code": "016"}]',
    now(), 'TRANSACTION FAILED', '016', NULL, NULL, NULL, NULL,
    (SELECT id FROM ledger_accounts WHERE code = 'wallet:0193a5f0-0000-7000-8000-00000000ada1'),
    (SELECT id FROM ledger_accounts WHERE code = 'purchases_in_flight')
);

-- ...and the key holds behind it: the same refund posted again by hand only gets the first one back.
SELECT post.replayed, post.wallet_balances
FROM (SELECT array_agg(a.id ORDER BY a.id) AS ids, array_agg(leg.amount ORDER BY a.id) AS amounts
      FROM (VALUES ('purchases_in_flight', -50000),
                   ('wallet:0193a5f0-0000-7000-8000-00000000ada1', 50000)) AS leg(code, amount)
      JOIN ledger_accounts a ON a.code = leg.code) AS legs,
     ledger_post('refund:0193a5f0-1000-7000-8000-000000000002', 'purchase_refund',
                 'Refund: TRANSACTION FAILED', 'purchase', '0193a5f0-1000-7000-8000-000000000002',
                 'system', legs.ids, legs.amounts) AS post;

SELECT service_id, amount_kobo, status, provider_code FROM purchases ORDER BY id;

-- Where the money is: the wallet is back where it was after 04, nothing in flight.
SELECT a.code, a.balance, sum(e.amount) AS sum_of_entries
FROM ledger_accounts a
JOIN ledger_entries e ON e.account_id = a.id
GROUP BY a.code, a.balance
ORDER BY a.code;
