"""The staff Users console (/staff/users) over HTTP against the real app: search by every key, recent sign-ups
paged, the profile (wallet statement with running balances, purchases, fundings, referrals, keys, sessions,
audit), and every action with its role refusal, its guard against double clicks and its audit entry.
Money is made the production way (signed Monnify webhooks, purchases through the app's purchase service);
every test ends with a clean ledger reconcile (clean_db)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from html import unescape
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, text

from app.accounts import staff_admin
from app.accounts.apikeys import ApiKey
from app.accounts.models import User
from app.accounts.pins import PinError, pin_guard
from app.audit.models import AuditEntry
from app.audit.service import Actor
from app.dashboard import users
from app.ledger.queries import wallet_balance
from app.payments import models as m
from app.vtu.orders import PurchaseRequest
from app.vtu.runtime import get_vtu
from tests.factories import PASSWORD, create_user
from tests.fakes.monnify import MonnifySimulator
from tests.helpers import browser_pool, csrf_token, log_in, staff_browser
from tests.integration.api_fixtures import new_key

WEBHOOK = "/payments/webhooks/monnify/"
DELIVERED = "08011111111"  # the stub provider delivers to this number
FAILING = "08031234567"  # ... and fails (refunded) for other numbers


# -- fixtures and helpers ------------------------------------------------------------------------------
@pytest_asyncio.fixture(loop_scope="session")
async def browsers(app: Any, db: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    async with browser_pool(app) as new:
        yield new


@pytest.fixture
def monnify(settings: Any) -> MonnifySimulator:
    return MonnifySimulator(
        settings.monnify_api_key, settings.monnify_secret_key, settings.monnify_contract_code
    )


def url(user_id: uuid.UUID) -> str:
    return f"/staff/users/{user_id}"


def section(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}".*?</section>', html, re.S)
    assert found, element_id
    return found.group(0)


def plain(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def flashes(html: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", unescape(found)).strip()
        for found in re.findall(r'<p class="alert alert-\w+" role="status">(.*?)</p>', html, re.S)
    ]


def listed(html: str) -> list[str]:
    """Ids of the users shown in a list page or fragment, in order."""
    return re.findall(r'id="user-([0-9a-f-]{36})"', html)


STEP_UP_ACTIONS = ("tier", "role")


async def act(client: httpx.AsyncClient, user_id: uuid.UUID, action: str, **data: str) -> httpx.Response:
    """POST an action form like a browser (CSRF token from a console page), without following redirects.
    The tier and role changes ask for the staff member's password again: sent unless the test gives one."""
    token = await csrf_token(client, "/staff/users")
    if action in STEP_UP_ACTIONS:
        data = {"password": PASSWORD, **data}
    return await client.post(
        f"{url(user_id)}/{action}", data={**data, "_csrf_token": token}, follow_redirects=False
    )


async def act_and_read(client: httpx.AsyncClient, user_id: uuid.UUID, action: str, **data: str) -> str:
    response = await act(client, user_id, action, **data)
    assert response.status_code == 303, (response.status_code, response.text[:3000])
    assert response.headers["location"] == url(user_id)
    page = await client.get(url(user_id))
    assert page.status_code == 200
    return page.text


async def fresh(sessionmaker: Any, user_id: uuid.UUID) -> User:
    async with sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user


async def audit_rows(sessionmaker: Any, user_id: uuid.UUID) -> list[AuditEntry]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(AuditEntry)
            .where(AuditEntry.target_type == "user", AuditEntry.target_id == str(user_id))
            .order_by(AuditEntry.id)
        )
        return list(rows.scalars())


async def webhook(client: httpx.AsyncClient, monnify: MonnifySimulator, user: Any, kobo: int) -> None:
    """A customer's bank transfer, as Monnify notifies it (credited at once: verification is off here)."""
    body, signature = monnify.build_webhook(user.account_reference, kobo)
    response = await client.post(
        WEBHOOK, content=body, headers={"content-type": "application/json", "monnify-signature": signature}
    )
    assert response.status_code == 200, response.text


async def buy(app: Any, user: User, phone: str = DELIVERED, amount: int = 50_000) -> Any:
    runtime = await get_vtu(app)
    return await runtime.purchases.buy(
        user,
        PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=amount),
        idempotency_key=str(uuid.uuid4()),
    )


# -- guard ----------------------------------------------------------------------------------------------
async def test_anonymous_visitors_log_in_customers_are_refused_support_reads(db, browsers) -> None:
    someone = await create_user(db)
    await db.commit()
    anon = browsers()
    for path in ("/staff/users", url(someone.id)):
        response = await anon.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path
    customer = browsers()
    await log_in(customer, someone.email, PASSWORD)
    for path in ("/staff/users", url(someone.id)):
        page = await customer.get(path)
        assert page.status_code == 403 and "staff only" in page.text, path
    support = await staff_browser(db, browsers, "support")
    assert (await support.get("/staff/users")).status_code == 200
    profile = await support.get(url(someone.id))
    assert profile.status_code == 200 and someone.email in profile.text
    assert profile.headers["cache-control"] == "no-store"
    # Support reads only: no action forms on the page.
    assert 'id="suspend-form"' not in profile.text and 'id="read-only-note"' in profile.text
    assert (await support.get(url(uuid.uuid4()))).status_code == 404
    assert (await support.get("/staff/users/not-a-uuid")).status_code == 404


# -- search and the list ----------------------------------------------------------------------------------
async def test_search_finds_a_user_by_every_key(app, db, browsers, sessionmaker) -> None:
    ada = await create_user(db, email="ada.obi@example.ng", full_name="Adaeze  Obi", phone="08031112222")
    bob = await create_user(db, email="bob_100%@example.ng", full_name="Bob Ayo", phone="08051113333")
    staff = await staff_browser(db, browsers, "support")
    # A reserved bank account number Ada pays into, as Monnify returns it.
    async with sessionmaker() as session, session.begin():
        reservation = (
            await session.execute(select(m.ReservedAccount).where(m.ReservedAccount.user_id == ada.id))
        ).scalar_one()
        session.add(
            m.ReservedBankAccount(
                reservation_id=reservation.id,
                bank_code="035",
                bank_name="Wema bank",
                account_number="7001234567",
            )
        )
    # One of Bob's purchases.
    from tests.integration.purchase_fixtures import fund_wallet

    await fund_wallet(sessionmaker, bob.id, 100_000)
    purchase = await buy(app, bob)

    async def found(q: str) -> set[str]:
        page = await staff.get("/staff/users", params={"q": q})
        assert page.status_code == 200, q
        return set(listed(page.text))

    a, b = {str(ada.id)}, {str(bob.id)}
    assert await found("ADA.OBI") == a  # part of an e-mail, any case
    assert await found("obi@EXAMPLE") == a
    assert await found("adaeze obi") == a  # part of the name, spaces collapsed
    assert await found("AYO") == b
    for phone in ("08031112222", "2348031112222", "+234 803 111 2222", "0803-111-2222"):
        assert await found(phone) == a, phone
    assert await found(ada.account_reference.lower()) == a
    assert await found(ada.referral_code.lower()) == a
    assert await found("7001234567") == a  # the reserved account number
    assert await found(str(ada.id)) == a
    assert await found(purchase.request_id) == b  # a purchase reference -> its buyer
    assert await found(str(purchase.id)) == b
    if purchase.provider_reference:
        assert await found(purchase.provider_reference) == b
    # LIKE wildcards are taken literally.
    assert await found("_") == b and await found("%") == b and await found("100%@") == b
    assert await found("nobody-here") == set()
    page = await staff.get("/staff/users", params={"q": "nobody-here"})
    assert 'id="no-users"' in page.text
    # The search form swaps only the results (htmx).
    fragment = await staff.get(
        "/staff/users", params={"q": "ada"}, headers={"HX-Request": "true", "HX-Target": "user-results"}
    )
    assert "<h1>" not in fragment.text and set(listed(fragment.text)) == a
    # A line shows e-mail, name, phone, tier, role, status, balance, joined.
    line = plain(
        re.search(rf'id="user-{bob.id}".*?</li>', (await staff.get("/staff/users")).text, re.S).group(0)
    )
    for part in (bob.email, "Bob Ayo", "08051113333", "customer", "active", "₦500.00", "joined"):
        assert part in line, (part, line)


async def test_recent_sign_ups_newest_first_and_paged(db, browsers, sessionmaker, monkeypatch) -> None:
    made = [await create_user(db) for _ in range(5)]
    await db.commit()
    staff = await staff_browser(db, browsers, "support")  # the newest
    unverified = await create_user(db, email_verified=False)
    await db.commit()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE users SET suspended_at = now(), suspended_reason = 'fraud' WHERE id = :id"),
            {"id": made[0].id},
        )
    monkeypatch.setattr(users, "PAGE_SIZE", 3)
    first = await staff.get("/staff/users")
    ids = listed(first.text)
    assert len(ids) == 3 and ids[0] == str(unverified.id)
    assert re.search(rf'id="user-{unverified.id}".*?badge-status-unverified">unverified<', first.text, re.S)
    more = re.search(r'id="more-users">\s*<a [^>]*href="([^"]+)"', first.text)
    assert more
    link = unescape(more.group(1))
    # Older, as htmx appends it, then as a plain page.
    fragment = await staff.get(link, headers={"HX-Request": "true", "HX-Target": "more-users"})
    page2 = listed(fragment.text)
    assert "<h1>" not in fragment.text and len(page2) == 3 and not set(page2) & set(ids)
    plain_page = await staff.get(link)
    assert listed(plain_page.text) == page2 and "Back to the newest" in plain_page.text
    last = re.search(r'id="more-users">\s*<a [^>]*href="([^"]+)"', fragment.text)
    assert last
    rest = listed((await staff.get(unescape(last.group(1)))).text)
    everyone = ids + page2 + rest
    assert len(everyone) == len(set(everyone)) == 7 and everyone[-1] == str(made[0].id)
    assert "badge-status-suspended" in (await staff.get(unescape(last.group(1)))).text


# -- the profile ----------------------------------------------------------------------------------------
async def test_profile_statement_runs_to_the_wallet_balance_with_every_section(
    app, db, browsers, client, monnify, sessionmaker, monkeypatch
) -> None:
    referrer = await create_user(db, tier="reseller")
    friend = await create_user(db, referral_code=referrer.referral_code)
    referrer.pin_hash = None
    await db.commit()
    staff = await staff_browser(db, browsers, "operations")
    await webhook(client, monnify, referrer, 500_000)  # ₦5,000 in
    await webhook(client, monnify, friend, 100_000)  # the friend's first ₦1,000: the referrer's bonus
    delivered = await buy(app, await fresh(sessionmaker, referrer.id))
    failed = await buy(app, await fresh(sessionmaker, referrer.id), FAILING, 20_000)  # debited, refunded
    assert (delivered.status, failed.status) == ("successful", "failed")
    key = await new_key(sessionmaker, referrer.id, name="shop server")
    signed_in = browsers()
    assert (await log_in(signed_in, referrer.email, PASSWORD)).status_code == 303
    async with sessionmaker() as session:
        balance = await wallet_balance(session, referrer.id)
    assert balance > 0

    html = (await staff.get(url(referrer.id))).text
    assert plain(section(html, "identity")).count(referrer.account_reference) >= 1
    assert re.search(r'id="wallet-balance">([^<]+)<', html).group(1) == f"₦{balance / 100:,.2f}"
    statement = section(html, "statement")
    entries = re.findall(
        r'class="entry-kind">([^<]+)<.*?data-kobo="(-?\d+)".*?'
        r'entry-balance">balance <strong data-kobo="(\d+)"',
        statement,
        re.S,
    )
    kinds = [kind for kind, _, _ in entries]
    assert kinds == ["Refund", "Purchase", "Purchase", "Referral bonus", "Funding"], kinds
    amounts = [int(amount) for _, amount, _ in entries]
    balances = [int(after) for _, _, after in entries]
    assert balances[0] == balance  # the newest line's balance is the wallet's balance now
    for newer, older, amount in zip(balances, balances[1:], amounts, strict=False):
        assert newer - amount == older  # each line: the balance before it plus its amount
    assert balances[-1] == amounts[-1]  # the first entry of the wallet
    assert amounts[3] == 10_000  # the ₦100 referral bonus
    # Each line links to what it is about.
    assert f'href="/staff/purchases/{delivered.id}"' in statement
    assert f'href="/staff/purchases/{failed.id}"' in statement
    assert f'href="/staff/users/{friend.id}"' in statement  # the bonus: for the friend's funding
    assert re.search(r'href="/staff/funding/\d+"', statement)
    # The other sections.
    assert {str(delivered.id), str(failed.id)} <= set(re.findall(r'id="purchase-([0-9a-f-]{36})"', html))
    assert len(re.findall(r'id="event-\d+"', section(html, "user-fundings"))) == 1
    referrals = plain(section(html, "user-referrals"))
    assert friend.email in referrals and "₦100.00" in referrals and "funding bonus for" in referrals
    keys = plain(section(html, "user-keys"))
    assert key.key.prefix in keys and "shop server" in keys and "never used" in keys
    assert "Not signed in anywhere" not in section(html, "user-sessions")
    assert len(re.findall(r'class="row"', section(html, "user-sessions"))) == 1
    assert 'href="/staff/audit?target_type=user&amp;target_id=' + str(referrer.id) + '"' in html
    # The friend's profile names who referred them.
    friend_page = (await staff.get(url(friend.id))).text
    assert f'href="/staff/users/{referrer.id}">{referrer.email}<' in section(friend_page, "user-referrals")

    # "Older": the statement pages by entry, with htmx and as a plain link.
    monkeypatch.setattr(users, "STATEMENT_PAGE", 2)
    html = (await staff.get(url(referrer.id))).text
    assert len(re.findall(r'id="entry-\d+"', section(html, "statement"))) == 2
    older = re.search(r'id="more-statement">\s*<a [^>]*href="([^"#]+)', html)
    assert older
    fragment = await staff.get(older.group(1), headers={"HX-Request": "true", "HX-Target": "more-statement"})
    assert "<h1" not in fragment.text and len(re.findall(r'id="entry-\d+"', fragment.text)) == 2
    page = (await staff.get(older.group(1))).text
    assert re.findall(r'id="entry-(\d+)"', page) == re.findall(r'id="entry-(\d+)"', fragment.text)
    assert "Back to the newest" in section(page, "statement")


async def test_purchase_and_funding_pages_link_the_customer_to_their_profile(
    app, db, browsers, client, monnify, sessionmaker
) -> None:
    customer = await create_user(db)
    await db.commit()
    staff = await staff_browser(db, browsers, "support")
    await webhook(client, monnify, customer, 100_000)
    purchase = await buy(app, await fresh(sessionmaker, customer.id))
    page = (await staff.get(f"/staff/purchases/{purchase.id}")).text
    assert f'href="/staff/users/{customer.id}" id="owner-email"' in page
    listing = (await staff.get("/staff/purchases")).text
    assert f'href="/staff/users/{customer.id}"' in listing
    event_id = re.search(r'href="/staff/funding/(\d+)"', (await staff.get("/staff/funding")).text).group(1)
    assert (
        f'href="/staff/users/{customer.id}" id="customer-email"'
        in (await staff.get(f"/staff/funding/{event_id}")).text
    )
    overview = (await staff.get("/staff")).text
    assert 'href="/staff/users"' in overview and f'href="/staff/users/{customer.id}"' in overview


# -- actions: roles -------------------------------------------------------------------------------------
async def test_each_action_is_refused_below_its_role_and_changes_nothing(db, browsers, sessionmaker) -> None:
    target = await create_user(db)
    await db.commit()
    support = await staff_browser(db, browsers, "support")
    operations = await staff_browser(db, browsers, "operations")
    finance = await staff_browser(db, browsers, "finance")
    refused = [
        (support, "suspend", {"reason": "fraud"}),
        (support, "unsuspend", {}),
        (support, "pin-unlock", {}),
        (support, "api-keys/revoke-all", {}),
        (operations, "tier", {"tier": "reseller", "reason": "big buyer"}),
        (support, "tier", {"tier": "reseller", "reason": "big buyer"}),
        (operations, "role", {"role": "support"}),
        (finance, "role", {"role": "support"}),
    ]
    for client, action, data in refused:
        response = await act(client, target.id, action, **data)
        assert response.status_code == 403, (action, response.status_code)
        assert "This needs the" in response.text
    after = await fresh(sessionmaker, target.id)
    assert (after.suspended_at, after.tier, after.staff_role, after.is_staff) == (
        None,
        "customer",
        None,
        False,
    )
    assert await audit_rows(sessionmaker, target.id) == []
    # Without the CSRF token nothing happens either.
    response = await operations.post(
        f"{url(target.id)}/suspend", data={"reason": "x"}, follow_redirects=False
    )
    assert response.status_code == 403
    assert (await fresh(sessionmaker, target.id)).suspended_at is None


# -- actions: suspend / unsuspend -----------------------------------------------------------------------
async def test_suspend_needs_a_reason_then_suspends_once_and_unsuspends(db, browsers, sessionmaker) -> None:
    target = await create_user(db)
    await db.commit()
    ops = await staff_browser(db, browsers, "operations")
    ops_user = (await audit_actor(sessionmaker)).pop()
    for reason, problem in (("", "Give a reason"), ("x" * 501, "under 500 characters")):
        response = await act(ops, target.id, "suspend", reason=reason)
        assert response.status_code == 400 and problem in response.text
        assert 'aria-invalid="true"' in section(response.text, "actions")
    assert (await fresh(sessionmaker, target.id)).suspended_at is None
    html = await act_and_read(ops, target.id, "suspend", reason="  Chargeback fraud ring  ")
    assert any("is suspended" in f for f in flashes(html)), flashes(html)
    user = await fresh(sessionmaker, target.id)
    assert user.suspended_at is not None and user.suspended_reason == "Chargeback fraud ring"
    assert re.search(r'id="user-status">suspended<', html) and "Chargeback fraud ring" in section(
        html, "identity"
    )
    assert 'id="unsuspend-form"' in html and 'id="suspend-form"' not in html
    # A double click: "already suspended", nothing written twice.
    html = await act_and_read(ops, target.id, "suspend", reason="again")
    assert any("already suspended" in f for f in flashes(html))
    assert (await fresh(sessionmaker, target.id)).suspended_reason == "Chargeback fraud ring"
    [entry] = await audit_rows(sessionmaker, target.id)
    assert (entry.action, entry.actor_id, entry.actor_role, entry.reason) == (
        "user.suspend",
        ops_user,
        "operations",
        "Chargeback fraud ring",
    )
    assert entry.before == {"suspended_at": None, "suspended_reason": None}
    assert entry.after["suspended_reason"] == "Chargeback fraud ring" and entry.after["suspended_at"]
    assert "user.suspend" in section(html, "user-audit")
    html = await act_and_read(ops, target.id, "unsuspend", reason="cleared by the bank")
    assert any("no longer suspended" in f for f in flashes(html))
    user = await fresh(sessionmaker, target.id)
    assert (user.suspended_at, user.suspended_reason) == (None, None)
    html = await act_and_read(ops, target.id, "unsuspend")
    assert any("is not suspended" in f for f in flashes(html))
    entries = await audit_rows(sessionmaker, target.id)
    assert [e.action for e in entries] == ["user.suspend", "user.unsuspend"]
    assert entries[1].reason == "cleared by the bank" and entries[1].after == {
        "suspended_at": None,
        "suspended_reason": None,
    }


async def audit_actor(sessionmaker: Any) -> list[uuid.UUID]:
    """The id of the most recently created staff user (the one staff_browser just signed in)."""
    async with sessionmaker() as session:
        row = await session.execute(
            select(User.id).where(User.staff_role.is_not(None)).order_by(User.created_at.desc()).limit(1)
        )
        return [row.scalar_one()]


async def test_suspending_staff_needs_an_admin_and_nobody_acts_on_themselves(
    db, browsers, sessionmaker
) -> None:
    colleague = await create_user(db, staff_role="support")
    await db.commit()
    ops = await staff_browser(db, browsers, "operations")
    me = (await audit_actor(sessionmaker)).pop()
    html = await act_and_read(ops, colleague.id, "suspend", reason="left the company")
    assert any("Only an admin can suspend a staff member" in f for f in flashes(html)), flashes(html)
    assert (await fresh(sessionmaker, colleague.id)).suspended_at is None
    html = await act_and_read(ops, me, "suspend", reason="testing")
    assert any("cannot suspend your own account" in f for f in flashes(html))
    assert 'id="self-note"' in html
    admin = await staff_browser(db, browsers, "admin")
    html = await act_and_read(admin, colleague.id, "suspend", reason="left the company")
    assert (await fresh(sessionmaker, colleague.id)).suspended_at is not None
    # A suspended staff member loses the console at once (signed out; a log-in is refused).
    console = browsers()
    assert (await log_in(console, colleague.email, PASSWORD)).status_code == 422
    assert await audit_rows(sessionmaker, me) == []


# -- actions: tier, PIN, keys -----------------------------------------------------------------------------
async def test_finance_changes_the_tier_with_a_reason(db, browsers, sessionmaker) -> None:
    target = await create_user(db)
    await db.commit()
    finance = await staff_browser(db, browsers, "finance")
    response = await act(finance, target.id, "tier", tier="reseller", reason="")
    assert response.status_code == 400 and "Give a reason" in response.text
    response = await act(finance, target.id, "tier", tier="gold", reason="why not")
    assert response.status_code == 400 and "Tier must be one of" in response.text
    assert (await fresh(sessionmaker, target.id)).tier == "customer"
    html = await act_and_read(finance, target.id, "tier", tier="reseller", reason="sells for a shop")
    assert any("is now a reseller (was customer)" in f for f in flashes(html))
    assert (await fresh(sessionmaker, target.id)).tier == "reseller"
    html = await act_and_read(finance, target.id, "tier", tier="reseller", reason="double click")
    assert any("already a reseller" in f for f in flashes(html))
    [entry] = await audit_rows(sessionmaker, target.id)
    assert (entry.action, entry.before, entry.after, entry.reason, entry.actor_role) == (
        "user.tier",
        {"tier": "customer"},
        {"tier": "reseller"},
        "sells for a shop",
        "finance",
    )


async def test_operations_clears_a_pin_lock(app, db, browsers, sessionmaker) -> None:
    from app.accounts.passwords import hash_password

    target = await create_user(db)
    target.pin_hash = hash_password("2580")
    await db.commit()
    ops = await staff_browser(db, browsers, "operations")
    guard = pin_guard(app.state)
    for _ in range(app.state.settings.pin_max_failures):
        with pytest.raises(PinError):
            await guard.check(target, "1357")
    assert await guard.locked_for(target) > 0
    html = (await ops.get(url(target.id))).text
    assert "locked for" in section(html, "identity")
    html = await act_and_read(ops, target.id, "pin-unlock")
    assert any("PIN lock cleared" in f for f in flashes(html))
    assert await guard.locked_for(target) == 0
    await guard.check(target, "2580")  # the right PIN works again
    html = await act_and_read(ops, target.id, "pin-unlock")
    assert any("was not locked" in f for f in flashes(html))
    [entry] = await audit_rows(sessionmaker, target.id)
    assert entry.action == "user.pin_unlock" and entry.before["pin_locked_seconds"] > 0
    assert entry.after == {"pin_locked_seconds": 0}


async def test_operations_revokes_one_key_or_all_of_them(db, browsers, sessionmaker) -> None:
    target = await create_user(db, tier="reseller")
    other = await create_user(db, tier="reseller")
    await db.commit()
    first, second, third = [await new_key(sessionmaker, target.id, name=f"key {n}") for n in range(3)]
    foreign = await new_key(sessionmaker, other.id)
    ops = await staff_browser(db, browsers, "operations")
    html = await act_and_read(ops, target.id, f"api-keys/{first.key.id}/revoke")
    assert any(f"Key {first.key.prefix} revoked" in f for f in flashes(html))
    html = await act_and_read(ops, target.id, f"api-keys/{first.key.id}/revoke")
    assert any("already revoked" in f for f in flashes(html))
    # Another user's key through this user's page: refused, untouched.
    html = await act_and_read(ops, target.id, f"api-keys/{foreign.key.id}/revoke")
    assert any("no such API key" in f for f in flashes(html))
    html = await act_and_read(ops, target.id, "api-keys/revoke-all")
    assert any("2 API keys revoked" in f for f in flashes(html))
    html = await act_and_read(ops, target.id, "api-keys/revoke-all")
    assert any("nothing to revoke" in f for f in flashes(html))
    async with sessionmaker() as session:
        keys = {k.id: k for k in (await session.execute(select(ApiKey))).scalars()}
    assert all(keys[k.key.id].revoked_at is not None for k in (first, second, third))
    assert keys[first.key.id].revoked_by.startswith("staff:")
    assert keys[foreign.key.id].revoked_at is None
    entries = await audit_rows(sessionmaker, target.id)
    assert [e.action for e in entries] == ["api_key.revoke", "api_key.revoke_all"]
    assert entries[0].after == {
        "key_id": str(first.key.id),
        "prefix": first.key.prefix,
        "name": "key 0",
        "revoked": True,
    }
    assert sorted(entries[1].before["active"]) == sorted([second.key.prefix, third.key.prefix])


async def test_tier_and_role_changes_ask_for_the_password_again(app, db, browsers, sessionmaker) -> None:
    """A signed-in console left open is not enough to hand out reseller prices or admin rights: a missing or
    wrong password is a 400 with the field marked, the choice kept, nothing changed and nothing audited; a
    staff member with a transaction PIN gives it too."""
    target = await create_user(db)
    await db.commit()
    admin = await staff_browser(db, browsers, "admin")
    for action, data in (("tier", {"tier": "reseller", "reason": "shop"}), ("role", {"role": "finance"})):
        response = await act(admin, target.id, action, **data, password="")
        assert response.status_code == 400, (action, response.status_code)
        assert "Your password is not correct" in response.text
        response = await act(admin, target.id, action, **data, password="not-my-password")
        assert response.status_code == 400 and "Your password is not correct" in response.text
        assert 'value="finance" selected' in response.text or 'value="reseller" selected' in response.text
        assert "not-my-password" not in response.text
    after = await fresh(sessionmaker, target.id)
    assert (after.tier, after.staff_role) == ("customer", None)
    assert await audit_rows(sessionmaker, target.id) == []
    # With a PIN set, the PIN is asked too; the right password and PIN change the role.
    me = (await audit_actor(sessionmaker)).pop()
    from app.accounts.passwords import hash_password

    async with sessionmaker() as session:
        staff = await session.get(User, me)
        assert staff is not None
        staff.pin_hash = hash_password("4826")
        await session.commit()
    response = await act(admin, target.id, "role", role="finance", pin="1111")
    assert response.status_code == 400 and "f-role-pin" in response.text
    assert (await fresh(sessionmaker, target.id)).staff_role is None
    await act_and_read(admin, target.id, "role", role="finance", pin="4826")
    assert (await fresh(sessionmaker, target.id)).staff_role == "finance"


# -- actions: staff roles -------------------------------------------------------------------------------
async def test_admin_makes_staff_changes_roles_and_removes_staff(db, browsers, sessionmaker) -> None:
    target = await create_user(db)
    boss = await create_user(db, is_superuser=True)
    await db.commit()
    admin = await staff_browser(db, browsers, "admin")
    me = (await audit_actor(sessionmaker)).pop()
    html = await act_and_read(admin, target.id, "role", role="support", reason="new hire")
    assert any("is now staff with the support role" in f for f in flashes(html))
    user = await fresh(sessionmaker, target.id)
    assert (user.staff_role, user.is_staff, user.is_superuser) == ("support", True, False)
    html = await act_and_read(admin, target.id, "role", role="support")
    assert any("already support" in f for f in flashes(html))
    await act_and_read(admin, target.id, "role", role="admin")
    assert (await fresh(sessionmaker, target.id)).staff_role == "admin"
    html = await act_and_read(admin, target.id, "role", role="")
    assert any("no longer staff" in f for f in flashes(html))
    user = await fresh(sessionmaker, target.id)
    assert (user.staff_role, user.is_staff, user.is_superuser) == (None, False, False)
    # A superuser demoted from admin is no longer a superuser (the table's rule).
    await act_and_read(admin, boss.id, "role", role="finance")
    user = await fresh(sessionmaker, boss.id)
    assert (user.staff_role, user.is_staff, user.is_superuser) == ("finance", True, False)
    # Unknown role: 400, nothing changed; one's own role: refused.
    response = await act(admin, target.id, "role", role="owner")
    assert response.status_code == 400 and "Role must be one of" in response.text
    html = await act_and_read(admin, me, "role", role="support")
    assert any("cannot change the staff role of your own account" in f for f in flashes(html))
    assert (await fresh(sessionmaker, me)).staff_role == "admin"
    entries = await audit_rows(sessionmaker, target.id)
    assert [(e.before["staff_role"], e.after["staff_role"]) for e in entries] == [
        (None, "support"),
        ("support", "admin"),
        ("admin", None),
    ]
    assert entries[0].reason == "new hire" and entries[0].after["is_staff"] is True
    [boss_entry] = await audit_rows(sessionmaker, boss.id)
    assert boss_entry.before["is_superuser"] is True and boss_entry.after["is_superuser"] is False


async def test_the_last_admin_is_never_removed_or_suspended(db, sessionmaker) -> None:
    from app.accounts import suspension

    only = await create_user(db, staff_role="admin")
    await db.commit()
    async with sessionmaker() as session:
        with pytest.raises(staff_admin.Refused, match="last admin"):
            await staff_admin.change_role(session, Actor.cli(), only.id, "operations")
        with pytest.raises(staff_admin.Refused, match="last admin"):
            await suspension.suspend(session, Actor.cli(), only.id, "gone")
        await session.rollback()
    second = await create_user(db, staff_role="admin")
    await db.commit()
    async with sessionmaker() as session:
        outcome = await staff_admin.change_role(session, Actor.cli(), only.id, "operations")
        await session.commit()
    assert outcome.changed and (await fresh(sessionmaker, only.id)).staff_role == "operations"
    async with sessionmaker() as session:
        with pytest.raises(staff_admin.Refused, match="last admin"):
            await staff_admin.change_role(session, Actor.cli(), second.id, None)
    assert (await fresh(sessionmaker, second.id)).staff_role == "admin"
