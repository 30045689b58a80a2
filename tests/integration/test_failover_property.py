"""Randomised failover property (docs/architecture.md, "Provider failover"): a few hundred purchases, both
provider simulators flaky (nothing-placed refusals, timeouts and 5xx pages that did or did not place the
order, pending-then-delivered, failed after placing), bought concurrently, then driven to completion by
racing sweeps, worker requeries and staff "check now". Then, counting orders at the simulators themselves:
every purchase is final, a successful one was delivered exactly once across both providers and a failed one
never, ClubKonnect saw no duplicate RequestID and VTpass no second /pay for one request id, each purchase
has one debit and at most one refund (exactly the ledger keys its status needs), and reconcile is clean.

FAILOVER_PURCHASES (default 300) and FAILOVER_SEED change the run; the figures are printed."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy import text

from app.vtu.models import FAILED, PENDING, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from tests.integration.failover_fixtures import Servers, both_servers, two_provider_harness
from tests.integration.purchase_fixtures import Harness, assert_reconciled, new_buyer

__all__ = ["both_servers"]

PURCHASES = int(os.environ.get("FAILOVER_PURCHASES", "300"))
SEED = int(os.environ.get("FAILOVER_SEED", str(int(time.time()))))
AMOUNT = 10_000
BUYERS = 25
ORDER = {"mtn": ("vtpass", "clubkonnect"), "glo": ("clubkonnect", "vtpass")}

VT_MIX: list[tuple[int, dict[str, Any]]] = [
    (30, {"outcome": "delivered"}),
    (12, {"outcome": "delivered", "pending_answers": 1}),
    (6, {"outcome": "delivered", "pending_answers": 2, "pending_code": "099"}),
    (5, {"pay_code": "016"}),
    (8, {"pay_code": "018"}),
    (4, {"pay_code": "091"}),
    (6, {"hang": 2.0, "process": True, "outcome": "delivered"}),
    (7, {"hang": 2.0, "process": False, "outcome": "delivered"}),
    (4, {"http_status": 503, "process": True, "outcome": "delivered"}),
    (6, {"http_status": 503, "process": False}),
    (4, {"malformed": True, "process": True, "outcome": "delivered"}),
    (4, {"outcome": "failed"}),  # placed, then failed (016 on its answer): never delivered
    (3, {"pay_code": "019"}),  # likely duplicate, for ever: held and sent again until attempts run out
]
CK_MIX: list[tuple[int, dict[str, Any]]] = [
    (35, {}),  # 100 ORDER_RECEIVED, then 200 on the query
    (10, {"pending_answers": 0}),
    (8, {"pending_answers": 3, "pending_code": "300"}),
    (8, {"order_code": "417"}),
    (6, {"order_code": "409"}),
    (6, {"hang": 2.0, "process": True}),
    (7, {"hang": 2.0, "process": False}),
    (5, {"http_status": 500, "process": True}),
    (6, {"http_status": 500, "process": False}),
    (5, {"outcome": "cancelled", "pending_answers": 0}),  # 506 after placing: failed, refunded by them
]

AGE_PENDING = text(
    "UPDATE purchases SET paid_at = paid_at - make_interval(secs => 40),"
    " next_requery_at = next_requery_at - make_interval(secs => 40),"
    " exchanges = (SELECT coalesce(jsonb_agg(CASE WHEN e->>'kind' = 'pay'"
    " THEN e || jsonb_build_object('at', (e->>'at')::timestamptz - make_interval(secs => 40))"
    " || CASE WHEN e->>'finished_at' IS NULL THEN '{}'::jsonb ELSE jsonb_build_object("
    "'finished_at', (e->>'finished_at')::timestamptz - make_interval(secs => 40)) END"
    " ELSE e END ORDER BY n), '[]')"
    " FROM jsonb_array_elements(exchanges) WITH ORDINALITY AS x(e, n))"
    " WHERE status = 'pending' AND send_at IS NULL"
)


def pick(rng: random.Random, mix: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    return rng.choices([m for _, m in mix], weights=[w for w, _ in mix])[0]


@pytest_asyncio.fixture(loop_scope="session")
async def shop(db: Any, sessionmaker: Any, settings: Any, both_servers: Servers) -> AsyncIterator[Harness]:
    vt, _, ck, _ = both_servers
    vt.reset()
    ck.reset()
    harness = two_provider_harness(
        sessionmaker, settings, both_servers, order=ORDER, schedule=(1,) * 40, duplicate_hold_seconds=1
    )
    try:
        yield harness
    finally:
        await harness.aclose()


async def test_no_purchase_is_fulfilled_twice_or_lost(shop, sessionmaker, both_servers) -> None:
    vt, _, ck, _ = both_servers
    rng = random.Random(SEED)
    started = time.monotonic()
    buyers = [await new_buyer(sessionmaker, fund=AMOUNT * PURCHASES) for _ in range(BUYERS)]
    phones = [f"0803{i:07d}" for i in range(PURCHASES)]
    for phone in phones:
        vt.configure(phone, **pick(rng, VT_MIX))
        ck.configure(phone, **pick(rng, CK_MIX))
    services = [rng.choice(("mtn", "glo")) for _ in phones]

    gate = asyncio.Semaphore(12)

    async def buy(i: int) -> Any:
        async with gate:
            request = PurchaseRequest(service_id=services[i], phone=phones[i], amount_kobo=AMOUNT)
            return await shop.service.buy(buyers[i % BUYERS], request, channel="api", idempotency_key=f"k{i}")

    bought = await asyncio.gather(*(buy(i) for i in range(PURCHASES)))
    ids = [p.id for p in bought]
    assert len(set(ids)) == PURCHASES

    async def check(purchase_id: Any, source: str) -> None:
        async with gate:
            current = await shop.service.get(purchase_id)
            attempt = current.attempts + 1 if source == "worker" else None
            await shop.service.requery(purchase_id, source=source, attempt=attempt)

    rounds = 0
    while rounds < 25:
        async with sessionmaker() as session:
            pending = [
                row[0]
                for row in await session.execute(
                    text("SELECT id FROM purchases WHERE status = 'pending' AND id = ANY(:ids)"), {"ids": ids}
                )
            ]
        if not pending:
            break
        rounds += 1
        if rounds > 1:
            await asyncio.sleep(1.1)  # held attempts (019) fall due
        async with sessionmaker() as session, session.begin():
            await session.execute(AGE_PENDING)  # past every /pay window and the 015 grace
        sample = rng.sample(pending, k=min(len(pending), 40))
        await asyncio.gather(
            shop.service.sweep(inline=True, grace_seconds=0),
            shop.service.sweep(inline=True, grace_seconds=0),
            *(check(pid, "worker") for pid in sample[:20]),
            *(check(pid, "staff") for pid in sample[20:]),
        )

    # -- every purchase final; the simulators' own books ----------------------------------------------
    final = {pid: await shop.service.get(pid) for pid in ids}
    statuses = collections.Counter(p.status for p in final.values())
    lost = statuses[PENDING]
    delivered_twice, refunded_but_delivered, successful_undelivered = [], [], []
    for i, pid in enumerate(ids):
        orders = len(vt.delivered_to(phones[i])) + len(ck.delivered_to(phones[i]))
        status = final[pid].status
        if orders > 1:
            delivered_twice.append(pid)
        if status == FAILED and orders:
            refunded_but_delivered.append(pid)
        if status == SUCCESSFUL and orders != 1:
            successful_undelivered.append(pid)
    pays = collections.Counter(str(r.body.get("request_id")) for r in vt.pay_requests())
    vt_repeats = sum(1 for n in pays.values() if n > 1)

    # -- the ledger: exactly the keys each status needs -----------------------------------------------
    async with sessionmaker() as session:
        keys = collections.defaultdict(list)
        for ref, key in await session.execute(
            text(
                "SELECT reference_id, idempotency_key FROM ledger_transactions"
                " WHERE reference_type = 'purchase' ORDER BY id"
            )
        ):
            keys[ref].append(key.split(":")[0])
        failovers = (
            await session.execute(
                text("SELECT count(*) FROM purchases WHERE attempt_no > 1 AND id = ANY(:ids)"), {"ids": ids}
            )
        ).scalar_one()
        attempts = (
            await session.execute(
                text("SELECT count(*) FROM purchase_attempts WHERE purchase_id = ANY(:ids)"), {"ids": ids}
            )
        ).scalar_one()
        held = (
            await session.execute(
                text(
                    "SELECT count(*) FROM purchase_attempts"
                    " WHERE outcome = 'held' AND purchase_id = ANY(:ids)"
                ),
                {"ids": ids},
            )
        ).scalar_one()
        flagged = (
            await session.execute(
                text("SELECT count(*) FROM purchases WHERE needs_attention AND id = ANY(:ids)"), {"ids": ids}
            )
        ).scalar_one()
    wrong_postings = [
        pid
        for pid, p in final.items()
        if keys[str(pid)] != (["purchase", "delivery"] if p.status == SUCCESSFUL else ["purchase", "refund"])
    ]
    print(
        f"\nfailover property (seed {SEED}): purchases {PURCHASES}, failovers {failovers} "
        f"({attempts} attempt rows, {held} held after 019), delivered {statuses[SUCCESSFUL]}, "
        f"failed {statuses[FAILED]}, "
        f"duplicates {len(delivered_twice) + ck.duplicates + vt_repeats}, lost {lost}, "
        f"flagged {flagged}, rounds {rounds}, {time.monotonic() - started:.1f} s"
    )
    assert lost == 0, f"seed {SEED}: {lost} purchases still pending"
    assert delivered_twice == [] and ck.duplicates == 0 and vt_repeats == 0, f"seed {SEED}"
    assert refunded_but_delivered == [] and successful_undelivered == [], f"seed {SEED}"
    assert wrong_postings == [], f"seed {SEED}: {wrong_postings[:5]}"
    assert statuses[SUCCESSFUL] + statuses[FAILED] == PURCHASES
    assert failovers > 0 and statuses[FAILED] > 0  # the mix really exercised both paths
    await assert_reconciled(sessionmaker)
