"""The alert checker (app/alerts, cron `check_alerts`): each condition, driven by real rows / Redis keys /
the VTpass simulator's balance, is raised once across runs, e-mailed once (outbox rows) to operations-and-up
staff, and cleared when it ends; two runs at once raise one alert."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy import text

from app.alerts import service as alerts
from app.alerts.tasks import check_alerts
from app.ledger.reconcile import save_result
from app.vtu.models import FAILED
from app.vtu.orders import PurchaseRequest
from app.vtu.runtime import VtuRuntime
from tests.factories import create_user
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import Harness, assert_reconciled, new_buyer, sim_settings
from workers.heartbeat import beat

sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt

UNCLEAR = "500000000000"  # the simulator keeps this one pending
FAILING = "08031234567"  # ... and fails (016) ordinary numbers


@pytest_asyncio.fixture(loop_scope="session")
async def runtime(db: Any, settings: Any, sessionmaker: Any, sim_server: Any, sim: Any) -> AsyncIterator[Any]:
    """What the worker's ctx["vtu"] is, selling through the VTpass simulator (its balance API too)."""
    rt = VtuRuntime(sim_settings(settings, sim_server[1].url, sim), sessionmaker)
    try:
        yield rt
    finally:
        await rt.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def healthy(redis: Any, sim: Any) -> None:
    """A fresh heartbeat and a float above the alert level: only the condition under test is raised."""
    await beat(redis)
    sim.balance_naira = "250000.00"


def ctx(sessionmaker: Any, redis: Any, runtime: Any) -> dict[str, Any]:
    return {"sessionmaker": sessionmaker, "redis": redis, "vtu": runtime, "settings": runtime.settings}


async def run(sessionmaker: Any, redis: Any, runtime: Any, now: datetime.datetime | None = None) -> Any:
    async with sessionmaker() as session:
        outcome = await alerts.run(session, redis=redis, runtime=runtime, settings=runtime.settings, now=now)
        await session.commit()
    return outcome


async def rows(sessionmaker: Any, key: str) -> list[Any]:
    async with sessionmaker() as session:
        return list(
            await session.execute(
                text("SELECT id, key, cleared_at, message FROM alerts WHERE key = :k ORDER BY id"), {"k": key}
            )
        )


async def mails(sessionmaker: Any, prefix: str) -> list[Any]:
    async with sessionmaker() as session:
        return list(
            await session.execute(
                text(
                    "SELECT dedupe_key, to_address, template, status FROM outgoing_mail"
                    " WHERE dedupe_key LIKE :p ORDER BY dedupe_key"
                ),
                {"p": prefix + "%"},
            )
        )


async def staff(db: Any) -> tuple[Any, Any]:
    """One operations member (mailed) and one support member (not mailed)."""
    ops = await create_user(db, staff_role="operations")
    support = await create_user(db, staff_role="support")
    await db.commit()
    return ops, support


async def test_old_pending_purchase_raised_once_mailed_once_and_cleared(
    db, sessionmaker, redis, runtime, healthy, vt: Harness
) -> None:
    ops, _support = await staff(db)
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    purchase = await vt.service.buy(
        buyer, PurchaseRequest(service_id="mtn", phone=UNCLEAR, amount_kobo=50_000)
    )
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE purchases SET created_at = now() - interval '2 hours' WHERE id = :id"),
            {"id": purchase.id},
        )
    first = await run(sessionmaker, redis, runtime)
    assert [c.key for c in first.raised] == ["pending_over_1h"]
    second = await run(sessionmaker, redis, runtime)
    assert second.raised == [] and second.cleared == []
    [alert] = await rows(sessionmaker, "pending_over_1h")
    assert alert.cleared_at is None and "1 purchase(s) pending for more than an hour" in alert.message
    sent = await mails(sessionmaker, "alert:")
    assert [(m.to_address, m.template) for m in sent] == [(ops.email, "staff_alert")]  # support not mailed
    assert sent[0].dedupe_key == f"alert:{alert.id}:{ops.id}"

    # The purchase is settled: the alert clears, once, with one "cleared" e-mail.
    await vt.service.resolve_manually(purchase.id, delivered=False, staff="ops@example.ng", note="checked")
    cleared = await run(sessionmaker, redis, runtime)
    assert [c.key for c in cleared.cleared] == ["pending_over_1h"]
    assert (await run(sessionmaker, redis, runtime)).cleared == []
    [alert] = await rows(sessionmaker, "pending_over_1h")
    assert alert.cleared_at is not None
    assert [m.template for m in await mails(sessionmaker, "alert-cleared:")] == ["staff_alert_cleared"]
    assert len(await mails(sessionmaker, "alert:")) == 1
    await assert_reconciled(sessionmaker)


async def test_unmatched_transfer_alert_and_a_new_alert_after_it_cleared(
    db, sessionmaker, superuser_engine, redis, runtime, healthy
) -> None:
    await staff(db)

    async def event(status: str) -> None:
        async with superuser_engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO monnify_events (dedupe_key, event_type, payload, status, amount_paid_kobo,"
                    " attempts, created_at, updated_at)"
                    " VALUES (:k, 'SUCCESSFUL_TRANSACTION', '{}'::jsonb, :s, 500000, 0, now(), now())"
                    " ON CONFLICT (dedupe_key) DO UPDATE SET status = EXCLUDED.status"
                ),
                {"k": "SUCCESSFUL_TRANSACTION:REF1", "s": status},
            )

    await event("unmatched")
    assert [c.key for c in (await run(sessionmaker, redis, runtime)).raised] == ["unmatched_transfers"]
    assert (await run(sessionmaker, redis, runtime)).raised == []
    [alert] = await rows(sessionmaker, "unmatched_transfers")
    assert "₦5,000.00" in alert.message
    await event("credited")
    assert [c.key for c in (await run(sessionmaker, redis, runtime)).cleared] == ["unmatched_transfers"]
    await event("unmatched")  # it happens again: a new alert (and a new e-mail)
    assert [c.key for c in (await run(sessionmaker, redis, runtime)).raised] == ["unmatched_transfers"]
    first, again = await rows(sessionmaker, "unmatched_transfers")
    assert first.cleared_at is not None and again.cleared_at is None
    assert len(await mails(sessionmaker, "alert:")) == 2


async def test_stale_heartbeat_and_unclean_reconcile(db, sessionmaker, redis, runtime, healthy) -> None:
    now = datetime.datetime.now(datetime.UTC)
    await beat(redis, now=now - datetime.timedelta(minutes=4))
    await save_result(redis, {"ok": False, "drift": 2, "accounts": 9})
    raised = {c.key for c in (await run(sessionmaker, redis, runtime)).raised}
    assert raised == {"worker_heartbeat", "reconcile"}
    assert (await run(sessionmaker, redis, runtime)).raised == []
    [hb] = await rows(sessionmaker, "worker_heartbeat")
    assert "4 min ago" in hb.message
    await beat(redis)
    await save_result(redis, {"ok": True, "drift": 0})
    cleared = {c.key for c in (await run(sessionmaker, redis, runtime)).cleared}
    assert cleared == {"worker_heartbeat", "reconcile"}
    # No heartbeat at all (never ran, or Redis lost it) is an alert too.
    await redis.delete("vtu:worker:heartbeat")
    assert [c.key for c in (await run(sessionmaker, redis, runtime)).raised] == ["worker_heartbeat"]


async def test_low_provider_float_from_the_balance_api(
    db, sessionmaker, redis, runtime, healthy, sim
) -> None:
    from app.vtu.balances import CACHE_KEY

    sim.balance_naira = "150.00"  # below the default ALERT_FLOAT_KOBO (N20,000)
    outcome = await run(sessionmaker, redis, runtime)
    assert [c.key for c in outcome.raised] == ["float_low:vtpass"]
    [alert] = await rows(sessionmaker, "float_low:vtpass")
    assert "₦150.00" in alert.message and "₦20,000.00" in alert.message
    # Cached for a minute: a topped-up float is seen once the cache expires (here: dropped).
    sim.balance_naira = "90000.00"
    assert (await run(sessionmaker, redis, runtime)).cleared == []
    await redis.delete(CACHE_KEY.format(slug="vtpass"))
    assert [c.key for c in (await run(sessionmaker, redis, runtime)).cleared] == ["float_low:vtpass"]


async def test_an_unanswered_balance_call_neither_raises_nor_clears(
    db, sessionmaker, redis, runtime, healthy, sim
) -> None:
    from app.vtu.balances import CACHE_KEY

    sim.balance_naira = "150.00"
    assert [c.key for c in (await run(sessionmaker, redis, runtime)).raised] == ["float_low:vtpass"]
    await redis.delete(CACHE_KEY.format(slug="vtpass"))
    original, sim.api_key = sim.api_key, "wrong"  # VTpass refuses us (087): balance unavailable
    try:
        outcome = await run(sessionmaker, redis, runtime)
    finally:
        sim.api_key = original
    assert outcome.cleared == [] and outcome.raised == []
    [alert] = await rows(sessionmaker, "float_low:vtpass")
    assert alert.cleared_at is None


async def test_low_success_rate_over_the_last_15_minutes(
    db, sessionmaker, redis, runtime, healthy, vt: Harness
) -> None:
    buyer = await new_buyer(sessionmaker, fund=5_000_000)
    for _ in range(19):
        p = await vt.service.buy(buyer, PurchaseRequest(service_id="mtn", phone=FAILING, amount_kobo=5_000))
        assert p.status == FAILED
    assert (await run(sessionmaker, redis, runtime)).raised == []  # 19: too few to judge
    await vt.service.buy(buyer, PurchaseRequest(service_id="mtn", phone=FAILING, amount_kobo=5_000))
    assert [c.key for c in (await run(sessionmaker, redis, runtime)).raised] == ["success_rate:mtn"]
    [alert] = await rows(sessionmaker, "success_rate:mtn")
    assert "only 0% of 20 purchases" in alert.message
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=16)
    assert "success_rate:mtn" in [c.key for c in (await run(sessionmaker, redis, runtime, now=later)).cleared]
    await assert_reconciled(sessionmaker)


async def test_a_plan_priced_below_cost_after_a_sync(
    db, sessionmaker, superuser_engine, redis, runtime, healthy
):
    plan_id = uuid.uuid4()
    async with superuser_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO plans (id, provider_slug, service_id, variation_code, name, provider_price_kobo,"
                " created_at, updated_at) VALUES (:id, 'vtpass', 'mtn-data', 'mtn-1gb', 'MTN 1GB', 100000,"
                " now(), now())"
            ),
            {"id": plan_id},
        )
        # A fixed customer price set when the plan cost less; the sync has since raised its cost.
        await conn.execute(
            text(
                "INSERT INTO price_rules (id, tier, service_id, variation_code, fixed_price_kobo, created_at,"
                " updated_at) VALUES (:id, 'customer', 'mtn-data', 'mtn-1gb', 60000, now(), now())"
            ),
            {"id": uuid.uuid4()},
        )
    outcome = await run(sessionmaker, redis, runtime)
    # (The reseller tier too: with no VTU_PROVIDER_COMMISSION_BPS, the default reseller discount is a loss.)
    assert "below_cost:mtn-data:customer" in {c.key for c in outcome.raised}
    [alert] = await rows(sessionmaker, "below_cost:mtn-data:customer")
    assert "MTN 1GB" in alert.message
    assert (await run(sessionmaker, redis, runtime)).raised == []
    async with superuser_engine.begin() as conn:
        await conn.execute(text("UPDATE plans SET active = false WHERE id = :id"), {"id": plan_id})
    cleared = {c.key for c in (await run(sessionmaker, redis, runtime)).cleared}
    assert "below_cost:mtn-data:customer" in cleared


async def test_two_checkers_at_once_raise_one_alert_and_one_mail(
    db, sessionmaker, superuser_engine, redis, runtime, healthy
) -> None:
    await staff(db)
    async with superuser_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO monnify_events (dedupe_key, event_type, payload, status, amount_paid_kobo,"
                " attempts, created_at, updated_at)"
                " VALUES ('SUCCESSFUL_TRANSACTION:R2', 'SUCCESSFUL_TRANSACTION', '{}'::jsonb, 'unmatched',"
                " 100000, 0, now(), now())"
            )
        )
    c = ctx(sessionmaker, redis, runtime)
    results = await asyncio.gather(*(check_alerts(c) for _ in range(4)))
    assert sum(len(r["raised"]) for r in results) == 1
    assert len(await rows(sessionmaker, "unmatched_transfers")) == 1
    assert len(await mails(sessionmaker, "alert:")) == 1
