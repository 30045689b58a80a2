"""Every provider outcome class, end to end: PurchaseService -> real VTpass adapter -> HTTP -> simulator,
on real PostgreSQL, with the ledger effect asserted and reconcile clean after each scenario."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import select, text

from app.ledger.models import LedgerTransaction
from app.vtu.errors import ServiceUnavailable
from app.vtu.models import FAILED, PENDING, REVERSED, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import StubProvider
from app.vtu.transitions import UNRESOLVED
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    SHORT_SCHEDULE,
    Harness,
    age_pay_attempt,
    assert_reconciled,
    count_purchases,
    load,
    make_service,
    money,
    new_buyer,
    postings_for,
)

# pytest fixtures shared by the purchase-engine tests
sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt


START = 1_000_000  # N10,000


def airtime(phone: str, amount: int = 50_000) -> PurchaseRequest:
    return PurchaseRequest(service_id="mtn", phone=phone, amount_kobo=amount)


async def refund_of(sessionmaker: Any, purchase_id: Any) -> tuple[str, str, str | None, str | None, str]:
    """The refund's (kind, memo, reference type, reference id, created_by)."""
    async with sessionmaker() as session:
        tx = (
            await session.execute(
                select(LedgerTransaction).where(LedgerTransaction.idempotency_key == f"refund:{purchase_id}")
            )
        ).scalar_one()
        return tx.kind, tx.memo, tx.reference_type, tx.reference_id, tx.created_by


async def test_delivered_moves_money_to_float_and_revenue(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("08011111111"))
    assert purchase.status == SUCCESSFUL and purchase.completed_at is not None
    assert purchase.amount_kobo == 50_000 and purchase.face_amount_kobo == 50_000
    assert purchase.provider_code == "000" and purchase.provider_reference
    assert len(sim.pay_requests(purchase.request_id)) == 1
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_, m.revenue) == (START - 50_000, 0, 50_000, 0)
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"delivery:{purchase.id}",
    ]
    [pay] = purchase.exchanges
    assert pay["kind"] == "pay" and pay["outcome"] == "delivered" and pay["response"]["http_status"] == 200
    assert vt.scheduler.calls == []  # nothing left to verify
    await assert_reconciled(sessionmaker)


async def test_reseller_margin_is_price_minus_cost(vt: Harness, sessionmaker) -> None:
    buyer = await new_buyer(sessionmaker, fund=START, tier="reseller")
    purchase = await vt.service.buy(buyer, airtime("08011111111", 100_000))
    assert purchase.status == SUCCESSFUL
    assert (purchase.amount_kobo, purchase.face_amount_kobo, purchase.cost_kobo) == (98_000, 100_000, 100_000)
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_, m.revenue) == (START - 98_000, 0, 100_000, -2_000)
    await assert_reconciled(sessionmaker)


async def test_definite_failure_refunds_exactly_once(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("08031234567"))  # sandbox: any other number fails (016)
    assert purchase.status == FAILED and purchase.provider_code == "016"
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_) == (START, 0, 0)
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"refund:{purchase.id}",
    ]
    assert await refund_of(sessionmaker, purchase.id) == (
        "purchase_refund", f"Refund: {purchase.provider_message}", "purchase", str(purchase.id), "system",
    )  # fmt: skip
    # A late callback / staff requery of a failed purchase moves nothing.
    await vt.service.requery(purchase.id, source="staff")
    assert (await money(sessionmaker, buyer.id)).wallet == START
    assert len(await postings_for(sessionmaker, purchase.id)) == 2
    await assert_reconciled(sessionmaker)


async def test_staff_failing_a_purchase_refunds_with_their_note_as_memo(vt: Harness, sessionmaker) -> None:
    """purchase_fail posts the refund with memo 'Refund: <message>', cut at the ledger's 255 characters."""
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("500000000000"))  # malformed answer: pending
    note = "not delivered, confirmed on the provider's dashboard " * 8
    applied = await vt.service.resolve_manually(purchase.id, delivered=False, staff="staff:ada", note=note)
    assert applied is not None and applied.changed and applied.purchase.status == FAILED
    memo = f"Refund: Resolved by staff (staff:ada): {note}"[:255]
    assert len(memo) == 255
    assert await refund_of(sessionmaker, purchase.id) == (
        "purchase_refund", memo, "purchase", str(purchase.id), "system",
    )  # fmt: skip
    assert (await money(sessionmaker, buyer.id)).wallet == START
    await assert_reconciled(sessionmaker)


@pytest.mark.parametrize(
    ("needs", "reason", "alert", "expected"),
    [
        (False, None, None, False),
        (True, f"{UNRESOLVED} still unknown after 3 requeries", None, False),  # a definite answer settles it
        (True, "Provider now reports DELIVERED ...", None, True),  # any other reason stays for staff
        (True, None, None, True),
        (False, None, "VTpass float low", True),  # a staff alert on this answer raises the flag
        (True, f"{UNRESOLVED} ...", "VTpass float low", True),
    ],
)
async def test_the_attention_rule_of_a_final_answer_is_one_sql_function(
    sessionmaker, needs, reason, alert, expected
) -> None:
    """purchase_deliver, purchase_fail and purchase_reverse all call it; Python keeps no copy."""
    async with sessionmaker() as session:
        found = await session.scalar(
            text("SELECT purchase_attention_when_final(:needs, :reason, :alert)"),
            {"needs": needs, "reason": reason, "alert": alert},
        )
    assert found is expected


async def test_operational_failure_refunds_and_alerts_staff(vt: Harness, sessionmaker, sim) -> None:
    sim.configure(pay_code="018")  # VTpass: our float there is too low
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("08011111111"))
    assert purchase.status == FAILED and purchase.needs_attention
    assert "float" in (purchase.attention_reason or "").lower()
    assert (await money(sessionmaker, buyer.id)).wallet == START
    await assert_reconciled(sessionmaker)


async def test_pending_then_requery_delivers(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("201000000000"))
    assert purchase.status == PENDING
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight) == (START - 50_000, 50_000)  # held in flight, not refunded
    [(pid, attempt, _)] = vt.scheduler.calls
    assert (pid, attempt) == (purchase.id, 1)
    done = await vt.service.requery(purchase.id, source="worker", attempt=1)
    assert done is not None and done.status == SUCCESSFUL and done.attempts == 0
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_) == (START - 50_000, 0, 50_000)
    assert [e["kind"] for e in done.exchanges] == ["pay", "requery"]
    assert len(sim.pay_requests(purchase.request_id)) == 1  # never /pay twice
    await assert_reconciled(sessionmaker)


async def test_pending_then_requery_fails_and_refunds(vt: Harness, sessionmaker, sim) -> None:
    sim.configure("08099999999", pending_answers=1, outcome="failed", pending_code="099")
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("08099999999"))
    assert purchase.status == PENDING and purchase.provider_code == "099"
    done = await vt.service.requery(purchase.id, source="worker", attempt=1)
    assert done is not None and done.status == FAILED
    assert (await money(sessionmaker, buyer.id)).wallet == START
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"refund:{purchase.id}",
    ]
    await assert_reconciled(sessionmaker)


async def test_timeout_is_never_refunded_without_an_answer(vt: Harness, sessionmaker, sim) -> None:
    sim.configure("300000000000", hang=3.0, outcome="delivered")  # longer than the adapter's 1 s timeout
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("300000000000"))
    assert purchase.status == PENDING and not purchase.needs_attention
    assert purchase.exchanges[0]["response"] is None  # nothing came back
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight) == (START - 50_000, 50_000)
    done = await vt.service.requery(purchase.id, source="worker", attempt=1)
    assert done is not None and done.status == SUCCESSFUL  # it had gone through: refunding would lose money
    assert (await money(sessionmaker, buyer.id)).float_ == 50_000
    await assert_reconciled(sessionmaker)


async def test_no_response_fails_only_after_015_grace(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("400000000000"))  # HTTP 503, never processed
    assert purchase.status == PENDING
    early = await vt.service.requery(purchase.id, source="worker", attempt=1)
    assert early is not None and early.status == PENDING and early.provider_code == "015"
    assert (await money(sessionmaker, buyer.id)).in_flight == 50_000
    await age_pay_attempt(sessionmaker, purchase.id, 60)
    late = await vt.service.requery(purchase.id, source="worker", attempt=2)
    assert late is not None and late.status == FAILED
    assert (await money(sessionmaker, buyer.id)).wallet == START
    await assert_reconciled(sessionmaker)


async def test_unclear_until_the_schedule_ends_needs_attention_not_refund(
    vt: Harness, sessionmaker, sim
) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("500000000000"))  # malformed answer, then pending forever
    assert purchase.status == PENDING and purchase.provider_code is None
    for attempt in range(1, len(SHORT_SCHEDULE) + 1):
        current = await vt.service.requery(purchase.id, source="worker", attempt=attempt)
        assert current is not None and current.status == PENDING and current.attempts == attempt
    assert current.needs_attention and (current.attention_reason or "").startswith(UNRESOLVED)
    assert current.next_requery_at is None
    # the worker scheduled attempts 1..3 and nothing after the last one
    assert [a for _, a, _ in vt.scheduler.calls] == [1, 2, 3]
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight) == (START - 50_000, 50_000)
    # A duplicate job for a done attempt is a no-op.
    again = await vt.service.requery(purchase.id, source="worker", attempt=2)
    assert again is not None and len(again.exchanges) == len(current.exchanges)
    # Later the provider answers: the flag clears and the purchase settles.
    sim.transactions[purchase.request_id].final = "delivered"
    settled = await vt.service.requery(purchase.id, source="staff")
    assert settled is not None and settled.status == SUCCESSFUL and not settled.needs_attention
    await assert_reconciled(sessionmaker)


@pytest.mark.parametrize("final", ["delivered", "failed", "reversed"])
async def test_every_definite_answer_clears_the_unresolved_flag(
    vt: Harness, sessionmaker, sim, final
) -> None:
    """The needs-attention rule of a final answer (purchase_attention_when_final, called by purchase_deliver,
    purchase_fail and purchase_reverse) clears an "unknown after every requery" flag once the provider gives
    a definite answer, whichever it is."""
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("500000000000"))  # malformed answer, then pending forever
    for attempt in range(1, len(SHORT_SCHEDULE) + 1):
        flagged = await vt.service.requery(purchase.id, source="worker", attempt=attempt)
    assert flagged is not None and flagged.needs_attention
    assert (flagged.attention_reason or "").startswith(UNRESOLVED)
    if final == "reversed":
        sim.reverse(purchase.request_id)
    else:
        sim.transactions[purchase.request_id].final = final
    settled = await vt.service.requery(purchase.id, source="staff")
    assert settled is not None and settled.status == {"delivered": SUCCESSFUL}.get(final, final)
    assert not settled.needs_attention
    assert (await money(sessionmaker, buyer.id)).wallet == START - (50_000 if final == "delivered" else 0)
    await assert_reconciled(sessionmaker)


async def test_delivered_then_reversed_refunds_once(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=START, tier="reseller")
    purchase = await vt.service.buy(buyer, airtime("08011111111", 100_000))
    assert purchase.status == SUCCESSFUL
    sim.reverse(purchase.request_id)
    for _ in range(3):  # callback, staff, callback again: one reversal, one refund
        current = await vt.service.requery(purchase.id, source="callback")
        assert current is not None and current.status == REVERSED
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_, m.revenue) == (START, 0, 0, 0)
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"delivery:{purchase.id}",
        f"refund:{purchase.id}",
    ]
    assert await refund_of(sessionmaker, purchase.id) == (
        "purchase_refund", f"Reversed by provider: {current.provider_message}", "purchase", str(purchase.id),
        "system",
    )  # fmt: skip
    await assert_reconciled(sessionmaker)


async def test_reversed_while_still_pending_refunds_from_in_flight(vt: Harness, sessionmaker, sim) -> None:
    sim.configure("08077777777", pending_answers=1, outcome="delivered", reverse=True)
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("08077777777"))
    assert purchase.status == PENDING
    sim.reverse(purchase.request_id)
    done = await vt.service.requery(purchase.id, source="worker", attempt=1)
    assert done is not None and done.status == REVERSED
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_) == (START, 0, 0)
    assert await postings_for(sessionmaker, purchase.id) == [
        f"purchase:{purchase.id}",
        f"refund:{purchase.id}",
    ]
    assert (await refund_of(sessionmaker, purchase.id))[1] == f"Reversed by provider: {done.provider_message}"
    await assert_reconciled(sessionmaker)


async def test_provider_exchanges_are_logged_without_secrets(vt: Harness, sessionmaker, sim) -> None:
    import json

    sim.echo_headers = True  # the simulator reflects our headers back: they must still not be stored
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, airtime("201000000000"))
    await vt.service.requery(purchase.id, source="worker", attempt=1)
    stored = json.dumps((await load(sessionmaker, purchase.id)).exchanges)
    for secret in (sim.api_key, sim.public_key, sim.secret_key):
        assert secret not in stored
    assert '"kind": "pay"' in stored and '"kind": "requery"' in stored


async def test_electricity_token_and_units_are_kept(vt: Harness, sessionmaker, sim) -> None:
    buyer = await new_buyer(sessionmaker, fund=START)
    request = PurchaseRequest(
        service_id="ikeja-electric", meter_number="1111111111111", meter_type="prepaid",
        amount_kobo=200_000, phone="08011111111",
    )  # fmt: skip
    purchase = await vt.service.buy(buyer, request)
    assert purchase.status == SUCCESSFUL
    assert purchase.token and len(purchase.token.replace("-", "")) == 20
    assert purchase.units and purchase.units.endswith("kWh")
    assert purchase.customer_name == "TESTMETER1" and purchase.recipient == "1111111111111"
    await assert_reconciled(sessionmaker)


async def test_cable_renewal_is_priced_from_verification(vt: Harness, sessionmaker, sim, db: Any) -> None:
    buyer = await new_buyer(sessionmaker, fund=5_000_000)
    request = PurchaseRequest(
        service_id="dstv", smartcard_number="1212121212", subscription_type="renew", phone="08011111111"
    )
    purchase = await vt.service.buy(buyer, request)
    assert purchase.status == SUCCESSFUL
    assert purchase.face_amount_kobo == 1_900_000  # the sandbox card's Compact bouquet renewal amount
    pay = sim.pay_requests(purchase.request_id)[0].body
    assert pay["subscription_type"] == "renew" and pay["amount"] == 19_000
    await assert_reconciled(sessionmaker)


async def test_a_cheap_bouquet_price_rule_never_prices_a_renewal(
    vt: Harness, sessionmaker, sim, db: Any
) -> None:
    """A renewal is priced by the card's renewal amount; a fixed price set for the bouquet code sent along
    (here a cheap one) must not apply, or a ₦19,000 renewal would sell for ₦4,500."""
    from sqlalchemy import text

    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO price_rules (id, tier, service_id, variation_code, fixed_price_kobo, active,"
                " created_at, updated_at) VALUES (gen_random_uuid(), 'customer', 'dstv', 'dstv-padi', 450000,"
                " true, now(), now())"
            )
        )
    buyer = await new_buyer(sessionmaker, fund=5_000_000)
    request = PurchaseRequest(
        service_id="dstv", smartcard_number="1212121212", subscription_type="renew", phone="08011111111",
        variation_code="dstv-padi",
    )  # fmt: skip
    purchase = await vt.service.buy(buyer, request)
    assert purchase.face_amount_kobo == 1_900_000 and purchase.amount_kobo == 1_900_000
    assert (await money(sessionmaker, buyer.id)).wallet == 5_000_000 - 1_900_000
    await assert_reconciled(sessionmaker)


async def test_provider_exception_after_commit_means_pending_not_refund(db, sessionmaker, settings) -> None:
    class Exploding(StubProvider):
        async def purchase(self, order):  # the request may have left before this blew up
            raise RuntimeError("connection reset after send")

    harness = make_service(
        sessionmaker, dataclasses.replace(settings, vtu_provider="stub"), providers={"stub": Exploding()}
    )
    buyer = await new_buyer(sessionmaker, fund=START)
    try:
        purchase = await harness.service.buy(buyer, airtime("08011111111"))
    finally:
        await harness.aclose()
    assert purchase.status == PENDING and "RuntimeError" in (purchase.provider_message or "")
    assert (await money(sessionmaker, buyer.id, "stub")).in_flight == 50_000
    assert [a for _, a, _ in harness.scheduler.calls] == [1]
    await assert_reconciled(sessionmaker)


async def test_unusable_provider_refuses_before_anything_is_written(db, sessionmaker, settings) -> None:
    no_credentials = dataclasses.replace(
        settings, vtu_provider="vtpass", vtpass_api_key="", vtpass_username=""
    )
    harness = make_service(sessionmaker, no_credentials)
    buyer = await new_buyer(sessionmaker, fund=START)
    try:
        with pytest.raises(ServiceUnavailable):
            await harness.service.buy(buyer, airtime("08011111111"))
    finally:
        await harness.aclose()
    assert await count_purchases(sessionmaker) == 0
    assert (await money(sessionmaker, buyer.id)).wallet == START
