"""The posting API on real PostgreSQL: balances, idempotency, typed errors, caller's transaction, queries."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.accounts.models import User
from app.ledger.accounts import (
    MONNIFY_CLEARING,
    PURCHASES_IN_FLIGHT,
    REVENUE_COMMISSION,
    provider_float,
    resolve_accounts,
    system_account_id,
    system_account_ids,
    wallet_account_id,
)
from app.ledger.errors import IdempotencyConflict, InsufficientFunds, InvalidPosting, UnknownAccount
from app.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from app.ledger.posting import Leg, credit, debit, post_transaction, transfer
from app.ledger.queries import (
    account_balance,
    find_transaction,
    statement,
    system_balances,
    transaction_entries,
    wallet_balance,
    wallet_statement,
)
from tests.factories import create_user
from tests.helpers import sign_up
from tests.integration.ledger_fixtures import fund, make_wallets


async def _count(session, model) -> int:
    return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_funding_then_purchase_moves_money_and_records_balance_after(db):
    user = await create_user(db)
    wallet = await wallet_account_id(db, user.id)
    result = await fund(db, wallet, 50_000, key="monnify:REF-1")
    assert not result.replayed and result.balances == {wallet: 50_000}
    ids = await system_account_ids(db, [PURCHASES_IN_FLIGHT, provider_float("stub"), REVENUE_COMMISSION])
    purchase = await post_transaction(
        db,
        key="purchase:1",
        kind="purchase",
        legs=[debit(wallet, 20_000), credit(ids[PURCHASES_IN_FLIGHT], 20_000)],
        memo="MTN airtime 08031234567",
        reference=("purchase", 1),
        created_by=f"user:{user.id}",
    )
    settle = await post_transaction(
        db,
        key="settle:1",
        kind="purchase_settled",
        legs=[
            debit(ids[PURCHASES_IN_FLIGHT], 20_000),
            credit(ids[provider_float("stub")], 19_400),
            credit(ids[REVENUE_COMMISSION], 600),
        ],
        reference=("purchase", 1),
    )
    await db.commit()

    assert purchase.balances == {wallet: 30_000}
    assert settle.balances == {}  # no wallet leg, and system accounts keep no running balance
    assert await wallet_balance(db, user.id) == 30_000
    assert await account_balance(db, ids[PURCHASES_IN_FLIGHT]) == 0
    balances = await system_balances(db)
    assert balances[MONNIFY_CLEARING] == -50_000
    assert balances[provider_float("stub")] == 19_400
    assert balances[REVENUE_COMMISSION] == 600
    assert sum(balances.values()) + 30_000 == 0
    tx = await find_transaction(db, "purchase:1")
    assert tx is not None and tx.id == purchase.transaction_id
    assert (tx.kind, tx.memo, tx.reference_type, tx.reference_id) == (
        "purchase",
        "MTN airtime 08031234567",
        "purchase",
        "1",
    )
    assert tx.created_by == f"user:{user.id}" and len(tx.legs_hash) == 64
    assert await transaction_entries(db, settle.transaction_id) == sorted(
        [(PURCHASES_IN_FLIGHT, -20_000), (provider_float("stub"), 19_400), (REVENUE_COMMISSION, 600)],
        key=lambda leg: ids[leg[0]],
    )
    entries = (await db.execute(select(LedgerEntry).order_by(LedgerEntry.id))).scalars().all()
    by_account = {(e.transaction_id, e.account_id): e for e in entries}
    assert by_account[(purchase.transaction_id, wallet)].balance_after == 30_000
    assert by_account[(purchase.transaction_id, ids[PURCHASES_IN_FLIGHT])].balance_after is None


async def test_same_key_same_legs_is_a_replay_that_moves_nothing(db, sessionmaker):
    (wallet,) = await make_wallets(sessionmaker, 1)
    first = await fund(db, wallet, 1_000, key="monnify:X")
    await db.commit()
    again = await fund(db, wallet, 1_000, key="monnify:X")
    await db.commit()
    assert again.replayed and not first.replayed
    assert again.transaction_id == first.transaction_id
    assert again.balances == {wallet: 1_000}
    assert await account_balance(db, wallet) == 1_000
    assert await _count(db, LedgerTransaction) == 1  # make_wallets(fund=0) posts nothing
    assert await _count(db, LedgerEntry) == 2


async def test_same_key_different_legs_or_kind_is_a_conflict(db, sessionmaker):
    a, b = await make_wallets(sessionmaker, 2, fund=5_000)
    first = await transfer(db, key="t:1", from_account=a, to_account=b, amount=100, kind="transfer")
    await db.commit()
    for kwargs in (
        {"amount": 101, "kind": "transfer"},
        {"amount": 100, "kind": "refund"},
    ):
        with pytest.raises(IdempotencyConflict) as caught:
            await transfer(db, key="t:1", from_account=a, to_account=b, **kwargs)
        assert caught.value.key == "t:1" and caught.value.transaction_id == first.transaction_id
        await db.rollback()
    with pytest.raises(IdempotencyConflict):  # the reverse direction is different legs too
        await transfer(db, key="t:1", from_account=b, to_account=a, amount=100, kind="transfer")
    await db.rollback()
    assert await account_balance(db, a) == 4_900
    assert await account_balance(db, b) == 5_100


async def test_overdraft_is_insufficient_funds_and_moves_nothing(db, sessionmaker):
    a, b = await make_wallets(sessionmaker, 2, fund=1_000)
    with pytest.raises(InsufficientFunds) as caught:
        await transfer(db, key="t:over", from_account=a, to_account=b, amount=1_001, kind="transfer")
    assert (caught.value.account_id, caught.value.balance, caught.value.amount) == (a, 1_000, -1_001)
    await db.rollback()
    assert await account_balance(db, a) == 1_000
    assert await find_transaction(db, "t:over") is None
    # The key was not consumed: the same posting succeeds once the money is there.
    await fund(db, a, 1)
    result = await transfer(db, key="t:over", from_account=a, to_account=b, amount=1_001, kind="transfer")
    await db.commit()
    assert result.balances == {a: 0, b: 2_001}


async def test_posting_runs_inside_the_callers_transaction(db, sessionmaker):
    a, b = await make_wallets(sessionmaker, 2, fund=1_000)
    await transfer(db, key="t:rolled-back", from_account=a, to_account=b, amount=400, kind="transfer")
    async with sessionmaker() as other:  # not committed: nobody else sees it
        assert await account_balance(other, a) == 1_000
    await db.rollback()
    assert await account_balance(db, a) == 1_000
    assert await find_transaction(db, "t:rolled-back") is None


async def test_a_savepoint_keeps_the_callers_transaction_usable_after_a_refusal(db, sessionmaker):
    a, b = await make_wallets(sessionmaker, 2, fund=1_000)
    with pytest.raises(InsufficientFunds):
        async with db.begin_nested():
            await transfer(db, key="t:too-much", from_account=a, to_account=b, amount=5_000, kind="transfer")
    result = await transfer(db, key="t:fits", from_account=a, to_account=b, amount=500, kind="transfer")
    # The savepoint's rollback also restored the guard on balances: the flag ledger_post raises is down, so
    # even the owner's raw update would be refused (the application role may not update at all).
    flag = (await db.execute(text("SELECT current_setting('ledger.posting', true)"))).scalar_one()
    assert flag in (None, "", "off")
    with pytest.raises(DBAPIError):
        async with db.begin_nested():
            await db.execute(text("UPDATE ledger_accounts SET balance = balance + 1"))
    await db.commit()
    assert result.balances == {a: 500, b: 1_500}
    assert await find_transaction(db, "t:too-much") is None


async def test_unknown_account_is_typed(db, sessionmaker):
    (a,) = await make_wallets(sessionmaker, 1, fund=1_000)
    with pytest.raises(UnknownAccount):
        await transfer(db, key="t:nowhere", from_account=a, to_account=a + 10_000, amount=5, kind="transfer")
    await db.rollback()


@pytest.mark.parametrize(
    ("legs", "message"),
    [
        ([Leg(1, 100)], "at least two legs"),
        ([Leg(1, 100), Leg(2, -99)], "sum to 0"),
        ([Leg(1, 0), Leg(2, 0)], "non-zero"),
        ([Leg(1, 100), Leg(1, -100)], "more than one leg"),
        ([Leg(1, 1.5), Leg(2, -1.5)], "non-zero integer"),  # type: ignore[arg-type]
        ([Leg(1, True), Leg(2, -1)], "non-zero integer"),  # type: ignore[arg-type]
    ],
)
async def test_invalid_legs_are_refused_before_any_sql(db, legs, message):
    with pytest.raises(InvalidPosting, match=message):
        await post_transaction(db, key="bad", kind="transfer", legs=legs)
    # Nothing was sent, so the session's transaction is still usable.
    assert (await db.execute(text("SELECT 1"))).scalar_one() == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"key": ""}, {"key": "k" * 201}, {"kind": "Has Spaces"}, {"memo": "m" * 256}, {"created_by": ""}],
)
async def test_invalid_fields_are_refused(db, kwargs):
    args = {"key": "k", "kind": "transfer", "legs": [Leg(1, 1), Leg(2, -1)], **kwargs}
    with pytest.raises(InvalidPosting):
        await post_transaction(db, **args)


async def test_system_accounts_are_get_or_create_and_stable(db, sessionmaker):
    first = await system_account_id(db, MONNIFY_CLEARING)
    await db.commit()
    ids = await system_account_ids(db, [MONNIFY_CLEARING, provider_float("vtpass")])
    await db.commit()
    assert ids[MONNIFY_CLEARING] == first
    row = (
        await db.execute(select(LedgerAccount).where(LedgerAccount.id == ids[provider_float("vtpass")]))
    ).scalar_one()
    assert (row.kind, row.balance, row.user_id, row.name) == ("system", None, None, "Provider float: vtpass")
    with pytest.raises(ValueError):
        await system_account_id(db, "no_such_account")


async def test_resolve_accounts_returns_wallets_and_system_accounts_together(db, sessionmaker):
    user = await create_user(db)
    await db.commit()
    codes = [PURCHASES_IN_FLIGHT, provider_float("stub")]
    first = await resolve_accounts(db, system=codes, wallets=[user.id])
    await db.commit()
    again = await resolve_accounts(db, system=codes, wallets=[user.id])
    assert first == again
    assert again.wallets == {user.id: await wallet_account_id(db, user.id)}
    assert set(again.system) == {PURCHASES_IN_FLIGHT, provider_float("stub")}
    assert await _count(db, LedgerAccount) == 3


async def test_every_new_user_gets_an_empty_wallet_in_the_sign_up_transaction(db):
    user = await create_user(db)  # UserService.register, as the CLI and the pages use it
    wallet = (await db.execute(select(LedgerAccount).where(LedgerAccount.user_id == user.id))).scalar_one()
    assert (wallet.kind, wallet.balance, wallet.code) == ("wallet", 0, f"wallet:{user.id}")
    assert await wallet_balance(db, user.id) == 0
    assert await wallet_account_id(db, user.id) == wallet.id


async def test_web_sign_up_opens_a_wallet(client, db):
    response = await sign_up(client, email="walleted@example.ng")
    assert response.status_code in (302, 303)
    user = (await db.execute(select(User).where(User.email == "walleted@example.ng"))).scalar_one()
    assert await _count(db, LedgerAccount) == 1
    assert await wallet_balance(db, user.id) == 0


async def test_statement_is_keyset_paginated_newest_first(db, sessionmaker):
    a, b = await make_wallets(sessionmaker, 2, fund=10_000)
    for i in range(7):
        await transfer(
            db,
            key=f"t:{i}",
            from_account=a,
            to_account=b,
            amount=100 + i,
            kind="transfer",
            memo=f"#{i}",
            reference=("test", i),
        )
    await db.commit()
    pages, before = [], None
    while True:
        page = await statement(db, a, limit=3, before=before)
        pages.append(page.lines)
        if page.next_before is None:
            break
        before = page.next_before
    assert [len(p) for p in pages] == [3, 3, 2]  # 7 transfers + the funding
    lines = [line for p in pages for line in p]
    assert [line.memo for line in lines[:7]] == [f"#{i}" for i in reversed(range(7))]
    assert lines[-1].kind == "funding" and lines[-1].amount == 10_000
    assert lines[0].balance_after == 10_000 - sum(100 + i for i in range(7))
    assert all(x.entry_id > y.entry_id for x, y in itertools.pairwise(lines))
    assert (lines[0].reference_type, lines[0].reference_id) == ("test", "6")
    running = [line.balance_after for line in reversed(lines)]
    amounts = [line.amount for line in reversed(lines)]
    assert running == [sum(amounts[: i + 1]) for i in range(len(amounts))]


async def test_wallet_statement_of_a_user(db):
    user = await create_user(db)
    wallet = await wallet_account_id(db, user.id)
    await fund(db, wallet, 700)
    await db.commit()
    page = await wallet_statement(db, user.id)
    assert [(line.amount, line.balance_after) for line in page.lines] == [(700, 700)]
