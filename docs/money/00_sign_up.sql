-- 00 Sign-up: a customer and her empty wallet.
--
-- These scripts follow each other in one fresh database (migrated to head, nothing else in it): read them
-- in order. Amounts are integer kobo (100 kobo = N1). Ids are generated, so nothing here prints one:
-- accounts are shown by code, transactions by idempotency key.
\set VERBOSITY terse

-- Migration 0008 opened the fixed system accounts. They keep no running balance (NULL): their balance is
-- the sum of their entries, so that no row is touched by every purchase (invariant 7).
SELECT code, kind, balance
FROM ledger_accounts
ORDER BY code;

-- Sign-up (app/accounts/services.py) inserts the user and, in the same transaction, the sign-up hook of
-- app/ledger/accounts.py opens the wallet `wallet:<user id>` at 0. account_reference is the customer's
-- Monnify reference: transfers into her reserved bank account name it. (Sign-up also queues the request
-- for those bank accounts; that moves no money and is left out here.)
BEGIN;
INSERT INTO users (id, email, full_name, password_hash, tier, account_reference, referral_code,
                   created_at, updated_at)
VALUES ('0193a5f0-0000-7000-8000-00000000ada1', 'ada@example.com', 'Ada Obi', '(an argon2 hash)',
        'customer', 'VTUEXAMPLEADA2', 'ADAREF23', now(), now());
INSERT INTO ledger_accounts (code, kind, name, user_id, balance)
VALUES ('wallet:0193a5f0-0000-7000-8000-00000000ada1', 'wallet', 'Customer wallet',
        '0193a5f0-0000-7000-8000-00000000ada1', 0);
COMMIT;

-- One wallet per user (UNIQUE user_id); a wallet always has a balance, a system account never has one
-- (CHECK ck_ledger_accounts_wallet_shape).
SELECT u.email, a.code, a.kind, a.balance
FROM users u
JOIN ledger_accounts a ON a.user_id = u.id;
