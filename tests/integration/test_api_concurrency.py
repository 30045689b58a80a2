"""The API's money rules under concurrency, over real HTTP: racing requests with one Idempotency-Key make one
purchase and one debit; the daily spend limit cannot be overshot by racing purchases and a refused purchase
moves no money. Every test ends with a clean ledger reconcile (clean_db)."""

from __future__ import annotations

import asyncio
import datetime
import uuid

import httpx
from sqlalchemy import func, select, text

from app.api.services import lagos_day_start
from app.ledger.models import LedgerTransaction
from app.ledger.queries import wallet_balance
from app.vtu.models import Purchase
from tests.integration import api_fixtures
from tests.integration.api_fixtures import (
    ALL_TIERS,
    DELIVERED,
    FAILING,
    airtime,
    new_reseller,
    purchase_count,
)

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http


async def balance(sessionmaker, user_id) -> int:
    async with sessionmaker() as session:
        return await wallet_balance(session, user_id)


async def debits(sessionmaker, user_id) -> int:
    async with sessionmaker() as session:
        keys = select(func.concat("purchase:", Purchase.id)).where(Purchase.user_id == user_id)
        stmt = (
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.idempotency_key.in_(keys))
        )
        return int((await session.execute(stmt)).scalar_one())


async def test_fifty_racing_requests_with_one_key_make_one_purchase(api, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=1_000_000)
    headers = reseller.buy_headers("race-1")
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.post("/api/v1/purchases", json=airtime(), headers=headers) for _ in range(50))
        )
    assert [r.status_code for r in responses] == [201] * 50, {r.status_code: r.text for r in responses}
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    assert await purchase_count(sessionmaker, reseller.user_id) == 1
    assert await debits(sessionmaker, reseller.user_id) == 1
    assert await balance(sessionmaker, reseller.user_id) == 1_000_000 - 9_800


async def test_spend_limit_holds_under_fifty_racing_purchases(api, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=2_000_000, tier="customer")
    limits = httpx.Limits(max_connections=60)
    with api.limits(api_daily_spend_limit_kobo=100_000, api_key_tiers=ALL_TIERS):  # N1,000/day, N100 each
        async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=limits) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())
                    for _ in range(50)
                )
            )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 10 + [402] * 40, statuses
    refused = [r.json() for r in responses if r.status_code == 402]
    assert {body["error"] for body in refused} == {"limit_exceeded"}
    assert await purchase_count(sessionmaker, reseller.user_id) == 10
    assert await balance(sessionmaker, reseller.user_id) == 2_000_000 - 100_000


async def test_refused_purchase_moves_no_money_and_refunds_free_the_limit(api, http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=1_000_000, tier="customer")
    with api.limits(api_daily_spend_limit_kobo=25_000, api_key_tiers=ALL_TIERS):
        ok = await http.post(
            "/api/v1/purchases", json=airtime(amount_kobo=20_000), headers=reseller.buy_headers()
        )
        assert ok.status_code == 201 and ok.json()["status"] == "successful"
        before = await balance(sessionmaker, reseller.user_id)
        refused = await http.post(
            "/api/v1/purchases", json=airtime(amount_kobo=10_000), headers=reseller.buy_headers("over")
        )
        assert refused.status_code == 402 and refused.json()["error"] == "limit_exceeded"
        assert await balance(sessionmaker, reseller.user_id) == before
        assert await purchase_count(sessionmaker, reseller.user_id) == 1
        # A failed purchase is refunded, so it does not use up the day's limit.
        failed = await http.post(
            "/api/v1/purchases", json=airtime(FAILING, amount_kobo=5_000), headers=reseller.buy_headers()
        )
        assert failed.status_code == 201 and failed.json()["status"] == "failed"
        fits = await http.post(
            "/api/v1/purchases", json=airtime(amount_kobo=5_000), headers=reseller.buy_headers()
        )
        assert fits.status_code == 201 and fits.json()["status"] == "successful"
        # A replay of a purchase made before the limit was reached is still the same purchase, not a 402.
        replay = await http.post(
            "/api/v1/purchases", json=airtime(amount_kobo=20_000), headers={**reseller.headers,
            "Idempotency-Key": ok.request.headers["Idempotency-Key"]},
        )  # fmt: skip
        assert replay.status_code == 201 and replay.json()["id"] == ok.json()["id"]
    assert await balance(sessionmaker, reseller.user_id) == 1_000_000 - 25_000


async def test_yesterdays_spending_does_not_count(api, http, sessionmaker):
    reseller = await new_reseller(sessionmaker, fund=1_000_000, tier="customer")
    with api.limits(api_daily_spend_limit_kobo=10_000, api_key_tiers=ALL_TIERS):
        first = await http.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())
        assert first.status_code == 201
        assert (
            await http.post("/api/v1/purchases", json=airtime(), headers=reseller.buy_headers())
        ).status_code == 402
        # Move the first purchase to just before midnight, Lagos time: today's budget is whole again.
        midnight = lagos_day_start(datetime.datetime.now(datetime.UTC))
        async with sessionmaker() as session, session.begin():
            await session.execute(
                text("UPDATE purchases SET created_at = :t WHERE id = :id"),
                {"t": midnight - datetime.timedelta(seconds=1), "id": uuid.UUID(first.json()["id"])},
            )
        again = await http.post("/api/v1/purchases", json=airtime(DELIVERED), headers=reseller.buy_headers())
        assert again.status_code == 201


def test_lagos_day_starts_at_2300_utc():
    moment = datetime.datetime(2026, 11, 28, 23, 30, tzinfo=datetime.UTC)  # 00:30 on the 29th in Lagos
    assert lagos_day_start(moment) == datetime.datetime(2026, 11, 28, 23, 0, tzinfo=datetime.UTC)
    moment = datetime.datetime(2026, 11, 28, 22, 30, tzinfo=datetime.UTC)  # 23:30 on the 28th in Lagos
    assert lagos_day_start(moment) == datetime.datetime(2026, 11, 27, 23, 0, tzinfo=datetime.UTC)
