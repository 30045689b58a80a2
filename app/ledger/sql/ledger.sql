-- The ledger, in SQL: the posting function every money movement goes through, and the triggers that make
-- the tables double-entry and append-only whatever the client does. This file is the current definition;
-- migrations apply it (see docs/architecture.md, "How to change a SQL function") and a test fails when a
-- database built by the migrations differs from it.
--
-- Errors carry their own SQLSTATEs (app/ledger/errors.py turns them into Python exceptions):
--   LG001 insufficient funds, LG002 idempotency key reused with other legs, LG003 unknown account,
--   LG004 unbalanced or malformed transaction, LG005 a change the ledger does not allow.

-- Who may write: the application's database role has SELECT alone on these tables (app/core/roles.py). It
-- writes them only through the SECURITY DEFINER functions below (ledger_post, ledger_open_wallet,
-- ledger_open_system_account), which run as the tables' owner with a fixed search_path (pg_temp last, so
-- nothing a session creates can stand in for a table or function they use). The triggers hold for every
-- role, the owner included: defence in depth behind the privileges.

-- ledger_post: one transaction from sorted, non-zero legs summing to zero. Idempotent on p_key: a second
-- call with the same key and legs returns the first transaction (replayed = true) and moves nothing.
-- Wallet balances change here and only here (the balance_via_post trigger refuses any other update).

CREATE OR REPLACE FUNCTION ledger_post(
    p_key text,
    p_kind text,
    p_memo text,
    p_reference_type text,
    p_reference_id text,
    p_created_by text,
    p_account_ids bigint[],
    p_amounts bigint[],
    OUT tx_id bigint,
    OUT replayed boolean,
    OUT wallet_ids bigint[],
    OUT wallet_balances bigint[]
) LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    n integer := coalesce(array_length(p_account_ids, 1), 0);
    total numeric := 0;
    legs_hash text;
    stored_hash text;
    new_balance bigint;
    balances_after bigint[];
BEGIN
    -- Legs arrive sorted by account id (so wallet rows are always locked in one order: no deadlocks),
    -- each account once, non-zero, summing to zero.
    IF n < 2 OR n <> coalesce(array_length(p_amounts, 1), 0) THEN
        RAISE EXCEPTION 'a ledger transaction needs at least two legs (got %)', n USING ERRCODE = 'LG004';
    END IF;
    FOR i IN 1..n LOOP
        IF p_account_ids[i] IS NULL OR p_amounts[i] IS NULL OR p_amounts[i] = 0 THEN
            RAISE EXCEPTION 'leg % has no account or a zero amount', i USING ERRCODE = 'LG004';
        END IF;
        IF i > 1 AND p_account_ids[i] <= p_account_ids[i - 1] THEN
            RAISE EXCEPTION 'legs must be sorted by account id, one leg per account' USING ERRCODE = 'LG004';
        END IF;
        total := total + p_amounts[i];
    END LOOP;
    IF total <> 0 THEN
        RAISE EXCEPTION 'legs sum to % kobo, not 0', total USING ERRCODE = 'LG004';
    END IF;
    legs_hash := encode(sha256(convert_to(
        p_kind || '|' || array_to_string(p_account_ids, ',') || '|' || array_to_string(p_amounts, ','),
        'UTF8')), 'hex');

    -- The idempotency key first: a concurrent poster of the same key waits here until the first commits
    -- (then sees its row) or rolls back (then inserts its own).
    INSERT INTO ledger_transactions AS t
        (idempotency_key, kind, memo, reference_type, reference_id, created_by, legs_hash)
    VALUES (p_key, p_kind, p_memo, p_reference_type, p_reference_id, p_created_by, legs_hash)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING t.id INTO tx_id;

    IF tx_id IS NULL THEN
        SELECT t.id, t.legs_hash INTO tx_id, stored_hash
        FROM ledger_transactions t WHERE t.idempotency_key = p_key;
        IF stored_hash IS DISTINCT FROM legs_hash THEN
            RAISE EXCEPTION 'idempotency key % was already used for different legs', p_key
                USING ERRCODE = 'LG002', DETAIL = format('transaction %s', tx_id);
        END IF;
        replayed := true;
        SELECT coalesce(array_agg(a.id ORDER BY a.id), '{}'), coalesce(array_agg(a.balance ORDER BY a.id), '{}')
        INTO wallet_ids, wallet_balances
        FROM ledger_accounts a WHERE a.id = ANY (p_account_ids) AND a.balance IS NOT NULL;
        RETURN;
    END IF;

    replayed := false;
    -- Lets this function's UPDATEs through the trigger that refuses any other change of a balance.
    PERFORM set_config('ledger.posting', 'on', true);
    wallet_ids := '{}';
    wallet_balances := '{}';
    balances_after := array_fill(NULL::bigint, ARRAY[n]);
    FOR i IN 1..n LOOP
        -- Wallets: an atomic conditional update (under READ COMMITTED a waiter re-checks the new balance).
        -- A system account has a NULL balance, matches nothing here and is never locked.
        UPDATE ledger_accounts a SET balance = a.balance + p_amounts[i]
        WHERE a.id = p_account_ids[i] AND a.balance + p_amounts[i] >= 0
        RETURNING a.balance INTO new_balance;
        IF FOUND THEN
            balances_after[i] := new_balance;
            wallet_ids := wallet_ids || p_account_ids[i];
            wallet_balances := wallet_balances || new_balance;
        ELSE
            SELECT a.balance INTO new_balance FROM ledger_accounts a WHERE a.id = p_account_ids[i];
            IF NOT FOUND THEN
                RAISE EXCEPTION 'no ledger account %', p_account_ids[i] USING ERRCODE = 'LG003';
            ELSIF new_balance IS NOT NULL THEN
                RAISE EXCEPTION 'insufficient funds in account %', p_account_ids[i]
                    USING ERRCODE = 'LG001',
                          DETAIL = format('account=%s balance=%s amount=%s', p_account_ids[i], new_balance, p_amounts[i]);
            END IF;
        END IF;
    END LOOP;
    PERFORM set_config('ledger.posting', 'off', true);

    INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)
    SELECT tx_id, l.account_id, l.amount, l.balance_after
    FROM unnest(p_account_ids, p_amounts, balances_after) AS l(account_id, amount, balance_after);
END
$$;

-- Opening accounts. A wallet opens empty (balance 0) for an existing user, once: a second call returns the
-- same account. A system account keeps no balance and is addressed by a code that is not a wallet's. Both
-- are race-safe (ON CONFLICT DO NOTHING, then read: under READ COMMITTED the read sees a row a concurrent
-- call has just committed) and return the account id.

CREATE OR REPLACE FUNCTION ledger_open_wallet(p_user_id uuid) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_user_id IS NULL THEN
        RAISE EXCEPTION 'a wallet needs a user' USING ERRCODE = 'LG003';
    END IF;
    INSERT INTO ledger_accounts (code, kind, name, user_id, balance)
    VALUES ('wallet:' || p_user_id::text, 'wallet', 'Customer wallet', p_user_id, 0)
    ON CONFLICT DO NOTHING;
    SELECT a.id INTO v_id FROM ledger_accounts a WHERE a.user_id = p_user_id AND a.kind = 'wallet';
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'the wallet of user % could not be opened', p_user_id USING ERRCODE = 'LG003';
    END IF;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION ledger_open_system_account(p_code text, p_name text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_code IS NULL OR p_code !~ '^[a-z][a-z0-9_]*(:[a-z0-9][a-z0-9_-]*)?$' OR p_code LIKE 'wallet:%' THEN
        RAISE EXCEPTION 'invalid system account code %', p_code USING ERRCODE = 'LG003';
    END IF;
    INSERT INTO ledger_accounts (code, kind, name, user_id, balance)
    VALUES (p_code, 'system', coalesce(p_name, ''), NULL, NULL)
    ON CONFLICT DO NOTHING;
    SELECT a.id INTO v_id FROM ledger_accounts a WHERE a.code = p_code AND a.kind = 'system';
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'system account % could not be opened', p_code USING ERRCODE = 'LG003';
    END IF;
    RETURN v_id;
END
$$;

-- A wallet's balance read under a row lock held to the end of the caller's transaction, for a decision
-- that must not race a posting (a referral claw-back takes back at most what is there). The application
-- role cannot lock ledger rows itself (that needs UPDATE on the table). NULL for a system account.

CREATE OR REPLACE FUNCTION ledger_lock_wallet(p_account_id bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_balance bigint;
BEGIN
    SELECT a.balance INTO v_balance FROM ledger_accounts a WHERE a.id = p_account_id AND a.kind = 'wallet'
    FOR UPDATE;
    RETURN v_balance;
END
$$;

-- Zero-sum, checked at COMMIT after every leg is in: a transaction row without its entries, or an entry
-- added later to an existing transaction, both fail here.

CREATE OR REPLACE FUNCTION ledger_assert_balanced(p_transaction_id bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    entry_count bigint;
    total numeric;
BEGIN
    -- Schema-qualified: it runs as whoever commits, and a temporary table of theirs named ledger_entries
    -- would otherwise be read instead.
    SELECT count(*), coalesce(sum(e.amount), 0) INTO entry_count, total
    FROM public.ledger_entries e WHERE e.transaction_id = p_transaction_id;
    IF entry_count < 2 OR total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: % entries summing to % kobo',
            p_transaction_id, entry_count, total USING ERRCODE = 'LG004';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION ledger_transactions_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_balanced(NEW.id);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION ledger_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_balanced(NEW.transaction_id);
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_transactions_balanced();

CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entries_balanced();

-- Append-only: corrections are new, reversing transactions. Accounts are never removed or re-addressed.

CREATE OR REPLACE FUNCTION ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the ledger is append-only (post a reversing transaction)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'LG005';
END
$$;

CREATE OR REPLACE FUNCTION ledger_reject_balance_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wallet balances change only through ledger_post (account %)', OLD.id
        USING ERRCODE = 'LG005';
END
$$;

CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change();

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change();

CREATE TRIGGER ledger_accounts_permanent BEFORE DELETE OR TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change();

CREATE TRIGGER ledger_accounts_fixed_identity BEFORE UPDATE OF id, code, kind, user_id ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change();

-- balance == SUM(entries) holds because nothing but ledger_post (which writes the entries in the same
-- statement) may change a balance. The WHEN test is evaluated inline: no function call on the hot path.

CREATE TRIGGER ledger_accounts_balance_via_post BEFORE UPDATE OF balance ON ledger_accounts
    FOR EACH ROW WHEN (current_setting('ledger.posting', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION ledger_reject_balance_change();
