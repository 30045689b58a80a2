"""The session middleware's user read (app/accounts/auth.py `load_user`): one statement outside any
transaction, giving a complete `User` attached to the request's session, read afresh on every request. And the
read-only pages (app/core/db.py `reads_only`): no transaction left open, nothing written. Suspension,
password-version and session tests are in test_suspension.py and test_account_security.py."""

from __future__ import annotations

import uuid

from sqlalchemy import inspect, select, text, update

from app.accounts.auth import load_user
from app.accounts.models import User
from app.core.db import reads_only
from tests.factories import PASSWORD, create_user
from tests.helpers import log_in, post_form


async def test_the_user_is_complete_attached_and_as_an_orm_load_gives_it(engine, sessionmaker, db) -> None:
    user = await create_user(db, full_name="Ada Obi")
    await db.execute(update(User).where(User.id == user.id).values(pin_hash="x", staff_role=None))
    await db.commit()
    async with sessionmaker() as session:
        loaded = await load_user(engine, session, user.id)
        assert loaded is not None
        state = inspect(loaded)
        assert state.persistent and state.session is session.sync_session
        assert not state.expired_attributes and not state.unloaded  # nothing left to load lazily (no I/O)
        assert engine.sync_engine.pool.checkedout() == 0  # the read's connection is back in the pool
        assert session.identity_map.get(state.key) is loaded  # session.get() finds it, no second read
    async with sessionmaker() as session:
        reference = await session.get(User, user.id)
        for attr in inspect(User).column_attrs:
            assert getattr(loaded, attr.key) == getattr(reference, attr.key), attr.key
            assert type(getattr(loaded, attr.key)) is type(getattr(reference, attr.key)), attr.key
    async with sessionmaker() as session:
        assert await load_user(engine, session, uuid.UUID(int=0)) is None


async def test_a_change_to_the_loaded_user_is_written_by_the_request_session(
    engine, sessionmaker, db
) -> None:
    user = await create_user(db)
    await db.commit()
    async with sessionmaker() as session:
        loaded = await load_user(engine, session, user.id)
        assert loaded is not None
        loaded.full_name = "Changed In Handler"
        await session.commit()
    async with sessionmaker() as session:
        name = await session.scalar(select(User.full_name).where(User.id == user.id))
    assert name == "Changed In Handler"


async def test_every_request_reads_the_row_again(client, db) -> None:
    """A change made in the database between two requests is seen by the second (nothing is cached)."""
    user = await create_user(db, full_name="Before Change")
    await db.commit()
    assert (await log_in(client, user.email, PASSWORD)).status_code in (302, 303)
    assert "Before Change" in (await client.get("/dashboard")).text
    await db.execute(update(User).where(User.id == user.id).values(full_name="After Change"))
    await db.commit()
    page = await client.get("/dashboard")
    assert page.status_code == 200 and "After Change" in page.text and "Before Change" not in page.text
    await db.execute(update(User).where(User.id == user.id).values(is_active=False))
    await db.commit()
    assert (await client.get("/dashboard", follow_redirects=False)).status_code != 200


async def test_reads_only_sends_no_transaction(sessionmaker, db) -> None:
    """Each statement commits by itself: a read-only page never leaves a transaction open on its
    connection (PostgreSQL's own view of the connection's transaction)."""
    async with sessionmaker() as session:
        await reads_only(session)
        # Outside a transaction block now() is each statement's own start time; inside one, BEGIN's.
        now_a = await session.scalar(text("SELECT now()"))
        now_b = await session.scalar(text("SELECT now()"))
        assert now_a != now_b
    async with sessionmaker() as session:  # the pool gives the connection back in its usual mode
        await session.execute(text("SELECT 1"))
        now_a = await session.scalar(text("SELECT now()"))
        now_b = await session.scalar(text("SELECT now()"))
        assert now_a == now_b  # one transaction again


async def test_signed_in_pages_still_work_and_posts_still_commit(client, db) -> None:
    """The read-only pages answer; a form post by the same signed-in user still commits its change (the
    request session is not left in autocommit by the middleware)."""
    user = await create_user(db)
    await db.commit()
    assert (await log_in(client, user.email, PASSWORD)).status_code in (302, 303)
    for path in (
        "/dashboard",
        "/statement",
        "/buy/data",
        "/buy/airtime",
        "/buy/data/plans?service_id=mtn-data",
    ):
        assert (await client.get(path)).status_code == 200, path
    answer = await post_form(
        client,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "A-new-Passw0rd-123",
            "confirm_password": "A-new-Passw0rd-123",
        },
    )
    assert answer.status_code in (200, 303), answer.text[:500]
    version = await db.scalar(select(User.password_version).where(User.id == user.id))
    assert version == user.password_version + 1
    assert (await client.get("/dashboard")).status_code == 200  # this device stays signed in
