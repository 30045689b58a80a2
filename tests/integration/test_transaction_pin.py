"""Transaction PIN: setting it (password required, weak PINs refused) and checking it (counted per user in
Redis, locked after too many wrong guesses, also under a burst of concurrent guesses)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from app.accounts.models import User
from app.accounts.passwords import hash_password, verify_password
from app.accounts.pins import PinGuard, PinLocked, PinNotSet, WrongPin, pin_problem
from app.core.throttle import Rule, bucket_key
from tests.factories import PASSWORD, create_user
from tests.helpers import log_in, post_form


async def _reload(db, user_id) -> User:
    db.expire_all()
    return (await db.execute(select(User).where(User.id == user_id))).scalar_one()


@pytest.mark.parametrize(
    ("pin", "ok"),
    [("2580", True), ("7391", True), ("0000", False), ("1234", False), ("9876", False), ("123", False),
     ("12345", False), ("12a4", False), ("١٢٣٤", False), ("", False)],
)  # fmt: skip
def test_pin_rules(pin, ok):
    assert (pin_problem(pin) is None) is ok


async def test_setting_a_pin_needs_the_password_and_a_good_pin(client, db):
    user = await create_user(db)
    await db.commit()
    await log_in(client, user.email, PASSWORD)
    page = await client.get("/account/pin")
    assert page.status_code == 200 and "Set a transaction PIN" in page.text

    wrong = await post_form(
        client, "/account/pin", {"password": "nope", "pin": "2580", "confirm_pin": "2580"}
    )
    assert wrong.status_code == 422 and "Your password is not correct." in wrong.text
    weak = await post_form(
        client, "/account/pin", {"password": PASSWORD, "pin": "1111", "confirm_pin": "1111"}
    )
    assert weak.status_code == 422 and "too easy to guess" in weak.text
    mismatch = await post_form(
        client, "/account/pin", {"password": PASSWORD, "pin": "2580", "confirm_pin": "2581"}
    )
    assert mismatch.status_code == 422 and "do not match" in mismatch.text
    assert (await _reload(db, user.id)).pin_hash is None

    done = await post_form(
        client,
        "/account/pin",
        {"password": PASSWORD, "pin": "2580", "confirm_pin": "2580", "next": "/buy/airtime"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/buy/airtime"
    stored = (await _reload(db, user.id)).pin_hash
    assert stored and stored.startswith("$argon2id$") and verify_password(stored, "2580")
    assert "Change transaction PIN" in (await client.get("/account/pin")).text


async def test_next_never_leaves_the_site(client, db):
    user = await create_user(db)
    await db.commit()
    await log_in(client, user.email, PASSWORD)
    done = await post_form(
        client,
        "/account/pin",
        {"password": PASSWORD, "pin": "2580", "confirm_pin": "2580", "next": "//evil.example"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/dashboard"


async def test_pin_page_needs_a_login(client):
    response = await client.get("/account/pin", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_wrong_pins_lock_the_pin_and_the_right_one_resets_the_count(db, redis):
    user = await create_user(db)
    user.pin_hash = hash_password("2580")
    await db.commit()
    guard = PinGuard(redis, max_failures=3, window_seconds=60)

    with pytest.raises(WrongPin) as first:
        await guard.check(user, "1111")
    assert first.value.attempts_left == 2
    await guard.check(user, "2580")  # the right PIN clears the count
    for left in (2, 1):
        with pytest.raises(WrongPin) as exc:
            await guard.check(user, "1111")
        assert exc.value.attempts_left == left
    with pytest.raises(PinLocked):
        await guard.check(user, "1111")
    with pytest.raises(PinLocked) as locked:
        await guard.check(user, "2580")  # locked: even the right PIN is refused
    assert 0 < locked.value.retry_after <= 60
    await guard.unlock(user)
    await guard.check(user, "2580")


async def test_a_burst_of_concurrent_guesses_gets_only_the_allowed_attempts(db, redis):
    user = await create_user(db)
    user.pin_hash = hash_password("2580")
    await db.commit()
    guard = PinGuard(redis, max_failures=5, window_seconds=60)

    guesses = [f"{n:04d}" for n in range(3000, 3040)]  # 40 wrong PINs at once
    results = await asyncio.gather(*(guard.check(user, g) for g in guesses), return_exceptions=True)
    wrong = [r for r in results if isinstance(r, WrongPin)]
    locked = [r for r in results if isinstance(r, PinLocked)]
    assert len(wrong) == 4 and len(locked) == 36  # 5 verified (the 5th locks), 35 refused unverified
    with pytest.raises(PinLocked):
        await guard.check(user, "2580")


async def test_a_double_tapped_right_pin_is_approved_every_time(db, redis):
    user = await create_user(db)
    user.pin_hash = hash_password("2580")
    await db.commit()
    guard = PinGuard(redis, max_failures=5, window_seconds=60)
    with pytest.raises(WrongPin):
        await guard.check(user, "1111")  # one earlier slip
    results = await asyncio.gather(*(guard.check(user, "2580") for _ in range(10)), return_exceptions=True)
    assert results == [None] * 10
    assert await redis.get(bucket_key(Rule("pin", 5, 60), str(user.id))) is None  # the count was cleared


async def test_no_pin_set_is_its_own_answer(db, redis):
    user = await create_user(db)
    await db.commit()
    with pytest.raises(PinNotSet):
        await PinGuard(redis).check(user, "2580")


async def test_changing_the_pin_needs_the_current_pin_and_clears_the_count(client, db, redis, settings):
    user = await create_user(db)
    user.pin_hash = hash_password("2580")
    await db.commit()
    guard = PinGuard(redis, settings.pin_max_failures, settings.pin_lockout_seconds)
    for _ in range(settings.pin_max_failures - 2):
        with pytest.raises(WrongPin):
            await guard.check(user, "1111")
    await log_in(client, user.email, PASSWORD)
    form = {"password": PASSWORD, "pin": "4826", "confirm_pin": "4826"}
    # a stolen session that knows the password still needs the current PIN
    no_pin = await post_form(client, "/account/pin", form)
    assert no_pin.status_code == 422 and "Enter your transaction PIN" in no_pin.text
    wrong = await post_form(client, "/account/pin", {**form, "current_pin": "1111"})
    assert wrong.status_code == 422 and "not correct" in wrong.text
    assert verify_password((await _reload(db, user.id)).pin_hash, "2580")  # unchanged
    done = await post_form(client, "/account/pin", {**form, "current_pin": "2580"})
    assert done.status_code == 303
    user = await _reload(db, user.id)
    await guard.check(user, "4826")
    with pytest.raises(WrongPin) as fresh:  # the count started again from zero
        await guard.check(user, "1111")
    assert fresh.value.attempts_left == settings.pin_max_failures - 1


async def test_a_locked_pin_cannot_be_changed_with_the_password_alone(client, db, redis, settings):
    user = await create_user(db)
    user.pin_hash = hash_password("2580")
    await db.commit()
    guard = PinGuard(redis, settings.pin_max_failures, settings.pin_lockout_seconds)
    for _ in range(settings.pin_max_failures):
        with pytest.raises((WrongPin, PinLocked)):
            await guard.check(user, "1111")
    await log_in(client, user.email, PASSWORD)
    refused = await post_form(
        client,
        "/account/pin",
        {"password": PASSWORD, "current_pin": "2580", "pin": "4826", "confirm_pin": "4826"},
    )
    assert refused.status_code == 422 and "locked" in refused.text
    assert verify_password((await _reload(db, user.id)).pin_hash, "2580")
