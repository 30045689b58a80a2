"""Exam PINs (WAEC, JAMB) end to end: PurchaseService -> real VTpass adapter -> HTTP -> simulator, on real
PostgreSQL; PINs encrypted at rest, never in plain text anywhere in the database, re-encrypted by rotation."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from sqlalchemy import text

from app.core.encryption import ENCRYPTED_COLUMNS, cipher_for, generate_key, rotate_column
from app.vtu.errors import CustomerNotFound, InvalidPurchase
from app.vtu.exam import pins_of
from app.vtu.models import PENDING, SUCCESSFUL
from app.vtu.orders import PurchaseRequest
from app.vtu.plans import sync_plans
from app.vtu.providers.stub import stub_pins
from tests.integration import purchase_fixtures
from tests.integration.purchase_fixtures import (
    Harness,
    assert_reconciled,
    count_purchases,
    money,
    new_buyer,
)

sim = purchase_fixtures.sim
sim_server = purchase_fixtures.sim_server
vt = purchase_fixtures.vt

START = 10_000_000  # N100,000
WAEC_PRICE = 390_000  # the simulator's waecdirect plan, N3,900
JAMB_PRICE = 770_000


async def with_plans(vt: Harness, sessionmaker: Any) -> None:
    for service_id in ("waec", "waec-registration", "jamb"):
        async with sessionmaker() as session:
            await sync_plans(session, vt.registry.get("vtpass"), service_id)


def waec(quantity: Any = 3, **over: Any) -> PurchaseRequest:
    fields = {"service_id": "waec", "variation_code": "waecdirect", "phone": "08011111111"}
    fields["quantity"] = quantity
    return PurchaseRequest(**(fields | over))


def jamb(profile_id: str = "0123456789", **over: Any) -> PurchaseRequest:
    fields = {"service_id": "jamb", "variation_code": "utme", "phone": "08011111111"}
    fields["profile_id"] = profile_id
    return PurchaseRequest(**(fields | over))


async def plaintext_hits(sessionmaker: Any, secrets: list[str]) -> list[str]:
    """Every text / jsonb column of purchases (exchanges included) that holds one of `secrets`."""
    hits = []
    async with sessionmaker() as session:
        columns = (
            await session.execute(
                text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'purchases'"
                    " AND data_type IN ('text', 'character varying', 'jsonb')"
                )
            )
        ).scalars()
        for column in list(columns):
            for secret in secrets:
                found = await session.scalar(
                    text(f"SELECT count(*) FROM purchases WHERE {column}::text LIKE :s"),
                    {"s": f"%{secret}%"},
                )
                if found:
                    hits.append(f"{column}: {secret}")
    return hits


async def test_waec_quantity_three_delivers_three_pins_encrypted(vt: Harness, sessionmaker, sim) -> None:
    await with_plans(vt, sessionmaker)
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, waec(3))
    assert purchase.status == SUCCESSFUL and purchase.kind == "exam"
    assert purchase.amount_kobo == 3 * WAEC_PRICE and purchase.face_amount_kobo == 3 * WAEC_PRICE
    assert purchase.product_name.endswith("x 3")
    [pay] = sim.pay_requests(purchase.request_id)
    assert pay.body["quantity"] == 3 and pay.body["variation_code"] == "waecdirect"
    expected = stub_pins(purchase.request_id, 3)
    pins = pins_of(purchase, cipher_for(vt.service.settings))
    assert pins is not None and [(p.serial, p.pin) for p in pins] == expected
    assert purchase.token is None
    secrets = [v for pair in expected for v in pair]
    assert await plaintext_hits(sessionmaker, secrets) == []
    assert await plaintext_hits(sessionmaker, [purchase.request_id]) != []  # the search does find text
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight, m.float_) == (START - 3 * WAEC_PRICE, 0, 3 * WAEC_PRICE)
    await assert_reconciled(sessionmaker)


async def test_rotation_re_encrypts_the_pins_and_they_still_read(vt: Harness, sessionmaker, sim) -> None:
    await with_plans(vt, sessionmaker)
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, waec(2))
    old_cipher = cipher_for(vt.service.settings)
    before = pins_of(purchase, old_cipher)
    old_key = vt.service.settings.data_encryption_keys or ()
    from app.core.encryption import derived_dev_key

    keys = (generate_key(), *(old_key or (derived_dev_key(vt.service.settings.secret_key),)))
    new_settings = dataclasses.replace(vt.service.settings, data_encryption_keys=keys)
    new_cipher = cipher_for(new_settings)
    [column] = [c for c in ENCRYPTED_COLUMNS if c.table == "purchases"]
    async with sessionmaker() as session:
        assert await rotate_column(session, new_cipher, column, batch_size=10) >= 1
    rotated = await vt.service.get(purchase.id, user_id=buyer.id)
    assert rotated.pins_ciphertext != purchase.pins_ciphertext
    only_new = cipher_for(dataclasses.replace(new_settings, data_encryption_keys=keys[:1]))
    assert pins_of(rotated, only_new) == before  # readable with the new key alone


async def test_jamb_profile_is_verified_before_paying(vt: Harness, sessionmaker, sim) -> None:
    await with_plans(vt, sessionmaker)
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, jamb())
    assert purchase.status == SUCCESSFUL and purchase.recipient == "0123456789"
    assert purchase.amount_kobo == JAMB_PRICE and purchase.customer_name == "TEST CANDIDATE"
    verify = [r for r in sim.requests if r.path == "/api/merchant-verify"]
    assert verify and verify[0].body == {"billersCode": "0123456789", "serviceID": "jamb", "type": "utme"}
    assert sim.pay_requests(purchase.request_id)[0].body["billersCode"] == "0123456789"
    pins = pins_of(purchase, cipher_for(vt.service.settings))
    assert pins is not None and len(pins) == 1 and pins[0].pin == stub_pins(purchase.request_id, 1)[0][1]
    assert await plaintext_hits(sessionmaker, [pins[0].pin]) == []
    await assert_reconciled(sessionmaker)


async def test_jamb_profile_that_fails_verification_debits_nothing(vt: Harness, sessionmaker, sim) -> None:
    await with_plans(vt, sessionmaker)
    buyer = await new_buyer(sessionmaker, fund=START)
    with pytest.raises(CustomerNotFound) as refused:
        await vt.service.buy(buyer, jamb("0999999999"))
    assert refused.value.field == "profile_id"
    assert await count_purchases(sessionmaker) == 0 and sim.pay_requests() == []
    assert (await money(sessionmaker, buyer.id)).wallet == START
    await assert_reconciled(sessionmaker)


async def test_pin_only_on_requery_stays_pending_then_delivers(vt: Harness, sessionmaker, sim) -> None:
    await with_plans(vt, sessionmaker)
    sim.configure("08011111111", pins_on_requery=True)
    buyer = await new_buyer(sessionmaker, fund=START)
    purchase = await vt.service.buy(buyer, waec(1))
    assert purchase.status == PENDING and purchase.pins_ciphertext is None
    assert "PIN" in (purchase.provider_message or "")
    m = await money(sessionmaker, buyer.id)
    assert (m.wallet, m.in_flight) == (START - WAEC_PRICE, WAEC_PRICE)
    done = await vt.service.requery(purchase.id, source="worker", attempt=1)
    assert done is not None and done.status == SUCCESSFUL
    pins = pins_of(done, cipher_for(vt.service.settings))
    assert pins and pins[0].pin == stub_pins(purchase.request_id, 1)[0][1]
    assert len(sim.pay_requests(purchase.request_id)) == 1
    assert await plaintext_hits(sessionmaker, [pins[0].pin, pins[0].serial or ""]) == []
    await assert_reconciled(sessionmaker)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (waec(0), "quantity"),
        (waec(11), "quantity"),
        (waec("2"), "quantity"),
        (waec(2.0), "quantity"),
        (waec(True), "quantity"),
        (PurchaseRequest(service_id="mtn", phone="08011111111", amount_kobo=10_000, quantity=2), "quantity"),
        (jamb("12345"), "profile_id"),
        (jamb("\uff10" * 10), "profile_id"),  # fullwidth digits: ASCII only
        (waec(1, profile_id="0123456789"), "profile_id"),
        (waec(1, variation_code=None), "variation_code"),
    ],
)
async def test_bad_exam_input_is_refused_with_nothing_written(
    vt: Harness, sessionmaker, sim, request_, field
) -> None:
    await with_plans(vt, sessionmaker)
    buyer = await new_buyer(sessionmaker, fund=START)
    with pytest.raises(InvalidPurchase) as refused:
        await vt.service.buy(buyer, request_)
    assert field in refused.value.fields
    assert await count_purchases(sessionmaker) == 0 and sim.pay_requests() == []
    assert (await money(sessionmaker, buyer.id)).wallet == START


async def test_concurrent_exam_purchases_each_get_their_own_pins(vt: Harness, sessionmaker, sim) -> None:
    await with_plans(vt, sessionmaker)
    buyer = await new_buyer(sessionmaker, fund=5 * WAEC_PRICE * 2)
    bought = await asyncio.gather(*(vt.service.buy(buyer, waec(2)) for _ in range(5)))
    assert all(p.status == SUCCESSFUL for p in bought)
    cipher = cipher_for(vt.service.settings)
    all_pins = [p.pin for b in bought for p in pins_of(b, cipher) or []]
    assert len(all_pins) == 10 and len(set(all_pins)) == 10
    assert (await money(sessionmaker, buyer.id)).wallet == 0
    await assert_reconciled(sessionmaker)


async def add_rule(sessionmaker: Any, **values: Any) -> None:
    """A price rule row as staff would leave it (for JAMB: one that set_rule refuses, to prove the cap)."""
    from app.vtu.models import PriceRule

    async with sessionmaker() as session, session.begin():
        session.add(PriceRule(**({"variation_code": ""} | values)))


async def test_exam_pins_are_priced_per_pin_by_the_tier_rules_and_jamb_never_moves(
    vt: Harness, sessionmaker, sim
) -> None:
    await with_plans(vt, sessionmaker)
    await add_rule(sessionmaker, tier="reseller", service_id="waec", discount_bps=500)  # 5% off per PIN
    await add_rule(sessionmaker, tier="reseller", service_id="jamb", fixed_price_kobo=900_000)
    await add_rule(sessionmaker, tier="customer", service_id="jamb", discount_bps=1_000)
    reseller = await new_buyer(sessionmaker, fund=START, tier="reseller")
    waec_bought = await vt.service.buy(reseller, waec(4))
    assert waec_bought.status == SUCCESSFUL
    assert waec_bought.amount_kobo == 4 * (WAEC_PRICE - WAEC_PRICE * 500 // 10_000)
    assert waec_bought.face_amount_kobo == 4 * WAEC_PRICE
    jamb_reseller = await vt.service.buy(reseller, jamb())
    customer = await new_buyer(sessionmaker, fund=START)
    jamb_customer = await vt.service.buy(customer, jamb())
    assert jamb_reseller.amount_kobo == jamb_customer.amount_kobo == JAMB_PRICE  # JAMB's approved price
    await assert_reconciled(sessionmaker)


async def test_a_customer_never_pays_below_the_providers_cost(vt: Harness, sessionmaker, sim) -> None:
    await with_plans(vt, sessionmaker)
    await add_rule(sessionmaker, tier="customer", service_id="waec", fixed_price_kobo=100)
    buyer = await new_buyer(sessionmaker, fund=START)
    bought = await vt.service.buy(buyer, waec(2))
    assert bought.amount_kobo == bought.cost_kobo == 2 * WAEC_PRICE  # no commission configured: cost = face
    await assert_reconciled(sessionmaker)


async def test_staff_cannot_set_a_jamb_price_rule(db, sessionmaker) -> None:
    from app.vtu.price_rules import PriceRuleError, set_rule

    async with sessionmaker() as session:
        with pytest.raises(PriceRuleError) as refused:
            await set_rule(session, tier="customer", service_id="jamb", discount_bps=100, staff="ops@x.ng")
    assert "approved price" in refused.value.fields["service_id"]
