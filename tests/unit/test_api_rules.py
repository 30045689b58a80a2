"""Reseller API rules without a server: strict body parsing, key and allowlist helpers, callback URLs and
signatures, error mapping. Property tests feed arbitrary JSON to the parsers: they answer or raise ApiError,
nothing else."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.accounts.apikeys import (
    check_callback_url,
    generate_key,
    hash_key,
    ip_allowed,
    looks_like_key,
    parse_allowed_ips,
)
from app.api.auth import bearer_token
from app.api.callbacks import sign, verify_signature
from app.api.errors import ApiError, from_purchase_error
from app.api.schemas import check_idempotency_key, parse_purchase, parse_verify
from app.vtu.errors import CustomerNotFound, IdempotencyMismatch, InsufficientFunds, ServiceUnavailable


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


def fields_of(raw: bytes) -> dict[str, str]:
    with pytest.raises(ApiError) as caught:
        parse_purchase(raw)
    assert caught.value.status_code == 400 and caught.value.code == "invalid_request"
    return caught.value.fields or {}


def test_each_service_kind_takes_its_own_fields():
    airtime = parse_purchase(body(service_id="mtn", phone="08011111111", amount_kobo=10_000))
    assert (airtime.service_id, airtime.amount_kobo, airtime.variation_code) == ("mtn", 10_000, None)
    cable = parse_purchase(body(service_id="dstv", smartcard_number="1212121212", subscription_type="renew",
                                phone="08011111111"))  # fmt: skip
    assert cable.variation_code is None and cable.subscription_type == "renew"
    startimes = fields_of(body(service_id="startimes", smartcard_number="1212121212", phone="08011111111",
                               subscription_type="change", variation_code="nova"))  # fmt: skip
    assert set(startimes) == {"subscription_type"}


@pytest.mark.parametrize("amount", ["10000", 10000.0, True, False, None, [10000], {"kobo": 1}])
def test_amount_must_be_a_json_integer(amount):
    assert "amount_kobo" in fields_of(body(service_id="mtn", phone="08011111111", amount_kobo=amount))


def test_every_problem_is_reported_at_once():
    problems = fields_of(body(service_id="ikeja-electric", meter_number=1, amount_kobo="1", colour="red"))
    assert set(problems) == {"meter_number", "amount_kobo", "meter_type", "phone", "colour"}


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.sampled_from(["service_id", "phone", "amount_kobo", "variation_code",
                                                       "meter_number", "meter_type", "smartcard_number",
                                                       "subscription_type", "type", "customer_number", "x"])
                                      | st.text(max_size=5), children, max_size=6),
                    max_leaves=12))  # fmt: skip
def test_parsers_answer_or_refuse_any_json(value):
    raw = json.dumps(value).encode()
    for parse in (parse_purchase, parse_verify):
        try:
            parse(raw)
        except ApiError as exc:
            assert exc.status_code in (400, 413)


@given(st.binary(max_size=200))
def test_parsers_refuse_any_bytes_cleanly(raw):
    for parse in (parse_purchase, parse_verify):
        try:
            parse(raw)
        except ApiError as exc:
            assert exc.status_code == 400


def test_verify_needs_a_meter_type_for_electricity_only():
    assert parse_verify(body(service_id="dstv", customer_number=" 1212121212 ")) == (
        "dstv",
        "1212121212",
        None,
    )
    assert parse_verify(body(service_id="ikeja-electric", customer_number="1111111111111", type="prepaid"))[
        2
    ] == ("prepaid")
    with pytest.raises(ApiError):
        parse_verify(body(service_id="ikeja-electric", customer_number="1111111111111"))


@pytest.mark.parametrize(("value", "ok"), [("order-1", True), ("x" * 255, True), ("", False), ("a b", False),
                                           ("x" * 256, False), ("é", False), (None, False)])  # fmt: skip
def test_idempotency_key_rules(value, ok):
    if ok:
        assert check_idempotency_key(value) == value
    else:
        with pytest.raises(ApiError):
            check_idempotency_key(value)


def test_keys_are_random_prefixed_and_hashed():
    (key, prefix), (other, _) = generate_key(), generate_key()
    assert key != other and key.startswith(prefix + "_") and looks_like_key(key)
    assert len(hash_key(key)) == 64 and hash_key(key) != hash_key(other)
    assert bearer_token(f"Bearer {key}") == key and bearer_token(f"bearer  {key} ") == key
    assert (
        bearer_token("Basic abc") is None and bearer_token("Bearer ") is None and bearer_token(None) is None
    )


def test_allowlist():
    networks = parse_allowed_ips("203.0.113.7, 198.51.100.0/24\n2001:db8::/32 203.0.113.7")
    assert networks == ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"]
    assert ip_allowed(networks, "198.51.100.200") and ip_allowed(networks, "2001:db8::1")
    assert not ip_allowed(networks, "203.0.113.8") and not ip_allowed(networks, None)
    assert not ip_allowed(networks, "garbage")
    assert ip_allowed([], "1.2.3.4")
    with pytest.raises(ValueError, match="not an IP"):
        parse_allowed_ips("10.0.0.1, nope")


@pytest.mark.parametrize(("url", "prod", "ok"), [
    ("https://shop.example.ng/cb", True, True),
    ("http://shop.example.ng/cb", True, False),
    ("http://127.0.0.1:9000/cb", False, True),
    ("https://127.0.0.1/cb", True, False),
    ("https://10.1.2.3/cb", True, False),
    ("https://169.254.169.254/latest", True, False),
    ("https://localhost/cb", True, False),
    ("https://user:pw@shop.example.ng/cb", True, False),
    ("ftp://shop.example.ng", False, False),
    ("shop.example.ng/cb", False, False),
    ("https://shop.example.ng:99999/", False, False),
])  # fmt: skip
def test_callback_urls(url, prod, ok):
    if ok:
        assert check_callback_url(url, is_prod=prod) == url
    else:
        with pytest.raises(ValueError):
            check_callback_url(url, is_prod=prod)
    assert check_callback_url("  ", is_prod=prod) is None


def test_callback_signature_is_hmac_sha256_of_the_raw_body():
    signature = sign(b'{"id":"1"}', "whsec_test")
    assert signature == "sha256=" + __import__("hmac").new(b"whsec_test", b'{"id":"1"}', "sha256").hexdigest()
    assert verify_signature(b'{"id":"1"}', signature, "whsec_test")
    assert not verify_signature(b'{"id": "1"}', signature, "whsec_test")
    assert not verify_signature(b'{"id":"1"}', signature, "other") and not verify_signature(b"", None, "x")


def test_purchase_errors_map_to_the_contracts_codes():
    cases = [
        (InsufficientFunds(price_kobo=1, balance_kobo=0), 402, "insufficient_funds"),
        (IdempotencyMismatch("k"), 409, "idempotency_key_reused"),
        (CustomerNotFound("meter_number", "bad meter"), 400, "invalid_request"),
        (ServiceUnavailable("down"), 503, "service_unavailable"),
    ]
    for exc, status, code in cases:
        mapped = from_purchase_error(exc)
        assert (mapped.status_code, mapped.code) == (status, code)


def test_documented_limits_come_from_the_config_given():
    """The body schema's amount limits are the VtuConfig's (here not the defaults), not copies."""
    from litestar import Litestar

    from app.api.controllers import PurchaseController
    from app.api.openapi import BodySchemaPlugin
    from app.vtu.config import VtuConfig

    config = VtuConfig(airtime_min_kobo=10_000, airtime_max_kobo=20_000, electricity_max_kobo=90_000_000)
    app = Litestar([PurchaseController], plugins=[BodySchemaPlugin(config)])
    schemas = app.openapi_schema.to_schema()["components"]["schemas"]
    airtime = schemas["AirtimePurchase"]["properties"]["amount_kobo"]
    electricity = schemas["ElectricityPurchase"]["properties"]["amount_kobo"]
    assert (airtime["minimum"], airtime["maximum"]) == (10_000, 20_000)
    assert (electricity["minimum"], electricity["maximum"]) == (config.electricity_min_kobo, 90_000_000)


def test_every_service_takes_one_body_and_the_examples_parse():
    from app.api.schemas import BODY_FOR_SERVICE, PURCHASE_EXAMPLES, VERIFY_EXAMPLES
    from app.vtu.providers.catalog import SERVICES

    assert sorted(BODY_FOR_SERVICE) == sorted(s.service_id for s in SERVICES)
    for example in PURCHASE_EXAMPLES.values():
        assert parse_purchase(msgspec.json.encode(example)).canonical() == msgspec.to_builtins(example)
    for example in VERIFY_EXAMPLES.values():
        assert parse_verify(msgspec.json.encode(example))[0] == example.service_id
