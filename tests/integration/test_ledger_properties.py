"""Property tests: random sequences of postings, replays, conflicts and overdraft attempts -- one after the
other against a model of the expected balances, and in concurrent bursts -- never leave a negative wallet
or a ledger that fails reconciliation."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ledger.accounts import MONNIFY_CLEARING, PURCHASES_IN_FLIGHT, system_account_ids
from app.ledger.errors import IdempotencyConflict, InsufficientFunds
from app.ledger.posting import Leg, post_transaction
from app.ledger.queries import account_balance
from app.ledger.reconcile import run_reconcile
from tests.integration.ledger_fixtures import make_wallets, racing_sessionmaker

WALLETS = 3
amounts = st.integers(min_value=1, max_value=3_000)
wallet = st.integers(min_value=0, max_value=WALLETS - 1)
operation = st.one_of(
    st.tuples(st.just("fund"), wallet, amounts),
    st.tuples(
        st.just("transfer"),
        st.tuples(wallet, st.integers(1, WALLETS - 1)).map(lambda p: (p[0], (p[0] + p[1]) % WALLETS)),
        amounts,
    ),
    st.tuples(st.just("purchase"), wallet, amounts),  # wallet -> in flight (may overdraw)
    st.tuples(st.just("split"), wallet, amounts),  # wallet -> two system accounts, 3 legs
    st.tuples(st.just("replay"), st.integers(min_value=0, max_value=50), st.booleans()),
)


@settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=3, max_size=30))
async def test_random_postings_keep_every_invariant(db, sessionmaker, ops):
    # Fixtures are not reset between examples: every example opens its own wallets and keys.
    run = uuid.uuid4().hex[:8]
    wallets = await make_wallets(sessionmaker, WALLETS)
    async with sessionmaker() as session, session.begin():
        system = await system_account_ids(session, [MONNIFY_CLEARING, PURCHASES_IN_FLIGHT])
    clearing, in_flight = system[MONNIFY_CLEARING], system[PURCHASES_IN_FLIGHT]
    expected = dict.fromkeys(wallets, 0)
    posted: list[tuple[str, str, list[Leg]]] = []  # (key, kind, legs) of successful postings

    async def post(key: str, kind: str, legs: list[Leg]) -> str:
        try:
            async with sessionmaker() as session, session.begin():
                result = await post_transaction(session, key=key, kind=kind, legs=legs)
        except InsufficientFunds:
            return "insufficient"
        except IdempotencyConflict:
            return "conflict"
        return "replayed" if result.replayed else "posted"

    for n, op in enumerate(ops):
        key = f"prop:{run}:{n}"
        if op[0] == "replay":
            if not posted:
                continue
            old_key, kind, legs = posted[op[1] % len(posted)]
            if op[2]:  # same legs: a replay that moves nothing
                assert await post(old_key, kind, legs) == "replayed"
            else:  # same key, different legs: refused
                changed = [Leg(leg.account_id, leg.amount * 2) for leg in legs]
                assert await post(old_key, kind, changed) == "conflict"
            continue
        if op[0] == "fund":
            legs = [Leg(clearing, -op[2]), Leg(wallets[op[1]], op[2])]
        elif op[0] == "transfer":
            (source, target), amount = op[1], op[2]
            legs = [Leg(wallets[source], -amount), Leg(wallets[target], amount)]
        elif op[0] == "purchase":
            legs = [Leg(wallets[op[1]], -op[2]), Leg(in_flight, op[2])]
        else:
            legs = [
                Leg(wallets[op[1]], -op[2]),
                Leg(in_flight, op[2] - op[2] // 3),
                Leg(clearing, op[2] // 3),
            ]
            legs = [leg for leg in legs if leg.amount]
        outcome = await post(key, op[0], legs)
        can_pay = all(
            expected.get(leg.account_id, 0) + leg.amount >= 0 for leg in legs if leg.account_id in expected
        )
        assert outcome == ("posted" if can_pay else "insufficient"), (op, expected)
        if outcome == "posted":
            posted.append((key, op[0], legs))
            for leg in legs:
                if leg.account_id in expected:
                    expected[leg.account_id] += leg.amount

    async with sessionmaker() as session:
        for account, balance in expected.items():
            assert await account_balance(session, account) == balance >= 0
    report = await run_reconcile(sessionmaker)
    assert report.ok, report.lines()


def _legs_for(op: tuple, wallets: list[int], clearing: int, in_flight: int) -> list[Leg]:
    kind, target, amount = op
    if kind == "fund":
        return [Leg(clearing, -amount), Leg(wallets[target], amount)]
    if kind == "transfer":
        return [Leg(wallets[target[0]], -amount), Leg(wallets[target[1]], amount)]
    return [Leg(wallets[target], -amount), Leg(in_flight, amount)]


burst_op = st.one_of(
    st.tuples(st.just("fund"), wallet, amounts),
    st.tuples(
        st.just("transfer"),
        st.tuples(wallet, st.integers(1, WALLETS - 1)).map(lambda p: (p[0], (p[0] + p[1]) % WALLETS)),
        amounts,
    ),
    st.tuples(st.just("purchase"), wallet, amounts),
)


@settings(
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bursts=st.lists(st.lists(burst_op, min_size=2, max_size=12), min_size=1, max_size=4),
    duplicate_keys=st.booleans(),
)
async def test_concurrent_bursts_keep_every_invariant(db, sessionmaker, settings, bursts, duplicate_keys):
    """Each burst runs at once on separate connections; some postings reuse one key (with the same legs)."""
    run = uuid.uuid4().hex[:8]
    wallets = await make_wallets(sessionmaker, WALLETS, fund=2_000)
    async with sessionmaker() as session, session.begin():
        system = await system_account_ids(session, [MONNIFY_CLEARING, PURCHASES_IN_FLIGHT])
    clearing, in_flight = system[MONNIFY_CLEARING], system[PURCHASES_IN_FLIGHT]
    applied: dict[str, list[Leg]] = {}

    async def post(racing, key: str, kind: str, legs: list[Leg]) -> None:
        try:
            async with racing() as session, session.begin():
                result = await post_transaction(session, key=key, kind=kind, legs=legs)
        except InsufficientFunds:
            return
        if not result.replayed:
            assert key not in applied, f"{key} moved money twice"
            applied[key] = legs

    async with racing_sessionmaker(settings) as racing:
        for b, burst in enumerate(bursts):
            calls = []
            for n, op in enumerate(burst):
                legs = _legs_for(op, wallets, clearing, in_flight)
                calls.append(post(racing, f"burst:{run}:{b}:{n}", op[0], legs))
                if duplicate_keys:  # the same posting raced by a twin
                    calls.append(post(racing, f"burst:{run}:{b}:{n}", op[0], legs))
            await asyncio.gather(*calls)

    async with sessionmaker() as session:
        for account in wallets:
            moved = sum(leg.amount for legs in applied.values() for leg in legs if leg.account_id == account)
            assert await account_balance(session, account) == 2_000 + moved >= 0
    report = await run_reconcile(sessionmaker)
    assert report.ok, report.lines()
