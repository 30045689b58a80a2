"""create ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 04:00:00+00:00

Tables for the double-entry ledger plus what the ORM cannot express, all enforced by PostgreSQL:
- `ledger_post(...)`: the one posting statement (idempotent insert, wallet updates in account order,
  entries with balance_after), raising custom SQLSTATEs that app.ledger.errors maps to typed errors:
  LG001 insufficient funds, LG002 idempotency conflict, LG003 unknown account, LG004 invalid or
  unbalanced legs, LG005 change to append-only data.
- deferred constraint triggers: every transaction has >= 2 entries summing to zero, checked at COMMIT;
- statement triggers rejecting UPDATE/DELETE/TRUNCATE on transactions and entries, and DELETE/TRUNCATE
  or identity changes on accounts; a row trigger rejecting any change of a wallet balance made outside
  ledger_post. They are ordinary triggers, so the test suite's clean-up (which runs
  with session_replication_role = replica) can still empty the tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]

LEDGER_POST = """
CREATE FUNCTION ledger_post(
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
) LANGUAGE plpgsql AS $$
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
$$
"""

# asyncpg runs one statement per execute: each DDL statement is its own string.
CHECK_BALANCED = (
    """
CREATE FUNCTION ledger_assert_balanced(p_transaction_id bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    entry_count bigint;
    total numeric;
BEGIN
    SELECT count(*), coalesce(sum(e.amount), 0) INTO entry_count, total
    FROM ledger_entries e WHERE e.transaction_id = p_transaction_id;
    IF entry_count < 2 OR total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: % entries summing to % kobo',
            p_transaction_id, entry_count, total USING ERRCODE = 'LG004';
    END IF;
END
$$
""",
    """
CREATE FUNCTION ledger_transactions_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_balanced(NEW.id);
    RETURN NULL;
END
$$
""",
    """
CREATE FUNCTION ledger_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_balanced(NEW.transaction_id);
    RETURN NULL;
END
$$
""",
    # Checked at COMMIT, after every leg is in: a transaction row without its entries, or an entry added
    # later to an existing transaction, both fail here.
    """
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_transactions_balanced()
""",
    """
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entries_balanced()
""",
)

APPEND_ONLY = (
    """
CREATE FUNCTION ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the ledger is append-only (post a reversing transaction)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'LG005';
END
$$
""",
    """
CREATE FUNCTION ledger_reject_balance_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wallet balances change only through ledger_post (account %)', OLD.id
        USING ERRCODE = 'LG005';
END
$$
""",
    """
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()
""",
    """
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()
""",
    # Accounts are never removed or re-addressed; only ledger_post changes a wallet's balance.
    """
CREATE TRIGGER ledger_accounts_permanent BEFORE DELETE OR TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()
""",
    """
CREATE TRIGGER ledger_accounts_fixed_identity BEFORE UPDATE OF id, code, kind, user_id ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()
""",
    # balance == SUM(entries) holds because nothing but ledger_post (which writes the entries in the same
    # statement) may change a balance. The WHEN test is evaluated inline: no function call on the hot path.
    """
CREATE TRIGGER ledger_accounts_balance_via_post BEFORE UPDATE OF balance ON ledger_accounts
    FOR EACH ROW WHEN (current_setting('ledger.posting', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION ledger_reject_balance_change()
""",
)


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False, start=1, increment=1), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=120), server_default=sa.text("''"), nullable=False),
        sa.Column("user_id", sa.GUID(length=16), nullable=True),
        sa.Column("balance", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at", sa.DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint("kind IN ('wallet', 'system')", name=op.f("ck_ledger_accounts_kind")),
        sa.CheckConstraint(
            "(kind = 'wallet' AND user_id IS NOT NULL AND balance IS NOT NULL)"
            " OR (kind = 'system' AND user_id IS NULL AND balance IS NULL)",
            name=op.f("ck_ledger_accounts_wallet_shape"),
        ),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_ledger_accounts_balance_non_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ledger_accounts_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
        sa.UniqueConstraint("user_id", name=op.f("uq_ledger_accounts_user_id")),
    )
    # Room on each page for the new row version of a wallet update, so it stays a HOT update.
    op.execute("ALTER TABLE ledger_accounts SET (fillfactor = 70)")
    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False, start=1, increment=1), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("memo", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column("reference_type", sa.String(length=32), nullable=True),
        sa.Column("reference_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), server_default=sa.text("'system'"), nullable=False),
        sa.Column("legs_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", sa.DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "(reference_type IS NULL) = (reference_id IS NULL)",
            name=op.f("ck_ledger_transactions_reference_pair"),
        ),
        sa.CheckConstraint("idempotency_key <> ''", name=op.f("ck_ledger_transactions_key_not_empty")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_transactions_idempotency_key")),
    )
    op.create_index(
        "ix_ledger_transactions_reference",
        "ledger_transactions",
        ["reference_type", "reference_id"],
        unique=False,
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False, start=1, increment=1), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_ledger_entries_amount_not_zero")),
        sa.CheckConstraint("balance_after >= 0", name=op.f("ck_ledger_entries_balance_after_non_negative")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_entries_account_id_ledger_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_entries_transaction_id_ledger_transactions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("transaction_id", "account_id", name=op.f("uq_ledger_entries_transaction_id")),
    )
    op.create_index("ix_ledger_entries_account_id_id", "ledger_entries", ["account_id", "id"], unique=False)
    for statement in (LEDGER_POST, *CHECK_BALANCED, *APPEND_ONLY):
        op.execute(statement)
    # Users who signed up before the ledger existed get their (empty) wallet now; new ones get it at sign-up.
    op.execute(
        "INSERT INTO ledger_accounts (code, kind, name, user_id, balance)"
        " SELECT 'wallet:' || id::text, 'wallet', 'Customer wallet', id, 0 FROM users"
    )


def downgrade() -> None:
    for table in ("ledger_entries", "ledger_transactions", "ledger_accounts"):
        op.execute(f"DROP TABLE {table}")  # DROP, unlike DELETE/TRUNCATE, is not blocked by the triggers
    for function in (
        "ledger_post(text, text, text, text, text, text, bigint[], bigint[])",
        "ledger_transactions_balanced()",
        "ledger_entries_balanced()",
        "ledger_assert_balanced(bigint)",
        "ledger_reject_change()",
        "ledger_reject_balance_change()",
    ):
        op.execute(f"DROP FUNCTION {function}")
