"""E-mail verification: the link sent at web sign-up, resending it (throttled), and referral bonuses that
wait for the friend's verification -- then are paid exactly once, however many clicks race."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from app.accounts import recovery
from app.accounts.models import User
from app.ledger.models import LedgerTransaction
from app.ledger.queries import wallet_balance
from app.referrals import config as referral_config
from app.referrals.config import ReferralConfig
from app.referrals.models import Referral, ReferralBonus
from app.referrals.service import funding_key, purchase_key
from app.vtu.config import VtuConfig
from app.vtu.models import SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.providers.catalog import ServiceKind
from tests.factories import create_user
from tests.fakes.monnify import MonnifySimulator
from tests.helpers import post_form, sign_up
from tests.integration import mail_fixtures, purchase_fixtures
from tests.integration.mail_fixtures import link_in, mail_rows, settle, wait_for_mail
from tests.integration.purchase_fixtures import assert_reconciled, fund_wallet, vtpass_harness

smtp_server = mail_fixtures.smtp_server
mail_worker = mail_fixtures.mail_worker
sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server

RULES = ReferralConfig(
    funding_bonus_kobo=10_000, funding_min_kobo=100_000, margin_bps=1_000, cap_per_referred_kobo=100_000
)
COMMISSION = VtuConfig(provider_commission_bps={ServiceKind.AIRTIME: 300})  # ₦1,000 airtime -> ₦30 margin
SHARE = 300


@pytest.fixture(autouse=True)
def rules() -> Iterator[ReferralConfig]:
    with referral_config.override(RULES) as config:
        yield config


async def verified_at(sessionmaker: Any, email: str) -> Any:
    async with sessionmaker() as session:
        return (await session.execute(select(User.email_verified_at).where(User.email == email))).scalar_one()


async def test_signup_mails_a_link_that_verifies_once(
    client, db, sessionmaker, settings, smtp_server, mail_worker
):
    mailbox = smtp_server[0]
    response = await sign_up(client, email="new.customer@example.ng")
    assert response.status_code == 303
    dashboard = await client.get("/dashboard")
    assert 'id="verify-banner"' in dashboard.text and "Resend the link" in dashboard.text
    assert await verified_at(sessionmaker, "new.customer@example.ng") is None
    [message] = await wait_for_mail(mailbox, "new.customer@example.ng")
    assert message.subject == "Confirm your e-mail address for TopUp NG"
    link = link_in(message)
    assert link.startswith(f"{settings.site_url}/account/verify/")
    path = link.removeprefix(settings.site_url)

    first = await client.get(path)
    assert first.status_code == 200 and "E-mail verified" in first.text
    when = await verified_at(sessionmaker, "new.customer@example.ng")
    assert when is not None
    again = await client.get(path)  # idempotent: a second click is not an error
    assert again.status_code == 200 and "Already verified" in again.text
    assert await verified_at(sessionmaker, "new.customer@example.ng") == when
    assert 'id="verify-banner"' not in (await client.get("/dashboard")).text
    bad = await client.get("/account/verify/not-a-real-token")
    assert bad.status_code == 400 and "This link does not work" in bad.text
    [row] = await mail_rows(sessionmaker)
    assert row.status == "sent" and row.context == {}  # the link is not kept once sent


async def test_resend_is_throttled_per_user(client, db, sessionmaker, settings, smtp_server, mail_worker):
    mailbox = smtp_server[0]
    assert (await sign_up(client, email="slow.inbox@example.ng")).status_code == 303
    await wait_for_mail(mailbox, "slow.inbox@example.ng")
    htmx = {"HX-Request": "true"}
    resent = await post_form(client, "/account/verify/resend", {}, page="/dashboard", headers=htmx)
    assert resent.status_code == 200 and "We sent a new link" in resent.text
    blocked = await post_form(client, "/account/verify/resend", {}, page="/dashboard", headers=htmx)
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "You can ask again" in blocked.text
    plain = await post_form(client, "/account/verify/resend", {}, page="/dashboard")  # no htmx: PRG
    assert plain.status_code == 303 and plain.headers["location"] == "/dashboard"
    assert "You can ask again" in (await client.get("/dashboard")).text
    messages = await wait_for_mail(mailbox, "slow.inbox@example.ng", 2)
    await settle()
    assert len(mailbox.to("slow.inbox@example.ng")) == 2 == len(messages)
    # Either link works (the newest does not cancel the first).
    assert (await client.get(link_in(messages[1]).removeprefix(settings.site_url))).status_code == 200
    done = await post_form(client, "/account/verify/resend", {}, page="/dashboard", headers=htmx)
    assert done.status_code == 200 and "already verified" in done.text
    no_csrf = await client.post("/account/verify/resend", headers=htmx)
    assert no_csrf.status_code == 403


async def test_anonymous_resend_needs_a_login(client):
    response = await post_form(client, "/account/verify/resend", {}, page="/login")
    assert response.status_code in (302, 303, 401)


async def _links(sessionmaker: Any, user: User, settings: Any, count: int) -> list[str]:
    links = []
    for _ in range(count):
        async with sessionmaker() as session:
            fresh = await session.get(User, user.id)
            assert fresh is not None
            await recovery.send_verification(session, fresh, site_url=settings.site_url)
            await session.commit()
    for row in await mail_rows(sessionmaker, "template = 'verify_email' AND user_id = :u", u=user.id):
        links.append(row.context["link"].removeprefix(settings.site_url))
    return links


async def test_referral_bonuses_wait_for_verification_then_pay_once_despite_racing_clicks(
    app, client, db, sessionmaker, settings, make_client, sim, sim_server
):
    referrer = await create_user(db)
    friend = await create_user(db, referral_code=referrer.referral_code, email_verified=False)
    await db.commit()
    # A qualifying first transfer and a delivered purchase with a margin, all before verification.
    monnify = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )
    body, signature = monnify.build_webhook(friend.account_reference, 200_000)
    hook = await client.post(
        "/payments/webhooks/monnify/",
        content=body,
        headers={"content-type": "application/json", "monnify-signature": signature},
    )
    assert hook.status_code == 200
    await fund_wallet(sessionmaker, friend.id, 500_000)
    shop = vtpass_harness(sessionmaker, settings, sim_server[1].url, sim, config=COMMISSION)
    try:
        bought = await shop.service.buy(
            friend, PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=100_000)
        )
    finally:
        await shop.aclose()
    assert bought.status == SUCCESSFUL and bought.margin_kobo == 3_000
    async with sessionmaker() as session:
        assert await wallet_balance(session, referrer.id) == 0  # withheld: nothing paid yet
        assert (await session.execute(select(ReferralBonus))).scalars().all() == []
        row = await session.get(Referral, friend.id)
        assert row is not None and row.funding_withheld_at is not None and row.referred_verified_at is None

    links = await _links(sessionmaker, friend, settings, 2)
    assert len(links) == 2

    async def click(path: str) -> int:
        async with make_client() as browser:
            return (await browser.get(path)).status_code

    statuses = await asyncio.gather(*(click(links[i % 2]) for i in range(12)))
    assert statuses == [200] * 12
    async with sessionmaker() as session:
        assert await wallet_balance(session, referrer.id) == 10_000 + SHARE
        keys = (
            (
                await session.execute(
                    select(LedgerTransaction.idempotency_key).where(
                        LedgerTransaction.idempotency_key.startswith("referral:")
                    )
                )
            )
            .scalars()
            .all()
        )
        assert sorted(keys) == sorted([funding_key(friend.id), purchase_key(bought.id)])
        row = await session.get(Referral, friend.id)
        assert row is not None and row.referred_verified_at is not None and row.earned_kobo == 10_000 + SHARE
        assert row.funding_bonus_at is not None
    # The first-funding bonus is never paid again, whatever transfer comes next.
    body, signature = monnify.build_webhook(friend.account_reference, 300_000)
    hook = await client.post(
        "/payments/webhooks/monnify/",
        content=body,
        headers={"content-type": "application/json", "monnify-signature": signature},
    )
    assert hook.status_code == 200
    async with sessionmaker() as session:
        assert await wallet_balance(session, referrer.id) == 10_000 + SHARE
    await assert_reconciled(sessionmaker)


async def test_a_friend_who_never_verifies_earns_the_referrer_nothing(client, db, sessionmaker, settings):
    referrer = await create_user(db)
    friend = await create_user(db, referral_code=referrer.referral_code, email_verified=False)
    await db.commit()
    monnify = MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )
    for amount in (150_000, 250_000):
        body, signature = monnify.build_webhook(friend.account_reference, amount)
        hook = await client.post(
            "/payments/webhooks/monnify/",
            content=body,
            headers={"content-type": "application/json", "monnify-signature": signature},
        )
        assert hook.status_code == 200
    async with sessionmaker() as session:
        assert await wallet_balance(session, friend.id) == 400_000  # funding itself is not held back
        assert await wallet_balance(session, referrer.id) == 0
        count = (await session.execute(text("SELECT count(*) FROM referral_bonuses"))).scalar_one()
        assert count == 0
