-- 03 Buy: Ada buys N1,500 of MTN airtime on the website. The money leaves her wallet BEFORE the provider
-- is called, into purchases_in_flight, where it waits for the provider's answer.
--
-- PurchaseService.buy (app/vtu/service.py) validates and prices the order, then sends ONE statement that
-- is its own transaction, purchase_open (app/vtu/sql/purchases.sql): insert the purchase (pending, a
-- fresh provider request_id, the form's idempotency key), check the optional spend limit, and post
-- wallet -> purchases_in_flight through ledger_post under the key `purchase:<purchase id>`. Only after it
-- has committed is the provider called (never inside a transaction).
\set VERBOSITY terse

SELECT created
FROM purchase_open(
    '0193a5f0-1000-7000-8000-000000000001',  -- purchase id (uuid7 in the application)
    '0193a5f0-0000-7000-8000-00000000ada1',  -- buyer: Ada
    'web',                                   -- channel: web | api
    'mtn', 'airtime',                        -- service and kind
    '08031234567', '08031234567',            -- recipient, phone
    NULL, NULL,                              -- variation code, subscription type (data, cable)
    'MTN Airtime', NULL,                     -- product name, customer name (meters, smartcards)
    150000,                                  -- amount: what Ada pays, N1,500
    150000,                                  -- face value sent to the provider
    147000,                                  -- cost: what the provider takes from our float (2% commission)
    'vtpass',                                -- provider slug
    '202612011015p4k2m9x7q3z8',              -- provider request_id (Lagos time + 12 random characters)
    now(), now() + interval '30 seconds',    -- created / paid at, first requery
    NULL,                                    -- API key (api channel only)
    '5f0c2d1e-8a4b-4c3d-9e2f-1a2b3c4d5e6f',  -- idempotency key (the buy form's hidden uuid4)
    encode(sha256('{"amount_kobo":150000,"phone":"08031234567","service_id":"mtn"}'), 'hex'),
                                             -- request hash: a retried key must carry the same request
    0, NULL,                                 -- spend limit (0: none) and since when
    'user:0193a5f0-0000-7000-8000-00000000ada1',  -- actor, kept as the transaction's created_by
    '{}', '{}',                              -- KYC limits per level, single / daily ('{}': none here)
    NULL                                     -- quantity (exam PINs only)
);

SELECT service_id, recipient, amount_kobo, cost_kobo, status, provider_slug, attempts
FROM purchases;

-- The debit: Ada's wallet -> purchases in flight.
SELECT t.kind, t.created_by, a.code, e.amount, e.balance_after
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE t.idempotency_key = 'purchase:0193a5f0-1000-7000-8000-000000000001'
ORDER BY a.code;

-- A double tap (or ten racing submissions) of the same form: same user, same idempotency key. The insert
-- finds the first purchase and does nothing (created = false); nothing is debited a second time. The
-- service then answers with the first purchase.
SELECT created
FROM purchase_open(
    '0193a5f0-1000-7000-8000-000000000099', '0193a5f0-0000-7000-8000-00000000ada1', 'web', 'mtn',
    'airtime', '08031234567', '08031234567', NULL, NULL, 'MTN Airtime', NULL, 150000, 150000, 147000,
    'vtpass', '202612011015h8d2w5n1c6v4', now(), now() + interval '30 seconds', NULL,
    '5f0c2d1e-8a4b-4c3d-9e2f-1a2b3c4d5e6f',
    encode(sha256('{"amount_kobo":150000,"phone":"08031234567","service_id":"mtn"}'), 'hex'),
    0, NULL, 'user:0193a5f0-0000-7000-8000-00000000ada1',
    '{}', '{}', NULL);

SELECT count(*) AS purchases FROM purchases;

-- Where the money is: N1,500 has left the wallet and waits in flight.
SELECT a.code, a.balance, sum(e.amount) AS sum_of_entries
FROM ledger_accounts a
JOIN ledger_entries e ON e.account_id = a.id
GROUP BY a.code, a.balance
ORDER BY a.code;
