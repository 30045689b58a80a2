"""What PostgreSQL itself enforces, proven with raw SQL that bypasses the posting API (normal sessions)."""

from __future__ import annotations

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
from tests.integration.ledger_fixtures import make_wallets


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
async def test_ledger_rows_cannot_be_changed_or_removed(db, sessionmaker, engine, statement):
    await _posted(sessionmaker)
    with pytest.raises(DBAPIError) as caught:
        await _raw(engine, statement)
    assert sqlstate_of(caught.value) == "LG005"
    assert isinstance(translate(caught.value), AppendOnlyViolation)
    rows = (await db.execute(text("SELECT count(*) FROM ledger_entries"))).scalar_one()
    assert rows == 5  # funding (3 legs) + transfer (2 legs), untouched


async def test_unbalanced_entries_are_rejected_at_commit(db, sessionmaker, engine):
    _, a, b = await _posted(sessionmaker)
    async with engine.connect() as conn:
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
async def test_transaction_without_two_real_legs_is_rejected(db, sessionmaker, engine, entries):
    _, a, _ = await _posted(sessionmaker)
    with pytest.raises(DBAPIError):
        async with engine.connect() as conn:
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


async def test_an_entry_added_later_to_a_posted_transaction_is_rejected(db, sessionmaker, engine):
    tx, _, _ = await _posted(sessionmaker)
    clearing = "(SELECT id FROM ledger_accounts WHERE code = 'monnify_clearing')"
    with pytest.raises(DBAPIError) as caught:
        await _raw(
            engine,
            f"INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES ({tx}, {clearing}, 5)",
        )
    assert isinstance(translate(caught.value), UnbalancedTransaction)


@pytest.mark.ledger_drift
async def test_a_balanced_raw_insert_is_accepted_at_commit(db, sessionmaker, engine):
    """The deferred check looks at the whole transaction at COMMIT, not at each statement.

    Raw entries skip ledger_post, so the cached wallet balances no longer match: reconcile must say so."""
    _, a, b = await _posted(sessionmaker)
    async with engine.connect() as conn:
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


async def test_wallet_balance_cannot_go_negative_even_by_hand(db, sessionmaker, engine):
    """The CHECK is the last line of defence, behind ledger_post's conditional update and the trigger that
    keeps every other statement away from balances (switched off here the way ledger_post does it)."""
    _, a, _ = await _posted(sessionmaker)
    with pytest.raises(DBAPIError) as caught:
        await _raw(
            engine,
            "SELECT set_config('ledger.posting', 'on', true)",
            f"UPDATE ledger_accounts SET balance = -1 WHERE id = {a}",
        )
    assert sqlstate_of(caught.value) == "23514"  # check_violation
    assert "ck_ledger_accounts_balance_non_negative" in str(caught.value)


async def test_idempotency_key_is_unique(db, sessionmaker, engine):
    await _posted(sessionmaker)
    with pytest.raises(DBAPIError) as caught:
        await _raw(
            engine,
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
