"""Monnify webhook signatures: HMAC-SHA512 over the raw bytes, keyed by the client secret."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from app.payments.signatures import compute_monnify_signature, verify_monnify_signature

DOC_KEY = "91MUDL9N6U3BQRXBQ2PJ9M0PW4J22M1Y"  # the example client secret in Monnify's docs
BODY = (
    b'{"eventType":"SUCCESSFUL_TRANSACTION","eventData":{"product":{"reference":"1636106097661",'
    b'"type":"RESERVED_ACCOUNT"},"transactionReference":"MNFY|04|20211117112842|000170",'
    b'"amountPaid":30000,"settlementAmount":"29990.00"}}'
)


def expected(body: bytes, key: str) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def test_compute_is_lowercase_hex_hmac_sha512_of_raw_bytes() -> None:
    signature = compute_monnify_signature(BODY, DOC_KEY)
    assert signature == expected(BODY, DOC_KEY)
    assert len(signature) == 128 and signature == signature.lower()
    # Not the sha512(secret + body) that Monnify's prose describes.
    assert signature != hashlib.sha512(DOC_KEY.encode() + BODY).hexdigest()


def test_verify_accepts_the_right_signature_with_whitespace_and_upper_case() -> None:
    signature = expected(BODY, DOC_KEY)
    assert verify_monnify_signature(BODY, signature, DOC_KEY)
    assert verify_monnify_signature(BODY, f"  {signature.upper()}\n", DOC_KEY)


@pytest.mark.parametrize("header", [None, "", "   ", "deadbeef", "é" * 128])
def test_verify_rejects_missing_empty_and_wrong(header: str | None) -> None:
    assert not verify_monnify_signature(BODY, header, DOC_KEY)


def test_verify_rejects_wrong_key_and_tampered_body() -> None:
    signature = expected(BODY, DOC_KEY)
    assert not verify_monnify_signature(BODY, signature, "another-secret")
    assert not verify_monnify_signature(BODY.replace(b"30000", b"90000"), signature, DOC_KEY)
    assert not verify_monnify_signature(BODY, signature, "")


def test_reserialised_json_does_not_verify() -> None:
    # The webhook must hash the bytes as received: json round-trips change spacing.
    signature = expected(BODY, DOC_KEY)
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert reserialised != BODY
    assert not verify_monnify_signature(reserialised, signature, DOC_KEY)
