-- 06 Reversal: days later VTpass reports the N1,500 airtime of 03/04 as "040 TRANSACTION REVERSAL": it
-- was delivered, then undone. The purchase becomes reversed and Ada gets the price back, once.
--
-- app/vtu/transitions.py (_reverse) tries successful -> reversed first; the refund then undoes the
-- delivery split of 04 (app/vtu/postings.py, post_refund with delivered = true): the cost comes back from
-- the provider float, the margin from revenue, and the whole price goes to the wallet. (A purchase still
-- pending when the reversal is seen goes pending -> reversed, refunded from purchases_in_flight as in 05.)
\set VERBOSITY terse

BEGIN;
UPDATE purchases
SET status = 'reversed', completed_at = coalesce(completed_at, now()), next_requery_at = NULL,
    updated_at = now(), provider_code = '040', provider_message = 'TRANSACTION REVERSAL',
    exchanges = exchanges || '[{"kind": "requery", "source": "worker", "outcome": "reversed", "code": "040"}]'
WHERE id = '0193a5f0-1000-7000-8000-000000000001' AND status = 'successful'
RETURNING status, amount_kobo, cost_kobo;

SELECT post.replayed, post.wallet_balances
FROM (SELECT array_agg(a.id ORDER BY a.id) AS ids, array_agg(leg.amount ORDER BY a.id) AS amounts
      FROM (VALUES ('provider_float:vtpass', -147000),                        -- -cost
                   ('revenue:commission', 147000 - 150000),                   -- cost - amount
                   ('wallet:0193a5f0-0000-7000-8000-00000000ada1', 150000)    -- +amount
           ) AS leg(code, amount)
      JOIN ledger_accounts a ON a.code = leg.code) AS legs,
     ledger_post('refund:0193a5f0-1000-7000-8000-000000000001', 'purchase_refund',
                 'Reversed by provider: TRANSACTION REVERSAL', 'purchase',
                 '0193a5f0-1000-7000-8000-000000000001', 'system', legs.ids, legs.amounts) AS post;
COMMIT;

-- The purchase's whole story: debited, delivered, refunded. Every account it touched is back to 0 except
-- the wallet, which has its N1,500 again.
SELECT t.idempotency_key, t.kind, a.code, e.amount
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE t.reference_type = 'purchase' AND t.reference_id = '0193a5f0-1000-7000-8000-000000000001'
ORDER BY t.id, a.code;

SELECT service_id, amount_kobo, status, provider_code FROM purchases ORDER BY id;

-- Where the money is.
SELECT a.code, a.balance, sum(e.amount) AS sum_of_entries
FROM ledger_accounts a
JOIN ledger_entries e ON e.account_id = a.id
GROUP BY a.code, a.balance
ORDER BY a.code;
