"""Bulk orders through the real purchase engine and the VTpass simulator over HTTP (app/vtu/bulk.py,
bulk_runner.py): a 500-line list checked line by line, run to completion with one purchase and one debit
per line, re-uploads that buy nothing, the balance running out part-way, the same-number gap, other users."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from app.vtu.bulk import BulkError, BulkInvalid, BulkNotFound, BulkService, line_key, run_key
from app.vtu.bulk_runner import INSUFFICIENT, BulkRunner, sweep
from app.vtu.plans import sync_plans
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    Harness,
    assert_reconciled,
    money,
    new_buyer,
)
from workers.settings import saq_config

sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt


def phone(n: int) -> str:
    return f"0803{n:07d}"


@pytest_asyncio.fixture(loop_scope="session")
async def bulk(vt: Harness, sessionmaker, sim) -> AsyncIterator[tuple[BulkService, BulkRunner]]:
    sim.configure(outcome="delivered")  # every ordinary number is delivered (the sandbox fails most)
    service = BulkService(sessionmaker, vt.service, queue=None)
    runner = BulkRunner(sessionmaker, service, lines_per_second=0, lease_seconds=5, same_number_gap=2)
    yield service, runner


async def scalar(sessionmaker: Any, sql: str, **params: Any) -> Any:
    async with sessionmaker() as session:
        return (await session.execute(text(sql), params)).scalar_one()


async def purchases_by_key(sessionmaker: Any, user_id: uuid.UUID) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT idempotency_key, count(*) FROM purchases WHERE user_id = :u GROUP BY idempotency_key"
            ),
            {"u": user_id},
        )
        return {k: int(n) for k, n in rows.all()}


async def debits(sessionmaker: Any, user_id: uuid.UUID) -> int:
    """Ledger transactions that debited purchases of this user (one `purchase:<id>` each)."""
    return int(
        await scalar(
            sessionmaker,
            "SELECT count(*) FROM ledger_transactions t JOIN purchases p ON t.idempotency_key ="
            " 'purchase:' || p.id::text WHERE p.user_id = :u",
            u=user_id,
        )
    )


async def test_a_500_line_paste_reports_every_bad_line_and_writes_nothing(bulk, sessionmaker) -> None:
    service, _ = bulk
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    lines = [f"{phone(i)},100" for i in range(1, 501)]
    lines[2] = "0803123,100"  # too short
    lines[9] = f"{phone(10)},50.5"  # kobo
    lines[19] = f"{phone(20)},10"  # below the airtime minimum (N50)
    lines[49] = "08001234567,100"  # no network has this prefix
    lines[99] = f"{phone(100)},100,vodafone"  # unknown network
    lines[199] = f"{phone(200)}"  # no amount
    lines[499] = f"{phone(500)},100,glo"  # fine: a ported number with its network given
    with pytest.raises(BulkInvalid) as caught:
        await service.prepare_upload(buyer, "airtime", "phone,amount\n" + "\n".join(lines))
    by_line = {e.line_no: e for e in caught.value.errors}
    # Line numbers are the text's own (the header is line 1).
    assert sorted(by_line) == [4, 11, 21, 51, 101, 201]
    assert by_line[4].field == "phone"
    assert "whole naira" in by_line[11].message
    assert "between" in by_line[21].message
    assert by_line[51].field == "service_id" and "third column" in by_line[51].message
    assert "Unknown network" in by_line[101].message
    assert "phone,amount" in by_line[201].message
    assert "6 lines need fixing" in caught.value.message
    assert await scalar(sessionmaker, "SELECT count(*) FROM bulk_orders") == 0
    # 501 recipients: refused as a whole.
    with pytest.raises(BulkInvalid, match="At most 500"):
        await service.prepare_upload(buyer, "airtime", "\n".join(f"{phone(i)},100" for i in range(501)))
    assert await scalar(sessionmaker, "SELECT count(*) FROM bulk_orders") == 0


async def test_500_lines_buy_once_each_and_a_reupload_buys_nothing(bulk, sessionmaker, sim) -> None:
    service, runner = bulk
    start = 500 * 10_000 + 123_400
    buyer = await new_buyer(sessionmaker, fund=start)
    content = "\n".join(f"{phone(i)},100" for i in range(1, 501))
    prepared = await service.prepare_upload(buyer, "airtime", content)
    assert not prepared.existing and prepared.bulk.status == "draft"
    assert (prepared.bulk.line_count, prepared.bulk.total_kobo) == (500, 500 * 10_000)
    assert await purchases_by_key(sessionmaker, buyer.id) == {}  # a draft buys nothing
    bulk_id = prepared.bulk.id
    confirmed = await service.confirm(buyer.id, bulk_id)
    assert confirmed.status == "running"
    assert (await service.confirm(buyer.id, bulk_id)).status == "running"  # a double tap: one order
    assert (await runner.run(bulk_id)).startswith("done")
    done = await service.get(buyer.id, bulk_id)
    assert done.status == "done" and done.finished_at is not None
    assert done.counts == {"successful": 500}
    assert all(li.reference and li.charged_kobo == 10_000 for li in done.lines)
    keys = await purchases_by_key(sessionmaker, buyer.id)
    assert keys == {line_key(bulk_id, n): 1 for n in range(1, 501)}
    assert await debits(sessionmaker, buyer.id) == 500
    assert len(sim.pay_requests()) == 500
    assert (await money(sessionmaker, buyer.id)).wallet == start - 500 * 10_000
    # The same list again (re-pasted, or the same file uploaded): the same order, nothing bought.
    again = await service.prepare_upload(buyer, "airtime", content + "\n\n")
    assert again.existing and again.bulk.id == bulk_id and again.bulk.status == "done"
    assert (await runner.run(bulk_id)) == "not_taken"
    assert await debits(sessionmaker, buyer.id) == 500
    assert len(sim.pay_requests()) == 500
    assert await scalar(sessionmaker, "SELECT count(*) FROM bulk_orders") == 1
    await assert_reconciled(sessionmaker)


async def test_balance_running_out_fails_the_remaining_lines_without_a_debit(bulk, sessionmaker) -> None:
    service, runner = bulk
    buyer = await new_buyer(sessionmaker, fund=25_000)  # N250: two lines of N100
    content = "\n".join(f"{phone(i)},100" for i in range(1, 6))
    prepared = await service.prepare_upload(buyer, "airtime", content)
    await service.confirm(buyer.id, prepared.bulk.id)
    await runner.run(prepared.bulk.id)
    done = await service.get(buyer.id, prepared.bulk.id)
    assert done.status == "done"
    assert [li.status for li in done.lines] == ["successful"] * 2 + ["failed"] * 3
    assert all(li.error == INSUFFICIENT and li.purchase_id is None for li in done.lines[2:])
    assert await debits(sessionmaker, buyer.id) == 2
    assert (await money(sessionmaker, buyer.id)).wallet == 5_000
    await assert_reconciled(sessionmaker)


async def test_the_same_number_waits_out_the_provider_window(bulk, sessionmaker) -> None:
    service, runner = bulk  # the runner's gap is 2 s here (30 s in production: VTpass 019)
    buyer = await new_buyer(sessionmaker, fund=100_000)
    content = f"{phone(1)},100\n{phone(1)},100\n{phone(2)},100"
    prepared = await service.prepare_upload(buyer, "airtime", content)
    await service.confirm(buyer.id, prepared.bulk.id)
    await runner.run(prepared.bulk.id)
    async with sessionmaker() as session:
        sent = dict(
            (
                await session.execute(
                    text("SELECT line_no, sent_at FROM bulk_order_lines WHERE bulk_id = :b"),
                    {"b": prepared.bulk.id},
                )
            ).all()
        )
    assert sent[1] < sent[3] < sent[2]  # line 3 went ahead while line 2 waited
    assert (sent[2] - sent[1]).total_seconds() >= 2
    assert (await service.get(buyer.id, prepared.bulk.id)).counts == {"successful": 3}
    await assert_reconciled(sessionmaker)


async def test_another_users_order_is_not_found(bulk, sessionmaker) -> None:
    service, runner = bulk
    owner = await new_buyer(sessionmaker, fund=100_000)
    other = await new_buyer(sessionmaker, fund=100_000)
    prepared = await service.prepare_upload(owner, "airtime", f"{phone(1)},100")
    for call in (service.get, service.confirm, service.cancel):
        with pytest.raises(BulkNotFound):
            await call(other.id, prepared.bulk.id)
    assert (await service.get(owner.id, prepared.bulk.id)).status == "draft"
    # Cancelled: the runner buys nothing, and the same list can be uploaded again as a new order.
    assert (await service.cancel(owner.id, prepared.bulk.id)).status == "cancelled"
    assert await runner.run(prepared.bulk.id) == "not_taken"
    fresh = await service.prepare_upload(owner, "airtime", f"{phone(1)},100")
    assert not fresh.existing and fresh.bulk.id != prepared.bulk.id
    assert await debits(sessionmaker, owner.id) == 0


async def test_a_data_list_is_priced_by_plan_and_bought(bulk, vt: Harness, sessionmaker) -> None:
    service, runner = bulk
    async with sessionmaker() as session:
        await sync_plans(session, vt.registry.for_service("mtn-data"), "mtn-data")
    buyer = await new_buyer(sessionmaker, fund=100_000)
    with pytest.raises(BulkInvalid) as caught:
        await service.prepare_upload(buyer, "data", f"{phone(1)},mtn-1gb-1day\n{phone(2)},no-such-plan")
    assert [(e.line_no, e.field) for e in caught.value.errors] == [(2, "variation_code")]
    content = f"{phone(1)},mtn-1gb-1day\n{phone(2)},mtn-110mb-1day\n08051234567,glo-not-mtn,mtn"
    with pytest.raises(BulkInvalid) as caught:
        await service.prepare_upload(buyer, "data", content)
    assert [e.line_no for e in caught.value.errors] == [3]  # a Glo number sold as MTN: not an MTN plan
    prepared = await service.prepare_upload(buyer, "data", content.rsplit("\n", 1)[0])
    assert prepared.bulk.total_kobo == 35_000 + 10_000
    assert [li.service_id for li in prepared.bulk.lines] == ["mtn-data", "mtn-data"]
    await service.confirm(buyer.id, prepared.bulk.id)
    await runner.run(prepared.bulk.id)
    assert (await service.get(buyer.id, prepared.bulk.id)).counts == {"successful": 2}
    assert (await money(sessionmaker, buyer.id)).wallet == 100_000 - 45_000
    await assert_reconciled(sessionmaker)


async def test_cancelling_a_running_order_skips_the_rest(bulk, sessionmaker) -> None:
    service, _ = bulk
    runner = BulkRunner(sessionmaker, service, lines_per_second=10, lease_seconds=5)
    buyer = await new_buyer(sessionmaker, fund=1_000_000)
    prepared = await service.prepare_upload(
        buyer, "airtime", "\n".join(f"{phone(i)},100" for i in range(1, 41))
    )
    await service.confirm(buyer.id, prepared.bulk.id)
    task = asyncio.ensure_future(runner.run(prepared.bulk.id))
    while (await service.get(buyer.id, prepared.bulk.id)).counts.get("successful", 0) < 3:
        await asyncio.sleep(0.05)
    cancelled = await service.cancel(buyer.id, prepared.bulk.id)
    assert cancelled.status == "cancelled"
    assert await asyncio.wait_for(task, 10) in ("stopped", "lease_lost")
    final = await service.get(buyer.id, prepared.bulk.id)
    bought = [li for li in final.lines if li.purchase_id is not None]
    assert final.counts.get("skipped", 0) == 40 - len(bought) > 0
    assert set(final.counts) <= {"successful", "skipped"}
    assert await debits(sessionmaker, buyer.id) == len(bought)
    assert (await money(sessionmaker, buyer.id)).wallet == 1_000_000 - 10_000 * len(bought)
    with pytest.raises(BulkError):  # nothing to confirm any more
        await service.confirm(buyer.id, prepared.bulk.id)
    await assert_reconciled(sessionmaker)


async def test_a_run_hands_on_after_its_budget_and_the_sweep_never_doubles_it(
    vt: Harness, sessionmaker, settings, sim
) -> None:
    sim.configure(outcome="delivered")
    queue = saq_config(settings).get_queues().get("vtu")
    await queue.connect()
    try:
        service = BulkService(sessionmaker, vt.service, queue)
        runner = BulkRunner(sessionmaker, service, lines_per_second=20, lease_seconds=5, budget_seconds=0.2)
        buyer = await new_buyer(sessionmaker, fund=1_000_000)
        content = "\n".join(f"{phone(i)},100" for i in range(1, 13))
        prepared = await service.prepare_upload(buyer, "airtime", content)
        bulk_id = prepared.bulk.id
        await service.confirm(buyer.id, bulk_id)
        assert await queue.job(run_key(bulk_id, 0)) is not None  # the confirmation enqueued run 0
        runs = 0
        while True:
            outcome = await runner.run(bulk_id)
            runs += 1
            if outcome.startswith("done"):
                break
            assert outcome.startswith("continued"), outcome
            assert await queue.job(run_key(bulk_id, runs)) is not None  # the next run is queued ...
            assert await sweep(sessionmaker, service) == 0  # ... so the sweep adds none
            assert runs < 20
        assert runs > 1
        assert (await service.get(buyer.id, bulk_id)).counts == {"successful": 12}
        assert await debits(sessionmaker, buyer.id) == 12
        # A running order nobody holds (its runner died before taking it): the sweep starts it.
        other = await service.prepare_upload(buyer, "airtime", f"{phone(99)},100")
        async with sessionmaker() as session, session.begin():
            await session.execute(
                text("UPDATE bulk_orders SET status = 'running', runs = 7 WHERE id = :b"),
                {"b": other.bulk.id},
            )
        assert await sweep(sessionmaker, service) == 1
        assert await queue.job(run_key(other.bulk.id, 7)) is not None
        assert await sweep(sessionmaker, service) == 0  # already queued
        # The provider answers slower than the run's budget: the run that bought the order's last line
        # still finishes it rather than handing an empty run on.
        sim.configure(outcome="delivered", latency=0.3)
        assert await runner.run(other.bulk.id) == "done after 1 lines"
        assert await queue.job(run_key(other.bulk.id, 8)) is None
        await assert_reconciled(sessionmaker)
    finally:
        await queue.disconnect()


async def test_a_line_left_sent_by_a_dead_runner_reads_skipped_once_cancelled(bulk, sessionmaker) -> None:
    service, runner = bulk
    buyer = await new_buyer(sessionmaker, fund=100_000)
    prepared = await service.prepare_upload(buyer, "airtime", f"{phone(1)},100\n{phone(2)},100")
    await service.confirm(buyer.id, prepared.bulk.id)
    async with sessionmaker() as session, session.begin():  # a runner marked line 1, then died before buying
        await session.execute(
            text(
                "UPDATE bulk_order_lines SET status = 'sent', sent_at = now()"
                " WHERE bulk_id = :b AND line_no = 1"
            ),
            {"b": prepared.bulk.id},
        )
    assert [li.status for li in (await service.get(buyer.id, prepared.bulk.id)).lines] == ["sent", "queued"]
    cancelled = await service.cancel(buyer.id, prepared.bulk.id)
    assert [li.status for li in cancelled.lines] == ["skipped", "skipped"]
    assert await runner.run(prepared.bulk.id) == "not_taken"
    assert await debits(sessionmaker, buyer.id) == 0
