-- 06 Reversal: days later VTpass reports the N1,500 airtime of 03/04 as "040 TRANSACTION REVERSAL": it
-- was delivered, then undone. The purchase becomes reversed and Ada gets the price back, once.
--
-- app/vtu/transitions.py (mark_reversed) calls purchase_reverse (app/vtu/sql/purchases.sql), ONE statement:
-- it locks the purchase, moves it from successful (or pending) to reversed and posts `refund:<purchase id>`,
-- memo 'Reversed by provider: <message>'. From successful the refund undoes the delivery split of 04: the
-- cost comes back from the provider float, the margin from revenue, and the whole price goes to the wallet.
-- (A purchase still pending when the reversal is seen goes pending -> reversed, refunded from
-- purchases_in_flight as in 05.) It returns the status it left, which the caller's PurchaseSettled event
-- carries, and the reversed purchase.
\set VERBOSITY terse

SELECT previous_status, (purchase).status, (purchase).provider_code, (purchase).provider_message,
       (purchase).needs_attention
FROM purchase_reverse(
    '0193a5f0-1000-7000-8000-000000000001',
    '[{"kind": "requery", "source": "worker", "outcome": "reversed", "code": "040",
       "message": "TRANSACTION REVERSAL"}]',                     -- appended to the exchange log
    now(),
    'TRANSACTION REVERSAL', '040', NULL,                         -- message, code, provider reference
    NULL, NULL,                                                  -- token, units (electricity)
    NULL,                                                        -- staff alert (none)
    (SELECT id FROM ledger_accounts WHERE code = 'wallet:0193a5f0-0000-7000-8000-00000000ada1'),
    (SELECT id FROM ledger_accounts WHERE code = 'purchases_in_flight'),
    (SELECT id FROM ledger_accounts WHERE code = 'provider_float:vtpass'),
    (SELECT id FROM ledger_accounts WHERE code = 'revenue:commission')
);

SELECT kind, memo, reference_type, created_by
FROM ledger_transactions WHERE idempotency_key = 'refund:0193a5f0-1000-7000-8000-000000000001';

-- The same reversal again (a callback after the requery): the purchase is neither successful nor pending
-- any more, so nothing matches: no row, nothing moves.
SELECT count(*) AS applied
FROM purchase_reverse(
    '0193a5f0-1000-7000-8000-000000000001',
    '[{"kind": "requery", "source": "callback", "outcome": "reversed", "code": "040"}]',
    now(), 'TRANSACTION REVERSAL', '040', NULL, NULL, NULL, NULL,
    (SELECT id FROM ledger_accounts WHERE code = 'wallet:0193a5f0-0000-7000-8000-00000000ada1'),
    (SELECT id FROM ledger_accounts WHERE code = 'purchases_in_flight'),
    (SELECT id FROM ledger_accounts WHERE code = 'provider_float:vtpass'),
    (SELECT id FROM ledger_accounts WHERE code = 'revenue:commission')
);

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
