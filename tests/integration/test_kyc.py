"""KYC for funding: BVN / NIN rules and storage (encrypted, fingerprinted, one account each), Monnify's
acceptance (the v2 reservation with the number, or the kyc-info update) deciding the level, the /account/kyc
page, and KYC_LIMITS enforced by purchase_open (single purchase, and the daily limit under concurrency).

Monnify is the simulator in tests/fakes/monnify.py over real HTTP; purchases go through the real VTpass
adapter to its simulator (service) or the stub provider (API). Every test ends with a clean reconcile."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, text

from app.accounts.kyc import KycRefused, KycService, fingerprint, number_problem, status_of
from app.accounts.kyc_config import DEFAULT_KYC_LIMITS, parse_kyc_limits
from app.accounts.models import KycDocument, User
from app.accounts.services import FormErrors
from app.payments.models import RESERVATION_ACTIVE, ReservedAccount
from app.payments.monnify_client import MonnifyClient
from app.payments.reservations import reserve_for_user
from app.vtu.errors import KycLimitExceeded
from app.vtu.models import Purchase
from app.vtu.orders import PurchaseRequest
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator
from tests.fakes.server import serve
from tests.helpers import log_in, post_form
from tests.integration import purchase_fixtures
from tests.integration.api_fixtures import DELIVERED, airtime, new_reseller, purchase_count
from tests.integration.purchase_fixtures import (
    assert_reconciled,
    count_purchases,
    money,
    new_buyer,
    vtpass_harness,
)

sim_server = purchase_fixtures.sim_server
sim = purchase_fixtures.sim

BVN = "22212345678"
BVN_2 = "22287654321"
NIN = "12345678901"
LIMITS = parse_kyc_limits(DEFAULT_KYC_LIMITS, [])  # level 0: N5,000 a purchase, N20,000 a day


# -- rules ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "value", "problem"),
    [("bvn", BVN, None), ("nin", NIN, None), ("nin", "22212345678", None),
     ("bvn", "12345678901", 'starts with "22"'), ("bvn", "2221234567", "exactly 11 digits"),
     ("bvn", "222123456789", "exactly 11 digits"), ("nin", "1234567890a", "exactly 11 digits"),
     ("nin", "١٢٣٤٥٦٧٨٩٠١", "exactly 11 digits"), ("bvn", "", "exactly 11 digits")],
)  # fmt: skip
def test_number_formats(kind, value, problem):
    found = number_problem(kind, value)
    assert (found is None) if problem is None else (problem in (found or ""))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [("0=single:1,daily:2", "missing 1, 2"), ("0=single:x,daily:1;1=single:1,daily:1;2=single:0,daily:0",
     "single must be whole kobo"), ("3=single:1,daily:1", "level 0, 1 or 2"),
     ("0=single:1;1=single:1,daily:1;2=single:0,daily:0", "needs both"),
     ("0=single:1,daily:1;0=single:1,daily:1", "given twice")],
)  # fmt: skip
def test_kyc_limits_config_errors_are_specific(raw, problem):
    problems: list[str] = []
    assert parse_kyc_limits(raw, problems) == ()
    assert any(problem in p for p in problems), problems


def test_kyc_limits_default_and_off():
    assert [(x.single_kobo, x.daily_kobo) for x in LIMITS] == [
        (500_000, 2_000_000),
        (5_000_000, 20_000_000),
        (0, 0),
    ]
    assert parse_kyc_limits("", []) == ()


# -- Monnify and the service ------------------------------------------------------------------------------
@pytest.fixture
def msim() -> MonnifySimulator:
    return MonnifySimulator()


@pytest_asyncio.fixture(loop_scope="session")
async def monnify(msim: MonnifySimulator, settings: Any) -> Any:
    with serve(msim.app) as server:
        live = dataclasses.replace(
            settings,
            monnify_base_url=server.url,
            monnify_api_key=msim.api_key,
            monnify_secret_key=msim.secret_key,
            monnify_contract_code=msim.contract_code,
        )
        async with MonnifyClient(live, backoff_base=0.01, backoff_max=0.02, max_attempts=2) as client:
            yield live, client


async def _user(db) -> User:
    user = await create_user(db)
    await db.commit()
    return user


async def _submit(sessionmaker, live, client, user, *, bvn="", nin="") -> int:
    service = KycService(sessionmaker, live, client)
    numbers = service.validate(bvn, nin)
    async with sessionmaker() as session:
        await service.store(session, user, numbers)
        await session.commit()
    return await service.verify_with_monnify(user)


async def _level(sessionmaker, user_id) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(User.kyc_level).where(User.id == user_id)) or 0)


async def _documents(sessionmaker, user_id) -> list[KycDocument]:
    async with sessionmaker() as session:
        rows = await session.execute(select(KycDocument).where(KycDocument.user_id == user_id))
        return list(rows.scalars())


async def test_bvn_without_accounts_reserves_them_with_it_encrypted_at_rest(db, sessionmaker, monnify, msim):
    live, client = monnify
    user = await _user(db)
    assert await _submit(sessionmaker, live, client, user, bvn="222 1234 5678") == 1
    # Monnify got the v2 reservation carrying the BVN; we stored the accounts
    assert msim.reserved[user.account_reference]["bvn"] == BVN
    reservation = (
        await db.execute(select(ReservedAccount).where(ReservedAccount.user_id == user.id))
    ).scalar_one()
    assert reservation.status == RESERVATION_ACTIVE
    docs = await _documents(sessionmaker, user.id)
    assert [(d.kind, d.status, d.last4, d.verified_via) for d in docs] == [
        ("bvn", "verified", "5678", "monnify:reserve-v2")
    ]
    # no plaintext anywhere in the row (the encrypted value opens with the app's key)
    dump = await db.scalar(text("SELECT string_agg(row_to_json(k)::text, '') FROM kyc_documents k"))
    assert BVN not in dump and "22212345678"[:8] not in dump
    assert KycService(sessionmaker, live, client).cipher.decrypt(docs[0].number_encrypted) == BVN
    async with sessionmaker() as session:
        status = await status_of(session, live, user.id)
    assert status.level == 1 and status.document("bvn").masked == "*******5678"
    assert (await db.scalar(select(User.kyc_level_at).where(User.id == user.id))) is not None
    audit = (await db.execute(text("SELECT action, after FROM audit_log WHERE target_id = :id"),
                              {"id": str(user.id)})).all()  # fmt: skip
    assert [a.action for a in audit] == ["kyc.verified"] and audit[0].after["kyc_level"] == 1


async def test_existing_accounts_get_kyc_info_and_both_numbers_give_level_2(db, sessionmaker, monnify, msim):
    live, client = monnify
    user = await _user(db)
    await reserve_for_user(sessionmaker, client, user.id)  # accounts made before KYC (no BVN/NIN)
    assert msim.reserved[user.account_reference]["bvn"] is None
    msim.kyc_names[NIN] = "ADAEZE CHIOMA OKAFOR"
    assert await _submit(sessionmaker, live, client, user, nin=NIN) == 1
    assert msim.reserved[user.account_reference]["nin"] == NIN
    async with sessionmaker() as session:
        name = await session.scalar(
            select(ReservedAccount.account_name).where(ReservedAccount.user_id == user.id)
        )
    assert name == "ADAEZE CHIOMA OKAFOR"  # the name on the NIN, as Monnify now shows it
    assert msim.calls("/api/v1/bank-transfer/reserved-accounts/") == 1
    assert await _submit(sessionmaker, live, client, user, bvn=BVN) == 2
    assert msim.reserved[user.account_reference]["bvn"] == BVN
    assert await _level(sessionmaker, user.id) == 2
    docs = {d.kind: d.verified_via for d in await _documents(sessionmaker, user.id)}
    assert docs == {"bvn": "monnify:kyc-info", "nin": "monnify:kyc-info"}


async def test_monnify_refusing_accounts_without_kyc_then_creates_them_with_the_nin(
    db, sessionmaker, monnify, msim
):
    from app.payments.models import RESERVATION_FAILED
    from app.payments.monnify_client import MonnifyRequestError

    live, client = monnify
    msim.require_kyc = True  # the CBN rule as Monnify may enforce it
    user = await _user(db)
    with pytest.raises(MonnifyRequestError):
        await reserve_for_user(sessionmaker, client, user.id)
    status = await db.scalar(select(ReservedAccount.status).where(ReservedAccount.user_id == user.id))
    assert status == RESERVATION_FAILED
    assert await _submit(sessionmaker, live, client, user, nin=NIN) == 1
    assert msim.reserved[user.account_reference]["nin"] == NIN
    async with sessionmaker() as session:
        status = await session.scalar(
            select(ReservedAccount.status).where(ReservedAccount.user_id == user.id)
        )
    assert status == RESERVATION_ACTIVE


async def test_one_bvn_cannot_be_attached_to_two_accounts(db, sessionmaker, monnify):
    live, client = monnify
    first, second = await _user(db), await _user(db)
    assert await _submit(sessionmaker, live, client, first, bvn=BVN) == 1
    with pytest.raises(FormErrors) as refused:
        await _submit(sessionmaker, live, client, second, bvn=BVN)
    assert refused.value.fields == {"bvn": "This BVN is already used by another account."}
    assert await _documents(sessionmaker, second.id) == [] and await _level(sessionmaker, second.id) == 0
    # the same digits as a NIN are another document: allowed
    assert await _submit(sessionmaker, live, client, second, nin=BVN) == 1


async def test_racing_accounts_with_one_bvn_store_it_once(db, sessionmaker, monnify):
    live, client = monnify
    users = [await _user(db) for _ in range(6)]
    service = KycService(sessionmaker, live, client)

    async def store(user) -> bool:
        async with sessionmaker() as session:
            try:
                await service.store(session, user, {"bvn": BVN})
                await session.commit()
            except FormErrors:
                return False
            return True

    results = await asyncio.gather(*(store(u) for u in users))
    assert sum(results) == 1
    assert await db.scalar(select(func.count()).select_from(KycDocument)) == 1


async def test_monnify_down_keeps_level_0_and_a_retry_works(db, sessionmaker, monnify, msim):
    live, client = monnify
    user = await _user(db)
    await reserve_for_user(sessionmaker, client, user.id)
    msim.fail_next(10, status=503, path_prefix="/api/v1/bank-transfer")
    with pytest.raises(KycRefused) as refused:
        await _submit(sessionmaker, live, client, user, bvn=BVN)
    assert "could not confirm your BVN" in refused.value.message
    assert await _level(sessionmaker, user.id) == 0
    [doc] = await _documents(sessionmaker, user.id)
    assert doc.status == "pending" and doc.last_error and msim.reserved[user.account_reference]["bvn"] is None
    msim._failures.clear()
    assert await _submit(sessionmaker, live, client, user, bvn=BVN) == 1
    [doc] = await _documents(sessionmaker, user.id)
    assert doc.status == "verified" and doc.last_error is None


async def test_a_number_monnify_refuses_is_not_kept(db, sessionmaker, monnify, msim):
    live, client = monnify
    user, owner = await _user(db), await _user(db)
    msim.rejected_numbers.add(BVN)
    with pytest.raises(KycRefused) as refused:
        await _submit(sessionmaker, live, client, user, bvn=BVN)
    assert "did not accept this BVN" in refused.value.message
    assert await _documents(sessionmaker, user.id) == [] and await _level(sessionmaker, user.id) == 0
    assert user.account_reference not in msim.reserved
    msim.rejected_numbers.clear()
    # nothing blocks the number's real owner
    assert await _submit(sessionmaker, live, client, owner, bvn=BVN) == 1


# -- the page -------------------------------------------------------------------------------------------
@pytest.fixture
def page_monnify(app, monnify, monkeypatch):
    """The served app's Monnify client pointed at the simulator, and the default KYC_LIMITS, for this test."""
    monkeypatch.setattr(app.state.funding, "monnify", monnify[1])
    monkeypatch.setattr(app.state, "settings", dataclasses.replace(app.state.settings, kyc_limits=LIMITS))
    return monnify


async def test_kyc_page_needs_the_password_and_shows_masked_numbers(client, db, page_monnify, msim):
    user = await _user(db)
    await log_in(client, user.email, PASSWORD)
    dashboard = await client.get("/dashboard")
    assert 'href="/account/kyc"' in dashboard.text
    fund = await client.get("/wallet/fund")
    assert 'id="kyc-banner"' in fund.text
    page = await client.get("/account/kyc")
    assert page.status_code == 200 and "KYC level <strong>0</strong>" in page.text

    wrong = await post_form(client, "/account/kyc", {"bvn": BVN, "password": "not-it"})
    assert wrong.status_code == 422 and "Your password is not correct." in wrong.text
    bad = await post_form(client, "/account/kyc", {"bvn": "12345678901", "password": PASSWORD})
    assert bad.status_code == 422 and "A BVN starts with &#34;22&#34;" in bad.text
    assert await db.scalar(select(func.count()).select_from(KycDocument)) == 0
    no_csrf = await client.post("/account/kyc", data={"bvn": BVN, "password": PASSWORD})
    assert no_csrf.status_code == 403
    assert await db.scalar(select(func.count()).select_from(KycDocument)) == 0 and not msim.reserved

    done = await post_form(client, "/account/kyc", {"bvn": BVN, "password": PASSWORD})
    assert done.status_code == 303 and done.headers["location"] == "/account/kyc"
    shown = await client.get("/account/kyc")
    assert (
        "*******5678" in shown.text and BVN not in shown.text and "KYC level <strong>1</strong>" in shown.text
    )
    assert "₦200,000.00" in shown.text  # level 1's daily limit
    assert 'id="kyc-banner"' not in (await client.get("/wallet/fund")).text


async def test_kyc_page_monnify_failure_is_a_clear_message_and_level_0(client, db, page_monnify, msim):
    user = await _user(db)
    await log_in(client, user.email, PASSWORD)
    msim.fail_next(10, status=500, path_prefix="/api/v")
    answer = await post_form(client, "/account/kyc", {"nin": NIN, "password": PASSWORD})
    assert answer.status_code == 503 and "could not confirm your NIN" in answer.text
    assert "KYC level <strong>0</strong>" in answer.text and "not confirmed yet" in answer.text
    assert (await db.scalar(select(User.kyc_level).where(User.id == user.id))) == 0


# -- limits in the purchase path ----------------------------------------------------------------------------
@pytest_asyncio.fixture(loop_scope="session")
async def limited(db, sessionmaker, settings, sim_server, sim):
    harness = vtpass_harness(
        sessionmaker, dataclasses.replace(settings, kyc_limits=LIMITS), sim_server[1].url, sim
    )
    try:
        yield harness
    finally:
        await harness.aclose()


def _airtime(amount_kobo: int) -> PurchaseRequest:
    return PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=amount_kobo)


async def test_over_the_single_limit_is_refused_with_nothing_written(limited, sessionmaker):
    buyer = await new_buyer(sessionmaker, fund=5_000_000)
    before = await money(sessionmaker, buyer.id)
    with pytest.raises(KycLimitExceeded) as refused:
        await limited.service.buy(buyer, _airtime(500_100))
    assert (refused.value.scope, refused.value.level, refused.value.limit_kobo) == ("single", 0, 500_000)
    assert "Add your BVN or NIN" in refused.value.message
    assert await money(sessionmaker, buyer.id) == before and await count_purchases(sessionmaker) == 0
    bought = await limited.service.buy(buyer, _airtime(500_000))  # exactly the limit is fine
    assert bought.status == "successful"
    await assert_reconciled(sessionmaker)


async def test_twenty_racing_purchases_at_level_0_never_pass_the_daily_limit(limited, sessionmaker):
    buyer = await new_buyer(sessionmaker, fund=10_000_000)
    amount = 300_000  # N3,000: six fit in N20,000 (N18,000), the seventh does not

    async def buy() -> str:
        try:
            return (await limited.service.buy(buyer, _airtime(amount))).status
        except KycLimitExceeded as exc:
            assert exc.scope == "daily" and exc.limit_kobo == 2_000_000
            return "refused"

    outcomes = await asyncio.gather(*(buy() for _ in range(20)))
    assert outcomes.count("refused") == 14 and outcomes.count("successful") == 6, outcomes
    async with sessionmaker() as session:
        spent = await session.scalar(
            select(func.coalesce(func.sum(Purchase.amount_kobo), 0)).where(
                Purchase.user_id == buyer.id, Purchase.status.in_(("pending", "successful"))
            )
        )
        rows = await session.scalar(select(func.count()).select_from(Purchase))
    assert spent == 6 * amount <= 2_000_000 and rows == 6
    assert (await money(sessionmaker, buyer.id)).wallet == 10_000_000 - 6 * amount
    await assert_reconciled(sessionmaker)


async def test_adding_a_bvn_raises_the_limit(limited, sessionmaker, monnify):
    live, client = monnify
    buyer = await new_buyer(sessionmaker, fund=10_000_000)
    with pytest.raises(KycLimitExceeded):
        await limited.service.buy(buyer, _airtime(1_000_000))
    async with sessionmaker() as session:
        user = await session.get(User, buyer.id)
        assert user is not None
    assert await _submit(sessionmaker, live, client, user, bvn=BVN) == 1
    bought = await limited.service.buy(buyer, _airtime(1_000_000))
    assert bought.status == "successful"
    assert (await money(sessionmaker, buyer.id)).wallet == 9_000_000
    await assert_reconciled(sessionmaker)


# -- the API -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kyc_api(settings):
    from app.asgi import create_app

    live = dataclasses.replace(
        settings, kyc_limits=LIMITS, api_key_tiers=("customer", "reseller"), api_rate_limit_per_minute=0
    )
    with serve(create_app(live)) as server:
        yield server


async def test_api_refuses_over_the_kyc_limit_with_403_and_the_limits(kyc_api, clean_db, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=5_000_000)
    async with httpx.AsyncClient(base_url=kyc_api.url, timeout=60) as http:
        refused = await http.post(
            "/api/v1/purchases", json=airtime(DELIVERED, amount_kobo=600_000), headers=reseller.buy_headers()
        )
        assert refused.status_code == 403, refused.text
        body = refused.json()
        assert body["error"] == "kyc_limit_exceeded"
        assert (body["kyc_level"], body["limit"], body["limit_kobo"]) == (0, "single", 500_000)
        assert await purchase_count(sessionmaker, reseller.user_id) == 0
        assert (await money(sessionmaker, reseller.user_id, "stub")).wallet == 5_000_000
        ok = await http.post(
            "/api/v1/purchases", json=airtime(DELIVERED, amount_kobo=400_000), headers=reseller.buy_headers()
        )
        assert ok.status_code == 201, ok.text
    await assert_reconciled(sessionmaker)


# -- staff --------------------------------------------------------------------------------------------------
async def test_staff_see_the_kyc_level_and_filter_by_it(app, db, sessionmaker, monnify):
    from tests.helpers import browser_pool, staff_browser

    live, client = monnify
    verified, plain = await _user(db), await _user(db)
    assert await _submit(sessionmaker, live, client, verified, bvn=BVN) == 1
    async with browser_pool(app) as browsers:
        staff = await staff_browser(db, browsers, role="support")
        profile = await staff.get(f"/staff/users/{verified.id}")
        assert profile.status_code == 200
        assert "level 1" in profile.text and "*******5678" in profile.text and BVN not in profile.text
        assert 'NIN <span class="muted">not given</span>' in profile.text
        level_1 = await staff.get("/staff/users?kyc=1")
        assert verified.email in level_1.text and plain.email not in level_1.text
        level_0 = await staff.get("/staff/users?kyc=0")
        assert plain.email in level_0.text and verified.email not in level_0.text
        anything = await staff.get("/staff/users?kyc=%D9%A1")  # an Arabic-Indic 1: no filter, no error
        assert anything.status_code == 200 and verified.email in anything.text
        customer = browsers()
        await log_in(customer, plain.email, PASSWORD)
        refused = await customer.get(f"/staff/users/{verified.id}", follow_redirects=False)
        assert refused.status_code in (303, 403, 404)


# -- the buy forms ------------------------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kyc_site(settings):
    """The app with the default KYC_LIMITS, lifespan running, for in-process browsers."""
    from app.asgi import create_app
    from tests.helpers import running

    async with running(create_app(dataclasses.replace(settings, kyc_limits=LIMITS))) as application:
        yield application


async def test_buy_form_shows_the_limit_and_refuses_over_it_with_nothing_charged(
    kyc_site, clean_db, db, sessionmaker
):
    from tests.integration.test_purchase_pages import customer, open_form, purchase_count, receipt_id, wallet

    transport = httpx.ASGITransport(app=kyc_site)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as browser:
        user = await customer(browser, db, sessionmaker, fund_kobo=3_000_000)
        page = await browser.get("/buy/airtime")
        assert "Your daily limit is ₦20,000.00 (KYC level 0)" in page.text
        assert 'href="/account/kyc">add your BVN or NIN to raise it' in page.text

        hidden = await open_form(browser, "/buy/airtime")
        over = await browser.post(
            "/buy/airtime", data={**hidden, "service_id": "mtn", "phone": DELIVERED, "amount": "5001"}
        )
        assert over.status_code == 403
        assert "limit for one purchase is ₦5,000.00 (KYC level 0)" in over.text
        assert 'href="/account/kyc"' in over.text
        assert await wallet(sessionmaker, user.id) == 3_000_000 and await purchase_count(sessionmaker) == 0

        hidden = await open_form(browser, "/buy/airtime")
        ok = await browser.post(
            "/buy/airtime",
            data={**hidden, "service_id": "mtn", "phone": DELIVERED, "amount": "5000"},
            follow_redirects=False,
        )
        receipt_id(ok)
        assert await wallet(sessionmaker, user.id) == 2_500_000
    await assert_reconciled(sessionmaker)


async def test_kyc_info_call_is_validated_and_authenticated_like_monnify(monnify, msim):
    from app.payments.monnify_client import MonnifyRequestError

    live, client = monnify
    await client.create_reserved_account("usr_kyc", "Ada Obi", "ada@example.com", "Ada Obi")
    with pytest.raises(MonnifyRequestError) as bad:
        await client.update_kyc_info("usr_kyc", bvn="12345678901")
    assert bad.value.status == 400 and "Invalid BVN" in bad.value.message
    with pytest.raises(MonnifyRequestError) as unknown:
        await client.update_kyc_info("usr_nobody", nin=NIN)
    assert unknown.value.status == 404
    msim.expire_tokens()  # a refused token: the client logs in again and the update goes through
    body = await client.update_kyc_info("usr_kyc", bvn=BVN, nin=NIN)
    assert (body["bvn"], body["nin"]) == (BVN, NIN) and msim.login_count == 2
    async with httpx.AsyncClient() as raw:
        path = "/api/v1/bank-transfer/reserved-accounts/usr_kyc/kyc-info"
        anonymous = await raw.put(live.monnify_base_url + path, json={"bvn": BVN})
    assert anonymous.status_code == 401


async def test_keys_rotate_re_encrypts_the_kyc_numbers(db, sessionmaker, monnify):
    from app.core.encryption import ENCRYPTED_COLUMNS, DataCipher, generate_key, rotate_column

    live, client = monnify
    old, new = generate_key(), generate_key()
    user = await _user(db)
    assert await _submit(sessionmaker, dataclasses.replace(live, data_encryption_keys=(old,)), client, user,
                         bvn=BVN) == 1  # fmt: skip
    [column] = [c for c in ENCRYPTED_COLUMNS if c.table == "kyc_documents"]
    async with sessionmaker() as session:
        assert await rotate_column(session, DataCipher([new, old]), column, batch_size=10) == 1
    [doc] = await _documents(sessionmaker, user.id)
    assert DataCipher([new]).decrypt(doc.number_encrypted) == BVN


# -- the fingerprint key changed: vtu keys refingerprint --------------------------------------------------
async def _store(sessionmaker, live, user, *, bvn="", nin="") -> None:
    """Numbers recorded as pending, as /account/kyc does before asking Monnify (not asked here)."""
    service = KycService(sessionmaker, live, None)  # type: ignore[arg-type]
    async with sessionmaker() as session:
        await service.store(session, user, service.validate(bvn, nin))
        await session.commit()


async def test_refingerprint_after_the_key_changed_keeps_one_number_on_one_account(
    db, sessionmaker, settings
):
    from app.accounts.kyc_keys import refingerprint

    new_key = "a-new-kyc-fingerprint-key-0123456789abcdef"
    new = dataclasses.replace(settings, kyc_fingerprint_key=new_key)  # was derived from SECRET_KEY
    first, second, third, fourth = [await _user(db) for _ in range(4)]
    await _store(sessionmaker, settings, first, bvn=BVN)
    await _store(sessionmaker, settings, second, nin=NIN)
    # The hole the command closes: under the new key the stored fingerprints match nothing, so the first
    # account's BVN is taken again by another account before they are recomputed ...
    await _store(sessionmaker, new, third, bvn=BVN)
    with pytest.raises(FormErrors):  # ... while the old key still sees it (the fingerprint is UNIQUE)
        await _store(sessionmaker, settings, fourth, bvn=BVN)

    report = await refingerprint(sessionmaker, new, batch_size=1)  # a batch per row: paging is exercised
    assert (report.checked, report.recomputed, report.unreadable) == (3, 1, [])
    assert report.conflicts == [
        f"BVN ending 5678 is on two accounts: {first.email} and {third.email} (kept as it is: decide which "
        "keeps it)"
    ]
    # The second account's NIN is now recognised under the new key: nobody else can attach it.
    with pytest.raises(FormErrors) as refused:
        await _store(sessionmaker, new, fourth, nin=NIN)
    assert refused.value.fields == {"nin": "This NIN is already used by another account."}
    marks = {doc.user_id: doc.fingerprint for doc in await _all_documents(sessionmaker)}
    assert marks[second.id] == fingerprint(new, "nin", NIN)
    assert marks[first.id] == fingerprint(settings, "bvn", BVN)  # the conflict: left as it was
    assert marks[third.id] == fingerprint(new, "bvn", BVN)

    again = await refingerprint(sessionmaker, new)  # safe to re-run: nothing more to do
    assert (again.checked, again.recomputed, again.conflicts) == (3, 0, report.conflicts)

    # The command, as an operator runs it: exit 1 while a number is on two accounts.
    env = dict(os.environ, KYC_FINGERPRINT_KEY=new_key)
    cli = subprocess.run(
        [sys.executable, "-m", "app", "keys", "refingerprint"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert cli.returncode == 1, (cli.stdout, cli.stderr)
    assert "kyc_documents: 3 checked, 0 fingerprint(s) recomputed" in cli.stdout
    assert f"BVN ending 5678 is on two accounts: {first.email} and {third.email}" in cli.stderr
    assert BVN not in cli.stdout + cli.stderr and NIN not in cli.stdout + cli.stderr


async def _all_documents(sessionmaker) -> list[KycDocument]:
    async with sessionmaker() as session:
        return list((await session.execute(select(KycDocument))).scalars())


# -- numbers Monnify could not be asked about: the worker asks again -------------------------------------
async def _age(sessionmaker, user_id, *, tried_minutes: int, given_days: int = 0) -> None:
    """As if the number was last tried `tried_minutes` ago and given `given_days` ago."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE kyc_documents SET updated_at = now() - make_interval(mins => :m),"
                " created_at = now() - make_interval(days => :d) WHERE user_id = :u"
            ),
            {"m": tried_minutes, "d": given_days, "u": user_id},
        )


async def test_numbers_monnify_could_not_confirm_are_retried_by_the_funding_sweep(
    db, sessionmaker, monnify, msim
):
    from app.payments.tasks import sweep_funding

    live, client = monnify
    ctx = {"sessionmaker": sessionmaker, "settings": live, "monnify": client}
    waiting, refused, stale = await _user(db), await _user(db), await _user(db)
    for user in (waiting, refused, stale):
        await reserve_for_user(sessionmaker, client, user.id)
    msim.fail_next(100, status=503, path_prefix="/api/v1/bank-transfer")
    for user, numbers in ((waiting, {"bvn": BVN}), (refused, {"nin": NIN}), (stale, {"bvn": BVN_2})):
        with pytest.raises(KycRefused) as down:
            await _submit(sessionmaker, live, client, user, **numbers)
        assert down.value.unavailable and "We will keep trying for a week" in down.value.message

    # Just tried: nothing is due yet.
    assert (await sweep_funding(ctx))["kyc_tried"] == 0
    await _age(sessionmaker, waiting.id, tried_minutes=11)
    await _age(sessionmaker, refused.id, tried_minutes=12)
    await _age(sessionmaker, stale.id, tried_minutes=60, given_days=8)  # given over a week ago: not retried
    # Monnify still down: the longest waiting customer is tried first, the sweep stops there, nothing
    # changes, and that customer waits its 10 minutes again.
    swept = await sweep_funding(ctx)
    assert (swept["kyc_tried"], swept["kyc_verified"], swept["kyc_refused"]) == (1, 0, 0)
    assert [d.status for d in await _documents(sessionmaker, refused.id)] == ["pending"]
    # Monnify back: the other due customer is confirmed, level 1, audited as the worker's retry ...
    msim._failures.clear()
    msim.rejected_numbers.add(NIN)
    swept = await sweep_funding(ctx)
    assert (swept["kyc_tried"], swept["kyc_verified"], swept["kyc_refused"]) == (1, 1, 0)
    assert await _level(sessionmaker, waiting.id) == 1 and await _level(sessionmaker, stale.id) == 0
    [doc] = await _documents(sessionmaker, waiting.id)
    assert doc.status == "verified" and doc.verified_via == "monnify:kyc-info"
    assert msim.reserved[waiting.account_reference]["bvn"] == BVN
    audit = (
        await db.execute(
            text("SELECT after FROM audit_log WHERE action = 'kyc.verified' AND target_id = :id"),
            {"id": str(waiting.id)},
        )
    ).scalar_one()
    assert audit["retried_by"] == "worker" and audit["kyc_level"] == 1
    # ... and, its 10 minutes over, the number Monnify refuses is removed, as when submitted on the page.
    await _age(sessionmaker, refused.id, tried_minutes=11)
    swept = await sweep_funding(ctx)
    assert (swept["kyc_tried"], swept["kyc_verified"], swept["kyc_refused"]) == (1, 0, 1)
    assert await _documents(sessionmaker, refused.id) == [] and await _level(sessionmaker, refused.id) == 0
    assert (await sweep_funding(ctx))["kyc_tried"] == 0  # nothing more due
    [doc] = await _documents(sessionmaker, stale.id)
    assert doc.status == "pending"
