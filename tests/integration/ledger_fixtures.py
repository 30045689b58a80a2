"""Helpers for ledger tests: cheap users with wallets, funding, raw SQL outside the posting API."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text

from app.core.db import make_engine, make_sessionmaker
from app.ledger.accounts import MONNIFY_CLEARING, open_wallet, system_account_id
from app.ledger.posting import Leg, post_transaction

_seq = itertools.count(1)


async def insert_users(session: Any, count: int) -> list[uuid.UUID]:
    """Bare user rows (no argon2 hashing, no hooks): the ledger only needs the foreign key."""
    ids = [uuid.uuid4() for _ in range(count)]
    rows = []
    for user_id in ids:
        n = next(_seq)
        rows.append(
            {
                "id": user_id,
                "email": f"ledger{n}-{user_id.hex[:6]}@example.ng",
                "ref": f"L{user_id.hex[:20]}",
                "code": f"L{user_id.hex[:12]}",
            }
        )
    await session.execute(
        text(
            "INSERT INTO users (id, email, full_name, password_hash, account_reference, referral_code,"
            " created_at, updated_at) VALUES (:id, :email, '', 'x', :ref, :code, now(), now())"
        ),
        rows,
    )
    return ids


async def make_wallets(sessionmaker: Any, count: int, *, fund: int = 0) -> list[int]:
    """`count` committed wallets, each funded with `fund` kobo from Monnify clearing."""
    async with sessionmaker() as session, session.begin():
        wallets = [await open_wallet(session, user_id) for user_id in await insert_users(session, count)]
        if fund:
            clearing = await system_account_id(session, MONNIFY_CLEARING)
            await post_transaction(
                session,
                key=f"test:fund:{uuid.uuid4()}",
                kind="funding",
                legs=[Leg(clearing, -fund * count), *(Leg(w, fund) for w in wallets)],
            )
    return wallets


async def fund(session: Any, wallet: int, amount: int, *, key: str | None = None) -> Any:
    clearing = await system_account_id(session, MONNIFY_CLEARING)
    return await post_transaction(
        session,
        key=key or f"test:fund:{uuid.uuid4()}",
        kind="funding",
        legs=[Leg(clearing, -amount), Leg(wallet, amount)],
    )


async def balance_of(sessionmaker: Any, account_id: int) -> int:
    from app.ledger.queries import account_balance

    async with sessionmaker() as session:
        return await account_balance(session, account_id)


async def bypass_triggers(engine: Any, *statements: str, params: dict[str, Any] | None = None) -> None:
    """Run SQL with ordinary triggers off (session_replication_role = replica), as a broken tool or a
    superuser's hand-edit on the server might: the only way to create drift, which reconcile must then
    report. `engine` must connect as a superuser (the `superuser_engine` fixture)."""
    async with engine.connect() as conn:
        await conn.execute(text("SET session_replication_role = replica"))
        try:
            for statement in statements:
                await conn.execute(text(statement), params or {})
            await conn.commit()
        finally:
            await conn.execute(text("SET session_replication_role = DEFAULT"))
            await conn.commit()


@asynccontextmanager
async def racing_sessionmaker(settings: Any, connections: int = 12) -> AsyncIterator[Any]:
    """Sessions on a private engine of up to `connections` connections, closed afterwards.

    Concurrency tests race on separate connections without growing the shared pool for the rest of the
    run: PostgreSQL 15 in CI allows 100 connections for both xdist workers together.
    """
    engine = make_engine(settings, pool_size=connections, max_overflow=0, pool_timeout=120)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()
