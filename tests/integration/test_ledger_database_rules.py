"""What PostgreSQL itself enforces, proven with raw SQL that bypasses the posting API.

Two layers, each proven on its own:
- the triggers and constraints hold for every role, the tables' owner included (`owner_engine`);
- the application's role (`engine`, what the app connects as) cannot even try: it has SELECT alone on the
  ledger tables, owns nothing and is no superuser, so it cannot write them, switch the triggers off or fake
  the posting flag; it moves money and opens accounts only through the SECURITY DEFINER functions
  (app/core/roles.py, app/ledger/sql/ledger.sql).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.ledger.errors import (
    AppendOnlyViolation,
    InsufficientFunds,
    InvalidPosting,
    UnbalancedTransaction,
    sqlstate_of,
    translate,
)
from app.ledger.posting import transfer
from tests.integration.ledger_fixtures import insert_users, make_wallets


async def _raw(engine, *statements: str) -> None:
    """Run statements in one transaction on a plain connection and commit."""
    async with engine.connect() as conn:
        for statement in statements:
            await conn.execute(text(statement))
        await conn.commit()


async def _raw_transaction(conn, key: str) -> int:
    """A transaction header inserted by hand, outside ledger_post."""
    insert = (
        "INSERT INTO ledger_transactions (idempotency_key, kind, legs_hash)"
        " VALUES (:k, 'raw', 'x') RETURNING id"
    )
    return (await conn.execute(text(insert), {"k": key})).scalar_one()


async def _users(sessionmaker, count: int) -> list[uuid.UUID]:
    async with sessionmaker() as session, session.begin():
        return await insert_users(session, count)


async def _posted(sessionmaker) -> tuple[int, int, int]:
    a, b = await make_wallets(sessionmaker, 2, fund=1_000)
    async with sessionmaker() as session, session.begin():
        result = await transfer(session, key="t:1", from_account=a, to_account=b, amount=300, kind="transfer")
    return result.transaction_id, a, b


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount = amount * 2",
        "UPDATE ledger_entries SET balance_after = 0 WHERE id = -1",  # even when no row matches
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries",
        "UPDATE ledger_transactions SET memo = 'edited'",
        "DELETE FROM ledger_transactions",
        "TRUNCATE ledger_transactions CASCADE",
        "DELETE FROM ledger_accounts",
        "TRUNCATE ledger_accounts CASCADE",
        "UPDATE ledger_accounts SET user_id = NULL, kind = 'system', balance = NULL",
        "UPDATE ledger_accounts SET code = 'monnify_clearing2' WHERE code = 'monnify_clearing'",
        "UPDATE ledger_accounts SET balance = balance + 500 WHERE kind = 'wallet'",  # only ledger_post may
    ],
)
async def test_ledger_rows_cannot_be_changed_or_removed(db, sessionmaker, owner_engine, statement):
    await _posted(sessionmaker)
    with pytest.raises(DBAPIError) as caught:
        await _raw(owner_engine, statement)
    assert sqlstate_of(caught.value) == "LG005"
    assert isinstance(translate(caught.value), AppendOnlyViolation)
    rows = (await db.execute(text("SELECT count(*) FROM ledger_entries"))).scalar_one()
    assert rows == 5  # funding (3 legs) + transfer (2 legs), untouched


async def test_unbalanced_entries_are_rejected_at_commit(db, sessionmaker, owner_engine):
    _, a, b = await _posted(sessionmaker)
    async with owner_engine.connect() as conn:
        tx = await _raw_transaction(conn, "raw")
        await conn.execute(
            text(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount)"
                " VALUES (:t, :a, -100), (:t, :b, 99)"
            ),
            {"t": tx, "a": a, "b": b},
        )
        # Deferred: the statements above succeed; COMMIT is what fails.
        with pytest.raises(DBAPIError) as caught:
            await conn.commit()
    assert isinstance(translate(caught.value), UnbalancedTransaction)
    assert "unbalanced" in str(caught.value)


@pytest.mark.parametrize(
    "entries",
    [
        [],  # a transaction with no entries
        [(":a", 0)],  # zero amounts are refused by a CHECK
    ],
)
async def test_transaction_without_two_real_legs_is_rejected(db, sessionmaker, owner_engine, entries):
    _, a, _ = await _posted(sessionmaker)
    with pytest.raises(DBAPIError):
        async with owner_engine.connect() as conn:
            tx = await _raw_transaction(conn, "lonely")
            for _account, amount in entries:
                await conn.execute(
                    text(
                        "INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES (:t, :a, :m)"
                    ),
                    {"t": tx, "a": a, "m": amount},
                )
            await conn.commit()
    assert (await db.execute(text("SELECT count(*) FROM ledger_transactions"))).scalar_one() == 2


async def test_an_entry_added_later_to_a_posted_transaction_is_rejected(db, sessionmaker, owner_engine):
    tx, _, _ = await _posted(sessionmaker)
    clearing = "(SELECT id FROM ledger_accounts WHERE code = 'monnify_clearing')"
    with pytest.raises(DBAPIError) as caught:
        await _raw(
            owner_engine,
            f"INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES ({tx}, {clearing}, 5)",
        )
    assert isinstance(translate(caught.value), UnbalancedTransaction)


@pytest.mark.ledger_drift
async def test_a_balanced_raw_insert_is_accepted_at_commit(db, sessionmaker, owner_engine):
    """The deferred check looks at the whole transaction at COMMIT, not at each statement.

    Raw entries skip ledger_post, so the cached wallet balances no longer match: reconcile must say so."""
    _, a, b = await _posted(sessionmaker)
    async with owner_engine.connect() as conn:
        tx = await _raw_transaction(conn, "two-step")
        for account, amount in ((a, -1), (b, 1)):
            await conn.execute(
                text("INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES (:t, :a, :m)"),
                {"t": tx, "a": account, "m": amount},
            )
        await conn.commit()
    from app.ledger.reconcile import run_reconcile

    report = await run_reconcile(sessionmaker)
    assert report.ledger_sum == 0
    assert not report.ok
    assert sorted(d.detail for d in report.drifts) == [
        "balance 1300 but entries sum to 1301, last balance_after None",
        "balance 700 but entries sum to 699, last balance_after None",
    ]


async def test_wallet_balance_cannot_go_negative_even_by_hand(db, sessionmaker, owner_engine):
    """The CHECK is the last line of defence, behind ledger_post's conditional update and the trigger that
    keeps every other statement away from balances (switched off here the way ledger_post does it)."""
    _, a, _ = await _posted(sessionmaker)
    with pytest.raises(DBAPIError) as caught:
        await _raw(
            owner_engine,
            "SELECT set_config('ledger.posting', 'on', true)",
            f"UPDATE ledger_accounts SET balance = -1 WHERE id = {a}",
        )
    assert sqlstate_of(caught.value) == "23514"  # check_violation
    assert "ck_ledger_accounts_balance_non_negative" in str(caught.value)


async def test_idempotency_key_is_unique(db, sessionmaker, owner_engine):
    await _posted(sessionmaker)
    with pytest.raises(DBAPIError) as caught:
        await _raw(
            owner_engine,
            "INSERT INTO ledger_transactions (idempotency_key, kind, legs_hash) VALUES ('t:1', 'raw', 'x')",
        )
    assert sqlstate_of(caught.value) == "23505"


async def test_ledger_post_itself_refuses_bad_legs(db, sessionmaker, engine):
    """The SQL function does not trust its caller: unsorted, unbalanced or overdrawing legs fail in SQL."""
    _, a, b = await _posted(sessionmaker)
    call = (
        "SELECT * FROM ledger_post('k', 'raw', '', NULL, NULL, 'system',"
        " ARRAY[{}]::bigint[], ARRAY[{}]::bigint[])"
    )
    for ids, amounts, error in (
        (f"{b},{a}", "1,-1", InvalidPosting | UnbalancedTransaction),
        (f"{a},{b}", "1,-2", InvalidPosting | UnbalancedTransaction),
        (f"{a}", "0", InvalidPosting | UnbalancedTransaction),
        (f"{a},{b}", "-5000,5000", InsufficientFunds),
    ):
        with pytest.raises(DBAPIError) as caught:
            await _raw(engine, call.format(ids, amounts))
        assert isinstance(translate(caught.value), error), caught.value


# -- As the application's role ------------------------------------------------------------------------------
# Each statement below is what a compromised or buggy application could send; each is refused for lack of a
# privilege (42501), before any trigger is even reached, and nothing changes.

INSUFFICIENT_PRIVILEGE = "42501"


async def _refused(engine, *statements: str) -> str:
    with pytest.raises(DBAPIError) as caught:
        await _raw(engine, *statements)
    return str(sqlstate_of(caught.value))


async def _ledger_state(db) -> tuple[int, int, int]:
    return tuple(
        (
            await db.execute(
                text(
                    "SELECT (SELECT count(*) FROM ledger_entries),"
                    " (SELECT count(*) FROM ledger_transactions),"
                    " (SELECT coalesce(sum(balance), 0) FROM ledger_accounts)"
                )
            )
        ).one()
    )


async def test_the_app_role_cannot_write_ledger_rows_directly(db, sessionmaker, engine):
    tx, a, b = await _posted(sessionmaker)
    before = await _ledger_state(db)
    for statement in (
        "INSERT INTO ledger_entries (transaction_id, account_id, amount)"
        f" VALUES ({tx}, {a}, 1), ({tx}, {b}, -1)",
        "INSERT INTO ledger_transactions (idempotency_key, kind, legs_hash) VALUES ('forged', 'raw', 'x')",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_transactions CASCADE",
        f"UPDATE ledger_accounts SET name = 'renamed' WHERE id = {a}",
        f"SELECT 1 FROM ledger_accounts WHERE id = {a} FOR UPDATE",  # not even a row lock
    ):
        assert await _refused(engine, statement) == INSUFFICIENT_PRIVILEGE, statement
    assert await _ledger_state(db) == before


async def test_the_posting_flag_does_not_open_balances_to_the_app_role(db, sessionmaker, engine):
    """`ledger.posting` is a custom setting any session may set; the trigger that trusts it is only the
    second guard. The first is that the application role has no UPDATE on ledger_accounts at all."""
    _, a, _ = await _posted(sessionmaker)
    for setting in ("SET ledger.posting = 'on'", "SELECT set_config('ledger.posting', 'on', true)"):
        state = await _refused(
            engine, setting, f"UPDATE ledger_accounts SET balance = balance + 500 WHERE id = {a}"
        )
        assert state == INSUFFICIENT_PRIVILEGE
    assert (await db.execute(text(f"SELECT balance FROM ledger_accounts WHERE id = {a}"))).scalar_one() == 700


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only",
        "ALTER TABLE ledger_accounts DISABLE TRIGGER ALL",
        "DROP TRIGGER ledger_accounts_balance_via_post ON ledger_accounts",
        "ALTER TABLE ledger_accounts DROP CONSTRAINT ck_ledger_accounts_balance_non_negative",
        "SET session_replication_role = replica",
        "ALTER TABLE ledger_accounts OWNER TO CURRENT_USER",
        "CREATE OR REPLACE FUNCTION ledger_reject_balance_change() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN NEW; END $$",
    ],
)
async def test_the_app_role_cannot_switch_the_guards_off(db, sessionmaker, engine, statement):
    await _posted(sessionmaker)
    assert await _refused(engine, statement) == INSUFFICIENT_PRIVILEGE


async def test_the_app_role_cannot_open_a_wallet_with_money_in_it(db, sessionmaker, engine):
    (user,) = await _users(sessionmaker, 1)
    state = await _refused(
        engine,
        "INSERT INTO ledger_accounts (code, kind, name, user_id, balance)"
        f" VALUES ('wallet:{user}', 'wallet', 'Customer wallet', '{user}', 1000000)",
    )
    assert state == INSUFFICIENT_PRIVILEGE
    # What it may do: open the wallet empty through the definer function, once, whatever it asks for.
    async with engine.begin() as conn:
        first = (await conn.execute(text("SELECT ledger_open_wallet(:u)"), {"u": user})).scalar_one()
        again = (await conn.execute(text("SELECT ledger_open_wallet(:u)"), {"u": user})).scalar_one()
    assert first == again
    row = (await db.execute(text(f"SELECT kind, balance FROM ledger_accounts WHERE id = {first}"))).one()
    assert tuple(row) == ("wallet", 0)
    # ... and system accounts, which keep no balance and never take a wallet's address.
    with pytest.raises(DBAPIError) as caught:
        await _raw(engine, f"SELECT ledger_open_system_account('wallet:{uuid.uuid4()}', 'x')")
    assert sqlstate_of(caught.value) == "LG003"


async def test_ledger_post_works_for_the_app_role_and_ignores_its_temporary_tables(db, sessionmaker, engine):
    """ledger_post runs as the owner with a fixed search_path: the app role's posting lands in the real
    tables even when its session has temporary tables named like them (which it may create)."""
    _, a, b = await _posted(sessionmaker)
    async with engine.connect() as conn:
        for table in ("ledger_entries", "ledger_accounts"):
            await conn.execute(text(f"CREATE TEMP TABLE {table} (LIKE public.{table}) ON COMMIT DROP"))
        result = (
            await conn.execute(
                text(
                    "SELECT * FROM ledger_post('app:1', 'transfer', '', NULL, NULL, 'system',"
                    f" ARRAY[{a}, {b}]::bigint[], ARRAY[-100, 100]::bigint[])"
                )
            )
        ).one()
        await conn.commit()
    assert result.replayed is False and list(result.wallet_balances) == [600, 1_400]
    entries = (
        await db.execute(
            text("SELECT count(*) FROM ledger_entries WHERE transaction_id = :t"), {"t": result.tx_id}
        )
    ).scalar_one()
    assert entries == 2


async def test_the_app_role_owns_nothing_and_has_only_its_privileges(db, engine, owner_engine):
    """The privilege model (app/core/roles.py) as the database has it after the migrations."""
    from app.core.roles import APPEND_ONLY_TABLES, DELETABLE_TABLES, READ_ONLY_TABLES

    async with engine.connect() as conn:
        me = (
            await conn.execute(
                text("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
            )
        ).one()
        owners = (
            (
                await conn.execute(
                    text(
                        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                        " UNION SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc p"
                        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
                    )
                )
            )
            .scalars()
            .all()
        )
        privileges = {
            row.table: {
                p
                for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
                if getattr(row, p.lower())
            }
            for row in await conn.execute(
                text(
                    "SELECT tablename AS table,"
                    + ",".join(
                        f" has_table_privilege(current_user, quote_ident(tablename), '{p}') AS {p.lower()}"
                        for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
                    )
                    + " FROM pg_tables WHERE schemaname = 'public'"
                )
            )
        }
    assert me.rolsuper is False and me.current_user not in owners
    assert len(privileges) > 10
    for table, granted in privileges.items():
        expected = (
            {"SELECT"}
            if table in READ_ONLY_TABLES
            else {"SELECT", "INSERT"}
            if table in APPEND_ONLY_TABLES
            else {"SELECT", "INSERT", "UPDATE", "DELETE"}
            if table in DELETABLE_TABLES
            else {"SELECT", "INSERT", "UPDATE"}
        )
        assert granted == expected, table
    # Roles other than these two cannot call the money functions at all.
    async with owner_engine.connect() as conn:
        public_can = (
            (
                await conn.execute(
                    text(
                        "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                        " WHERE n.nspname = 'public' AND has_function_privilege('public', p.oid, 'EXECUTE')"
                        # an extension's own functions (pg_trgm's similarity, ...) are not ours to grant
                        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass"
                        " AND d.objid = p.oid AND d.deptype = 'e')"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert public_can == []
