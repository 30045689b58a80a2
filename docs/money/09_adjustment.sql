-- 09 Adjustment: finance credits Ada's wallet by hand, and a second person approves a larger one.
--
-- The console (/staff/adjustments, app/ledger/adjustments.py) inserts the request `pending_approval`; an
-- amount within ADJUSTMENT_APPROVAL_KOBO (default N5,000) is posted at once by its requester, a larger one
-- waits for a SECOND finance user. Posting is ONE statement, adjustment_post
-- (app/ledger/sql/adjustments.sql): the row locked WHERE it is still pending, the posting under
-- `adjustment:<id>` (wallet against `staff_adjustments`), the row marked posted.
\set VERBOSITY terse

-- Two finance staff.
INSERT INTO users (id, email, full_name, password_hash, tier, account_reference, referral_code, is_staff,
                   staff_role, created_at, updated_at)
VALUES ('0193a5f0-0000-7000-8000-0000000f1a01', 'fola@example.com', 'Fola (finance)', '(hash)', 'customer',
        'VTUEXAMPLEFOLA', 'FOLAREF1', true, 'finance', now(), now()),
       ('0193a5f0-0000-7000-8000-0000000f1a02', 'gbenga@example.com', 'Gbenga (finance)', '(hash)',
        'customer', 'VTUEXAMPLEGBEN', 'GBENREF1', true, 'finance', now(), now());

-- Fola credits N1,000 (goodwill): within the limit, so she posts it herself (p_approval = false).
INSERT INTO adjustments (id, user_id, direction, amount_kobo, reason, status, requested_by_id, requested_by,
                         created_at, updated_at)
VALUES ('0193a5f0-0000-7000-8000-00000000ad01', '0193a5f0-0000-7000-8000-00000000ada1', 'credit', 100000,
        'Goodwill: airtime arrived two hours late', 'pending_approval',
        '0193a5f0-0000-7000-8000-0000000f1a01', 'fola@example.com', now(), now());
SELECT applied, status
FROM adjustment_post('0193a5f0-0000-7000-8000-00000000ad01', '0193a5f0-0000-7000-8000-0000000f1a01',
                     'fola@example.com', 'within the no-approval limit', false);

-- Fola asks for a N6,000 debit (a correction): above the limit, it waits. She cannot approve it herself
-- (applied = false, still pending); Gbenga can, once: a second click (or a racing one) changes nothing.
INSERT INTO adjustments (id, user_id, direction, amount_kobo, reason, status, requested_by_id, requested_by,
                         created_at, updated_at)
VALUES ('0193a5f0-0000-7000-8000-00000000ad02', '0193a5f0-0000-7000-8000-00000000ada1', 'debit', 600000,
        'Correction: transfer MNFY|X credited twice by the old system', 'pending_approval',
        '0193a5f0-0000-7000-8000-0000000f1a01', 'fola@example.com', now(), now());
SELECT applied, status
FROM adjustment_post('0193a5f0-0000-7000-8000-00000000ad02', '0193a5f0-0000-7000-8000-0000000f1a01',
                     'fola@example.com', '', true);
-- Ada's wallet holds less than N6,000 now: ledger_post refuses (LG001) and the transition is undone too.
SELECT balance FROM ledger_accounts WHERE code = 'wallet:0193a5f0-0000-7000-8000-00000000ada1';
SELECT applied, status
FROM adjustment_post('0193a5f0-0000-7000-8000-00000000ad02', '0193a5f0-0000-7000-8000-0000000f1a02',
                     'gbenga@example.com', 'checked the old system', true);
SELECT direction, amount_kobo, status, ledger_transaction_id IS NOT NULL AS posted
FROM adjustments ORDER BY id;

-- A smaller correction, approved by Gbenga, then clicked again.
UPDATE adjustments SET amount_kobo = 50000 WHERE id = '0193a5f0-0000-7000-8000-00000000ad02';
SELECT applied, status
FROM adjustment_post('0193a5f0-0000-7000-8000-00000000ad02', '0193a5f0-0000-7000-8000-0000000f1a02',
                     'gbenga@example.com', 'checked the old system', true);
SELECT applied, status
FROM adjustment_post('0193a5f0-0000-7000-8000-00000000ad02', '0193a5f0-0000-7000-8000-0000000f1a02',
                     'gbenga@example.com', 'checked the old system', true);

-- On Ada's statement: kind `adjustment`, the reason as memo, reference ('adjustment', <id>).
SELECT t.idempotency_key, t.kind, t.memo, t.reference_type, t.created_by, e.amount, e.balance_after
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE t.kind = 'adjustment' AND a.kind = 'wallet'
ORDER BY e.id;

SELECT a.code, sum(e.amount) AS sum_of_entries
FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id
WHERE a.code = 'staff_adjustments'
GROUP BY a.code;
