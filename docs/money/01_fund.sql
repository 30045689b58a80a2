-- 01 Fund: Ada transfers N5,000 into her reserved bank account; Monnify's webhook credits her wallet.
--
-- The webhook (app/payments/funding.py, receive_event) checks the signature, then sends ONE statement,
-- monnify_receive (app/payments/sql/monnify_receive.sql): store the event once per
-- `eventType:transactionReference`, find the wallet by the product reference, and post the credit through
-- ledger_post under the key `monnify:<transactionReference>`.
--
-- Python computes the two fees and passes them in:
--   the platform's funding fee (FUNDING_FEE_*; here N25 = 2,500 kobo) is taken from what Ada paid;
--   Monnify's own charge (amountPaid - settlementAmount: N50 = 5,000 kobo) is the platform's expense,
--   never the customer's.
\set VERBOSITY terse

SELECT status, created, user_id, credit_error
FROM monnify_receive(
    'SUCCESSFUL_TRANSACTION:MNFY|20261201|000001',  -- dedupe key: eventType:transactionReference
    'SUCCESSFUL_TRANSACTION',                       -- event type
    'MNFY|20261201|000001',                         -- Monnify's transactionReference
    'VTUEXAMPLEADA2',                               -- product reference = Ada's account_reference
    500000,                                         -- amountPaid: N5,000
    '{"eventType": "SUCCESSFUL_TRANSACTION",
      "eventData": {"transactionReference": "MNFY|20261201|000001", "paymentStatus": "PAID",
                    "amountPaid": 5000, "settlementAmount": 4950,
                    "product": {"type": "RESERVED_ACCOUNT", "reference": "VTUEXAMPLEADA2"}}}',
    '203.0.113.10',                                 -- remote IP
    'received',                                     -- initial status of a creditable event
    NULL,                                           -- last_error
    true,                                           -- credit now (MONNIFY_VERIFY_BEFORE_CREDIT off)
    2500,                                           -- the platform's funding fee
    5000                                            -- Monnify's charge
);

-- The stored event: credited once, with what reached the wallet and the fee.
SELECT dedupe_key, status, amount_paid_kobo, credited_kobo, fee_kobo, attempts, last_error
FROM monnify_events;

-- The ledger transaction: four legs summing to 0. A positive amount raises an account's balance; what
-- the platform owes or earns grows positive, what it holds or spends grows negative:
--   wallet:<Ada>           + (amountPaid - fee)     what the platform now owes Ada
--   revenue:funding_fees   + fee
--   expense:monnify_fees   - charge                 Monnify's charge, the platform's cost
--   monnify_clearing       - (amountPaid - charge)  what Monnify will settle to the platform's bank
-- balance_after is kept for wallets only.
SELECT idempotency_key, kind, memo, reference_type, created_by
FROM ledger_transactions;

SELECT a.code, e.amount, e.balance_after
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE t.idempotency_key = 'monnify:MNFY|20261201|000001'
ORDER BY a.code;

-- Where the money is: a wallet's stored balance, and every touched account's sum of entries.
SELECT a.code, a.balance, sum(e.amount) AS sum_of_entries
FROM ledger_accounts a
JOIN ledger_entries e ON e.account_id = a.id
GROUP BY a.code, a.balance
ORDER BY a.code;
