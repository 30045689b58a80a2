-- 04 Deliver: VTpass answers /pay with "000 TRANSACTION SUCCESSFUL". The purchase becomes successful and
-- the money leaves purchases_in_flight: the cost to the provider float, the margin to revenue.
--
-- purchase_deliver (app/vtu/sql/purchases.sql) is the guarded transition pending -> successful
-- (`UPDATE ... WHERE status = 'pending'`) and the posting `delivery:<purchase id>` in one statement. The
-- caller passes the three account ids it resolved when the purchase was opened (app/vtu/postings.py,
-- PurchaseAccounts). A margin or a cost of 0 is simply not posted; the margin may be negative (a reseller
-- discount larger than the provider's commission).
\set VERBOSITY terse

SELECT status, provider_code, provider_message, completed_at IS NOT NULL AS completed,
       jsonb_array_length(exchanges) AS exchanges_logged
FROM purchase_deliver(
    '0193a5f0-1000-7000-8000-000000000001',
    '[{"kind": "pay", "source": "web", "outcome": "delivered", "code": "000",
       "message": "TRANSACTION SUCCESSFUL"}]',                   -- appended to the exchange log
    now(),
    'TRANSACTION SUCCESSFUL', '000', '17331234567890123',        -- message, code, provider reference
    NULL, NULL,                                                  -- token, units (electricity)
    NULL,                                                        -- staff alert (none)
    (SELECT id FROM ledger_accounts WHERE code = 'purchases_in_flight'),
    (SELECT id FROM ledger_accounts WHERE code = 'provider_float:vtpass'),
    (SELECT id FROM ledger_accounts WHERE code = 'revenue:commission')
);

SELECT a.code, e.amount
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE t.idempotency_key = 'delivery:0193a5f0-1000-7000-8000-000000000001'
ORDER BY a.code;

-- A requery job or a VTpass callback brings the same answer a moment later. The purchase is no longer
-- pending, so the guarded update matches nothing: no row comes back and nothing moves (the service then
-- only logs that exchange, marked "applied": false).
SELECT count(*) AS applied
FROM purchase_deliver(
    '0193a5f0-1000-7000-8000-000000000001',
    '[{"kind": "requery", "source": "worker", "outcome": "delivered", "code": "000"}]',
    now(), 'TRANSACTION SUCCESSFUL', '000', NULL, NULL, NULL, NULL,
    (SELECT id FROM ledger_accounts WHERE code = 'purchases_in_flight'),
    (SELECT id FROM ledger_accounts WHERE code = 'provider_float:vtpass'),
    (SELECT id FROM ledger_accounts WHERE code = 'revenue:commission')
);

-- Where the money is: nothing in flight; N1,470 used from the VTpass float, N30 earned.
SELECT a.code, a.balance, sum(e.amount) AS sum_of_entries
FROM ledger_accounts a
JOIN ledger_entries e ON e.account_id = a.id
GROUP BY a.code, a.balance
ORDER BY a.code;
