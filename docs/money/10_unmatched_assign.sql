-- 10 Unmatched transfer: N2,000 arrives naming an account reference nobody owns (a typo in the transfer);
-- finance credits it to Ada by hand.
--
-- The webhook stores it and monnify_credit marks it `unmatched` (no customer). Finance (or
-- `vtu funding assign`) calls monnify_assign (app/payments/sql/funding.sql), which locks the event, checks it
-- is still unmatched and posts through monnify_post_credit: the SAME credit rule and the SAME key
-- `monnify:<transactionReference>` as the webhook, so it can never be credited twice. Fees are computed by
-- Python with the webhook's rule and passed in (here the N25 fee and Monnify's N20 charge).
\set VERBOSITY terse

SELECT status, created, user_id
FROM monnify_receive(
    'SUCCESSFUL_TRANSACTION:MNFY|20261201|000777', 'SUCCESSFUL_TRANSACTION', 'MNFY|20261201|000777',
    'VTUTYPOREF99', 200000,
    '{"eventType": "SUCCESSFUL_TRANSACTION",
      "eventData": {"transactionReference": "MNFY|20261201|000777", "paymentStatus": "PAID",
                    "amountPaid": 2000, "settlementAmount": 1980,
                    "product": {"type": "RESERVED_ACCOUNT", "reference": "VTUTYPOREF99"}}}',
    '203.0.113.10', 'received', NULL, true, 2500, 2000);

SELECT status, last_error FROM monnify_events WHERE transaction_reference = 'MNFY|20261201|000777';

-- Assigned to Ada by Fola, with a reason. A second assignment (another staff member, the CLI) is refused.
SELECT status, refused, ledger_transaction_id IS NOT NULL AS posted
FROM monnify_assign((SELECT id FROM monnify_events WHERE transaction_reference = 'MNFY|20261201|000777'),
                    '0193a5f0-0000-7000-8000-00000000ada1', 200000, 2500, 2000,
                    '0193a5f0-0000-7000-8000-0000000f1a01', 'staff:fola@example.com',
                    'Ada sent the bank receipt; sender name and amount match');
SELECT status, refused
FROM monnify_assign((SELECT id FROM monnify_events WHERE transaction_reference = 'MNFY|20261201|000777'),
                    '0193a5f0-0000-7000-8000-00000000ada1', 200000, 2500, 2000, NULL, 'cli:ops', 'again');

-- Monnify re-sends the webhook: a duplicate of the stored event, nothing happens.
SELECT status, created
FROM monnify_receive(
    'SUCCESSFUL_TRANSACTION:MNFY|20261201|000777', 'SUCCESSFUL_TRANSACTION', 'MNFY|20261201|000777',
    'VTUTYPOREF99', 200000, '{}', '203.0.113.10', 'received', NULL, true, 2500, 2000);

SELECT status, credited_kobo, fee_kobo, assigned_by, assignment_reason
FROM monnify_events WHERE transaction_reference = 'MNFY|20261201|000777';

SELECT t.idempotency_key, t.created_by, a.code, e.amount
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE t.idempotency_key = 'monnify:MNFY|20261201|000777'
ORDER BY a.code;
