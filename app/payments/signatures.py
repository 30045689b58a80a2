"""Monnify webhook signatures: lowercase hex HMAC-SHA512 of the raw request body, keyed by the secret key.

Always hash the bytes exactly as received; re-serialised JSON differs in spacing and key order.
"""

from __future__ import annotations

import hashlib
import hmac


def compute_monnify_signature(raw_body: bytes, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha512).hexdigest()


def verify_monnify_signature(raw_body: bytes, header: str | None, secret: str) -> bool:
    """True only when `header` carries the right signature; constant-time compare."""
    if not header or not secret:
        return False
    given = header.strip().lower()
    if not given:
        return False
    expected = compute_monnify_signature(raw_body, secret)
    # compare_digest on ASCII bytes: a non-ASCII header would make the str form raise TypeError
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))
