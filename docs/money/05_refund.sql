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
    0, NULL, 'user:0193a5f0-0000-7000-8000-00000000ada1');

-- The failed answer, as app/vtu/transitions.py (mark_failed) applies it, in ONE transaction:
--   1. the guarded transition pending -> failed (it matches no row if another answer got there first:
--      then nothing below runs); shown with the columns that matter here, transitions.py also carries
--      the token, the units and the needs-attention flag;
--   2. the refund, posted as app/vtu/postings.py (post_refund) does: key `refund:<purchase id>`, kind
--      purchase_refund, legs purchases_in_flight -> wallet (never delivered, so the money is still in
--      flight), sorted by account id, through ledger_post.
BEGIN;
UPDATE purchases
SET status = 'failed', completed_at = now(), next_requery_at = NULL, updated_at = now(),
    provider_code = '016', provider_message = 'TRANSACTION FAILED',
    exchanges = exchanges || '[{"kind": "pay", "source": "web", "outcome": "failed", "code": "016"}]'
WHERE id = '0193a5f0-1000-7000-8000-000000000002' AND status = 'pending'
RETURNING status, amount_kobo;

SELECT post.replayed, post.wallet_balances
FROM (SELECT array_agg(a.id ORDER BY a.id) AS ids, array_agg(leg.amount ORDER BY a.id) AS amounts
      FROM (VALUES ('purchases_in_flight', -50000),
                   ('wallet:0193a5f0-0000-7000-8000-00000000ada1', 50000)) AS leg(code, amount)
      JOIN ledger_accounts a ON a.code = leg.code) AS legs,
     ledger_post('refund:0193a5f0-1000-7000-8000-000000000002', 'purchase_refund',
                 'Refund: TRANSACTION FAILED', 'purchase', '0193a5f0-1000-7000-8000-000000000002',
                 'system', legs.ids, legs.amounts) AS post;
COMMIT;

-- The purchase's whole story in the ledger: debited, then refunded.
SELECT t.idempotency_key, a.code, e.amount, e.balance_after
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE t.reference_type = 'purchase' AND t.reference_id = '0193a5f0-1000-7000-8000-000000000002'
ORDER BY t.id, a.code;

-- The same answer again (a requery job, a callback): the guarded transition matches nothing...
UPDATE purchases
SET status = 'failed', completed_at = now(), next_requery_at = NULL, updated_at = now()
WHERE id = '0193a5f0-1000-7000-8000-000000000002' AND status = 'pending'
RETURNING status;

-- ...and even a caller that posted the refund again would only get the first one back: replayed.
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
