"""Referral bonuses end to end: real Monnify webhooks and real purchases (VTpass adapter -> simulator) on
real PostgreSQL; every bonus is asserted in the ledger and the ledger reconciles after each test."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.accounts.models import User
from app.accounts.services import FormErrors
from app.core.events import PURCHASE_SETTLED, WALLET_FUNDED, WalletFunded
from app.ledger.accounts import EXPENSE_REFERRALS, MONNIFY_CLEARING, system_account_id
from app.ledger.models import LedgerTransaction
from app.ledger.posting import Leg, post_transaction
from app.ledger.queries import system_balances, wallet_balance
from app.referrals import config as referral_config
from app.referrals.config import ReferralConfig
from app.referrals.models import Referral, ReferralBonus
from app.referrals.service import clawback_key, funding_key, purchase_key
from app.vtu.config import VtuConfig
from app.vtu.models import FAILED, REVERSED, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.providers.catalog import ServiceKind
from app.vtu.transitions import settled_event
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator
from tests.helpers import log_in, sign_up
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import Harness, assert_reconciled, vtpass_harness

sim = purchase_fixtures.sim  # the VTpass simulator
sim_server = purchase_fixtures.sim_server

WEBHOOK = "/payments/webhooks/monnify/"
RULES = ReferralConfig(
    funding_bonus_kobo=10_000,  # ₦100
    funding_min_kobo=100_000,  # on a first transfer of ₦1,000 or more
    margin_bps=1_000,  # 10% of the margin
    cap_per_referred_kobo=100_000,  # ₦1,000 per referred user
)
# The provider pays 3% commission on airtime: a ₦1,000 top-up at face value has a ₦30 margin -> ₦3 share.
COMMISSION = VtuConfig(provider_commission_bps={ServiceKind.AIRTIME: 300})
TOPUP = 100_000
SHARE = 300


@pytest.fixture(autouse=True)
def rules() -> Iterator[ReferralConfig]:
    with referral_config.override(RULES) as config:
        yield config


@pytest.fixture
def monnify(settings: Any) -> MonnifySimulator:
    return MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )


@pytest.fixture
async def shop(db: Any, sessionmaker: Any, settings: Any, sim_server: Any, sim: Any) -> Any:
    """A PurchaseService selling airtime with a margin, through the real VTpass adapter to the simulator."""
    harness = vtpass_harness(sessionmaker, settings, sim_server[1].url, sim, config=COMMISSION)
    try:
        yield harness
    finally:
        await harness.aclose()


# -- helpers ---------------------------------------------------------------------------------------------
async def referred_pair(db: Any) -> tuple[User, User]:
    """A referrer and a friend who signed up with the referrer's code (the real sign-up service)."""
    referrer = await create_user(db)
    friend = await create_user(db, referral_code=referrer.referral_code)
    await db.commit()
    assert friend.referred_by_id == referrer.id
    return referrer, friend


async def webhook(client: Any, monnify: MonnifySimulator, user: User, amount_kobo: int) -> None:
    body, signature = monnify.build_webhook(user.account_reference, amount_kobo)
    response = await client.post(
        WEBHOOK, content=body, headers={"content-type": "application/json", "monnify-signature": signature}
    )
    assert response.status_code == 200


async def fund(sessionmaker: Any, user_id: uuid.UUID, amount: int) -> None:
    """Money in without a funding event (so no funding bonus): a posting from Monnify clearing."""
    async with sessionmaker() as session, session.begin():
        clearing = await system_account_id(session, MONNIFY_CLEARING)
        wallet = (
            await session.execute(text("SELECT id FROM ledger_accounts WHERE user_id = :u"), {"u": user_id})
        ).scalar_one()
        legs = [Leg(clearing, -amount), Leg(wallet, amount)]
        await post_transaction(session, key=f"test:fund:{uuid.uuid4()}", kind="funding", legs=legs)


async def balance(sessionmaker: Any, user_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


async def expense(sessionmaker: Any) -> int:
    async with sessionmaker() as session:
        return (await system_balances(session)).get(EXPENSE_REFERRALS, 0)


async def bonuses(sessionmaker: Any) -> list[ReferralBonus]:
    async with sessionmaker() as session:
        return list((await session.execute(select(ReferralBonus).order_by(ReferralBonus.id))).scalars())


async def earned(sessionmaker: Any, referred_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        row = await session.get(Referral, referred_id)
        assert row is not None
        return row.earned_kobo


async def referral_postings(sessionmaker: Any) -> list[str]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(LedgerTransaction.idempotency_key)
            .where(LedgerTransaction.idempotency_key.startswith("referral:"))
            .order_by(LedgerTransaction.id)
        )
        return list(rows.scalars())


def airtime(amount: int = TOPUP, phone: str = "08011111111") -> PurchaseRequest:
    return PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=amount)


# -- funding bonus ---------------------------------------------------------------------------------------
async def test_first_funding_at_the_minimum_pays_the_referrer_once(client, db, monnify, sessionmaker):
    referrer, friend = await referred_pair(db)
    await webhook(client, monnify, friend, 100_000)  # exactly ₦1,000
    assert await balance(sessionmaker, referrer.id) == 10_000
    assert await balance(sessionmaker, friend.id) == 100_000  # the friend's own money is untouched
    assert await expense(sessionmaker) == -10_000
    await webhook(client, monnify, friend, 500_000)  # later transfers pay nothing more
    assert await balance(sessionmaker, referrer.id) == 10_000
    [bonus] = await bonuses(sessionmaker)
    assert (bonus.key, bonus.kind, bonus.amount_kobo) == (funding_key(friend.id), "funding", 10_000)
    assert (bonus.referrer_id, bonus.referred_id) == (referrer.id, friend.id)
    assert await referral_postings(sessionmaker) == [funding_key(friend.id)]
    assert await earned(sessionmaker, friend.id) == 10_000
    await assert_reconciled(sessionmaker)


async def test_funding_below_the_minimum_pays_nothing_until_a_transfer_qualifies(
    client, db, monnify, sessionmaker
):
    referrer, friend = await referred_pair(db)
    await webhook(client, monnify, friend, 99_999)
    await webhook(client, monnify, friend, 50_000)
    assert await balance(sessionmaker, referrer.id) == 0
    assert await bonuses(sessionmaker) == []
    await webhook(client, monnify, friend, 250_000)  # the first qualifying transfer
    assert await balance(sessionmaker, referrer.id) == 10_000
    await webhook(client, monnify, friend, 250_000)
    assert await balance(sessionmaker, referrer.id) == 10_000
    assert await referral_postings(sessionmaker) == [funding_key(friend.id)]


async def test_one_webhook_delivered_ten_times_concurrently_pays_one_bonus(
    app, db, monnify, make_client, sessionmaker
):
    referrer, friend = await referred_pair(db)
    body, signature = monnify.build_webhook(friend.account_reference, 300_000)
    headers = {"content-type": "application/json", "monnify-signature": signature}

    async def deliver() -> int:
        async with make_client() as c:
            return (await c.post(WEBHOOK, content=body, headers=headers)).status_code

    assert await asyncio.gather(*(deliver() for _ in range(10))) == [200] * 10
    assert (await deliver()) == 200  # and a late replay
    assert await balance(sessionmaker, friend.id) == 300_000
    assert await balance(sessionmaker, referrer.id) == 10_000
    assert await referral_postings(sessionmaker) == [funding_key(friend.id)]
    await assert_reconciled(sessionmaker)


async def test_different_first_transfers_racing_pay_one_bonus(app, db, monnify, make_client, sessionmaker):
    referrer, friend = await referred_pair(db)
    deliveries = [monnify.build_webhook(friend.account_reference, 100_000 + n) for n in range(8)]

    async def deliver(body: bytes, signature: str) -> int:
        headers = {"content-type": "application/json", "monnify-signature": signature}
        async with make_client() as c:
            return (await c.post(WEBHOOK, content=body, headers=headers)).status_code

    assert await asyncio.gather(*(deliver(b, s) for b, s in deliveries)) == [200] * 8
    assert await balance(sessionmaker, friend.id) == sum(100_000 + n for n in range(8))
    assert await balance(sessionmaker, referrer.id) == 10_000
    assert len(await bonuses(sessionmaker)) == 1
    await assert_reconciled(sessionmaker)


async def test_a_replayed_funding_event_pays_once_even_concurrently(db, engine, sessionmaker):
    """The event itself replayed (not only the webhook): ten transactions emit the same WalletFunded."""
    referrer, friend = await referred_pair(db)
    funded = WalletFunded(
        user_id=friend.id,
        amount_paid_kobo=200_000,
        credited_kobo=200_000,
        transaction_reference="MNFY|replay|1",
        ledger_transaction_id=1,
    )

    async def replay() -> None:
        async with sessionmaker() as session, session.begin():
            await WALLET_FUNDED.emit(session, funded)

    await asyncio.gather(*(replay() for _ in range(10)))
    await replay()
    assert await balance(sessionmaker, referrer.id) == 10_000
    assert await referral_postings(sessionmaker) == [funding_key(friend.id)]
    assert await earned(sessionmaker, friend.id) == 10_000
    await assert_reconciled(sessionmaker)


# -- who may earn ----------------------------------------------------------------------------------------
async def test_no_referrer_no_bonus(client, db, monnify, sessionmaker):
    loner = await create_user(db)
    await db.commit()
    await webhook(client, monnify, loner, 500_000)
    assert await balance(sessionmaker, loner.id) == 500_000
    assert await bonuses(sessionmaker) == []
    assert await expense(sessionmaker) == 0
    async with sessionmaker() as session:
        assert await session.get(Referral, loner.id) is None


async def test_self_referral_is_refused_by_the_database_and_earns_nothing(client, db, monnify, sessionmaker):
    user = await create_user(db)
    await db.commit()
    with pytest.raises(IntegrityError, match="no_self_referral"):
        async with sessionmaker() as session, session.begin():
            await session.execute(text("UPDATE users SET referred_by_id = id WHERE id = :u"), {"u": user.id})
    # Nor can anyone sign up with a code that does not exist yet (their own): the code is made at sign-up.
    await webhook(client, monnify, user, 500_000)
    assert await bonuses(sessionmaker) == []
    assert await balance(sessionmaker, user.id) == 500_000


async def test_a_referral_loop_earns_nothing_either_way(client, db, monnify, sessionmaker):
    a, b = await referred_pair(db)  # a referred b at sign-up
    # Sign-up cannot make a loop (the referrer must already exist); a staff edit could. The trigger opens
    # a's referral row, and the rules refuse both directions.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE users SET referred_by_id = :b WHERE id = :a"), {"a": a.id, "b": b.id}
        )
    await webhook(client, monnify, b, 500_000)
    await webhook(client, monnify, a, 500_000)
    assert await balance(sessionmaker, a.id) == 500_000
    assert await balance(sessionmaker, b.id) == 500_000
    assert await bonuses(sessionmaker) == []
    await assert_reconciled(sessionmaker)


async def test_only_one_level_is_paid(client, db, monnify, sessionmaker):
    grandparent, parent = await referred_pair(db)
    child = await create_user(db, referral_code=parent.referral_code)
    await db.commit()
    await webhook(client, monnify, child, 100_000)
    assert await balance(sessionmaker, parent.id) == 10_000
    assert await balance(sessionmaker, grandparent.id) == 0
    assert [b.referrer_id for b in await bonuses(sessionmaker)] == [parent.id]


async def test_an_inactive_referrer_earns_nothing_and_cannot_refer(client, db, monnify, sessionmaker):
    referrer, friend = await referred_pair(db)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE users SET is_active = false WHERE id = :u"), {"u": referrer.id})
    await webhook(client, monnify, friend, 500_000)
    assert await bonuses(sessionmaker) == []
    assert await balance(sessionmaker, referrer.id) == 0
    # Sign-up (web ?ref= and `vtu users create --referrer` both use the same service) refuses the code.
    async with sessionmaker() as session:
        with pytest.raises(FormErrors) as refused:
            await create_user(session, referral_code=referrer.referral_code)
    assert "referral_code" in refused.value.fields
    response = await sign_up(client, referral_code=referrer.referral_code)
    assert response.status_code == 422 and "No customer has that referral code" in response.text


# -- purchase margin share -------------------------------------------------------------------------------
async def test_delivered_purchases_share_the_margin_failed_ones_do_not(shop: Harness, db, sessionmaker):
    referrer, friend = await referred_pair(db)
    await fund(sessionmaker, friend.id, 1_000_000)
    delivered = await shop.service.buy(friend, airtime())
    assert delivered.status == SUCCESSFUL and delivered.margin_kobo == 3_000
    failed = await shop.service.buy(friend, airtime(phone="08031234567"))  # sandbox: fails with 016
    assert failed.status == FAILED
    assert await balance(sessionmaker, referrer.id) == SHARE
    assert await balance(sessionmaker, friend.id) == 1_000_000 - TOPUP  # the buyer pays nothing extra
    assert await referral_postings(sessionmaker) == [purchase_key(delivered.id)]
    [bonus] = await bonuses(sessionmaker)
    assert (bonus.kind, bonus.purchase_id, bonus.amount_kobo) == ("purchase", delivered.id, SHARE)
    await assert_reconciled(sessionmaker)


async def test_the_cap_holds_across_many_purchases(shop: Harness, db, sessionmaker):
    referrer, friend = await referred_pair(db)
    await fund(sessionmaker, friend.id, 1_000_000)
    with referral_config.override(dataclasses.replace(RULES, cap_per_referred_kobo=1_000)):
        for _ in range(5):
            assert (await shop.service.buy(friend, airtime())).status == SUCCESSFUL
    # 300 + 300 + 300 + the last 100 that fits; the fifth purchase pays nothing.
    assert [b.amount_kobo for b in await bonuses(sessionmaker)] == [300, 300, 300, 100]
    assert await balance(sessionmaker, referrer.id) == 1_000
    assert await earned(sessionmaker, friend.id) == 1_000
    await assert_reconciled(sessionmaker)


async def test_the_cap_holds_for_concurrent_purchases_and_funding(
    shop: Harness, app, db, monnify, make_client, sessionmaker
):
    referrer, friend = await referred_pair(db)
    await fund(sessionmaker, friend.id, 2_000_000)
    body, signature = monnify.build_webhook(friend.account_reference, 100_000)
    headers = {"content-type": "application/json", "monnify-signature": signature}

    async def deliver() -> int:
        async with make_client() as c:
            return (await c.post(WEBHOOK, content=body, headers=headers)).status_code

    async def buy() -> str:
        return (await shop.service.buy(friend, airtime())).status

    cap = 10_000 + 5 * SHARE + 123  # the funding bonus and five shares fit, then a 123 kobo remainder
    with referral_config.override(dataclasses.replace(RULES, cap_per_referred_kobo=cap)):
        results = await asyncio.gather(deliver(), *(buy() for _ in range(12)))
    assert results == [200] + [SUCCESSFUL] * 12
    paid = await bonuses(sessionmaker)
    assert sum(b.amount_kobo for b in paid) == cap
    assert await balance(sessionmaker, referrer.id) == cap
    assert await earned(sessionmaker, friend.id) == cap
    # Whatever order they ran in, each grant was min(offer, room left): exactly the cap, never more.
    assert sum(1 for b in paid if b.kind == "funding") == 1
    assert all(b.amount_kobo > 0 for b in paid) and len({b.key for b in paid}) == len(paid)
    await assert_reconciled(sessionmaker)


async def test_a_replayed_purchase_event_pays_once_even_concurrently(shop: Harness, db, engine, sessionmaker):
    referrer, friend = await referred_pair(db)
    await fund(sessionmaker, friend.id, 1_000_000)
    purchase = await shop.service.buy(friend, airtime())
    assert purchase.status == SUCCESSFUL
    replayed = settled_event(purchase, previous="pending")

    async def replay() -> None:
        async with engine.begin() as conn:  # the hot path's executor: a plain connection
            await PURCHASE_SETTLED.emit(conn, replayed)

    await asyncio.gather(*(replay() for _ in range(10)))
    assert await balance(sessionmaker, referrer.id) == SHARE
    assert await referral_postings(sessionmaker) == [purchase_key(purchase.id)]
    assert await earned(sessionmaker, friend.id) == SHARE
    await assert_reconciled(sessionmaker)


async def test_a_purchase_by_a_user_without_referrer_costs_one_statement(
    shop: Harness, db, engine, sessionmaker
):
    loner = await create_user(db)
    await db.commit()
    await fund(sessionmaker, loner.id, 1_000_000)
    purchase = await shop.service.buy(loner, airtime())
    assert purchase.status == SUCCESSFUL
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async with engine.connect() as conn:
        sa_event.listen(conn.sync_connection, "before_cursor_execute", count)
        async with conn.begin():
            await PURCHASE_SETTLED.emit(conn, settled_event(purchase, previous="pending"))
    assert len(statements) == 1 and "FROM referrals" in statements[0], statements
    assert await bonuses(sessionmaker) == []


# -- reversal --------------------------------------------------------------------------------------------
async def test_a_reversed_purchase_takes_its_bonus_back_once(shop: Harness, db, sessionmaker, sim):
    referrer, friend = await referred_pair(db)
    await fund(sessionmaker, friend.id, 1_000_000)
    purchase = await shop.service.buy(friend, airtime())
    assert await balance(sessionmaker, referrer.id) == SHARE
    sim.reverse(purchase.request_id)
    for _ in range(3):  # callback, staff, callback again: one reversal, one claw-back
        current = await shop.service.requery(purchase.id, source="callback")
        assert current is not None and current.status == REVERSED
    assert await balance(sessionmaker, referrer.id) == 0
    assert await balance(sessionmaker, friend.id) == 1_000_000  # refunded in full
    assert await expense(sessionmaker) == 0
    assert await earned(sessionmaker, friend.id) == 0  # the cap room comes back with the money
    assert await referral_postings(sessionmaker) == [purchase_key(purchase.id), clawback_key(purchase.id)]
    clawed = (await bonuses(sessionmaker))[-1]
    assert (clawed.kind, clawed.amount_kobo, clawed.uncollected_kobo) == ("clawback", -SHARE, 0)
    await assert_reconciled(sessionmaker)


async def test_a_reversal_after_the_referrer_spent_the_bonus_takes_what_is_left(
    shop: Harness, db, sessionmaker, sim
):
    referrer, friend = await referred_pair(db)
    await fund(sessionmaker, friend.id, 1_000_000)
    await fund(sessionmaker, referrer.id, 4_800)
    purchase = await shop.service.buy(friend, airtime())
    assert await balance(sessionmaker, referrer.id) == 4_800 + SHARE
    spent = await shop.service.buy(referrer, airtime(5_000))  # ₦50 airtime: 100 kobo left
    assert spent.status == SUCCESSFUL and await balance(sessionmaker, referrer.id) == 100
    sim.reverse(purchase.request_id)
    assert (await shop.service.requery(purchase.id, source="callback")).status == REVERSED  # type: ignore[union-attr]
    assert await balance(sessionmaker, referrer.id) == 0  # never below zero
    clawed = (await bonuses(sessionmaker))[-1]
    assert (clawed.amount_kobo, clawed.uncollected_kobo) == (-100, SHARE - 100)  # the rest is left for staff
    assert await earned(sessionmaker, friend.id) == SHARE - 100
    assert await expense(sessionmaker) == -(SHARE - 100)
    await assert_reconciled(sessionmaker)


async def test_reversing_a_purchase_that_earned_nothing_moves_nothing(shop: Harness, db, sessionmaker, sim):
    """A reversal of a purchase that earned nothing (the referrer was inactive) has nothing to take."""
    referrer, friend = await referred_pair(db)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE users SET is_active = false WHERE id = :u"), {"u": referrer.id})
    await fund(sessionmaker, friend.id, 1_000_000)
    purchase = await shop.service.buy(friend, airtime())
    sim.reverse(purchase.request_id)
    assert (await shop.service.requery(purchase.id, source="callback")).status == REVERSED  # type: ignore[union-attr]
    assert await bonuses(sessionmaker) == []
    assert await referral_postings(sessionmaker) == []
    await assert_reconciled(sessionmaker)


# -- the page --------------------------------------------------------------------------------------------
async def test_the_page_needs_a_login(client):
    response = await client.get("/referrals", follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/login?next=%2Freferrals"


async def test_the_page_without_referrals(client, db):
    user = await create_user(db)
    await db.commit()
    await log_in(client, user.email, PASSWORD)
    page = await client.get("/referrals")
    assert page.status_code == 200
    html = page.text
    assert user.referral_code in html
    assert f"http://testserver.local/signup?ref={user.referral_code}" in html
    assert "https://wa.me/?text=" in html and "data-copy" in html
    assert "Nobody has signed up with your link yet" in html
    assert "₦0.00" in html  # bonuses earned
    assert "Get ₦100 when a friend you invited funds their wallet with ₦1,000 or more" in html


async def test_the_page_lists_masked_friends_and_bonuses(client, db, monnify, sessionmaker):
    referrer = await create_user(db)
    friend = await create_user(db, email="adaeze.okafor@gmail.com", referral_code=referrer.referral_code)
    other = await create_user(db, email="bo@yahoo.com", referral_code=referrer.referral_code)
    await db.commit()
    await webhook(client, monnify, friend, 200_000)
    await log_in(client, referrer.email, PASSWORD)
    page = await client.get("/referrals")
    assert page.status_code == 200
    html = page.text
    assert "ad***@gmail.com" in html and "b***@yahoo.com" in html
    assert friend.email not in html and other.email not in html  # never the full addresses
    assert 'Friends who joined <span class="muted">(2)</span>' in html
    assert "+₦100.00" in html and "First funding" in html
    assert html.count("₦100.00") >= 2  # the total and the line
