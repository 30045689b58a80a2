"""Password and PIN hashing with argon2id.

The cost is argon2-cffi's tuned default (RFC 9106 low-memory: m=65536 KiB, t=3, p=4) unless
PASSWORD_HASH_PARAMS names another one, never below OWASP's minimum (docs/architecture.md, "Accounts").
A stored hash carries its own parameters, so changing them never locks anyone out: old hashes still verify.
"""

from __future__ import annotations

import asyncio
import os
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ENV = "PASSWORD_HASH_PARAMS"
DEFAULT_PARAMS = "m=65536,t=3,p=4"
# OWASP Password Storage Cheat Sheet, argon2id: (memory KiB, iterations) pairs of equal strength, p=1.
OWASP_MINIMUMS = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))


def parse_params(raw: str) -> PasswordHasher:
    """A hasher for `m=<KiB>,t=<iterations>,p=<lanes>`; ValueError with a clear message otherwise."""
    given: dict[str, int] = {}
    for part in raw.split(","):
        key, _, value = part.strip().partition("=")
        if key not in ("m", "t", "p") or key in given or not re.fullmatch(r"[0-9]{1,9}", value.strip()):
            raise ValueError(f"{ENV} must look like {DEFAULT_PARAMS!r} (got {raw!r})")
        given[key] = int(value)
    if set(given) != {"m", "t", "p"}:
        raise ValueError(f"{ENV} must give m, t and p, like {DEFAULT_PARAMS!r} (got {raw!r})")
    m, t, p = given["m"], given["t"], given["p"]
    if not 1 <= p <= 16 or m > 4 * 1024 * 1024 or t > 20:
        raise ValueError(f"{ENV}: p is 1 to 16, t at most 20 and m at most 4194304 KiB (got {raw!r})")
    if not any(m >= floor_m and t >= floor_t for floor_m, floor_t in OWASP_MINIMUMS):
        raise ValueError(
            f"{ENV}={raw!r} is weaker than OWASP's minimum for argon2id "
            "(for example m=19456,t=2,p=1 or m=47104,t=1,p=1)"
        )
    return PasswordHasher(time_cost=t, memory_cost=m, parallelism=p)


def configured() -> PasswordHasher:
    """The hasher PASSWORD_HASH_PARAMS (or the default) asks for."""
    return parse_params(os.environ.get(ENV, "").strip() or DEFAULT_PARAMS)


def config_problems() -> list[str]:
    """A bad PASSWORD_HASH_PARAMS refuses start-up (app.config.settings.validate), not the first log-in."""
    try:
        configured()
    except ValueError as exc:
        return [str(exc)]
    return []


# Verifying against this keeps "unknown email" as slow as "wrong password" (no user enumeration by timing).
# A stored hash of "not-a-real-password", not one computed at import: an argon2 hash costs every process
# that imports this module (each `vtu` command, web and worker process) about 0.1-0.5 s of CPU. Should the
# hasher's parameters differ from the ones written in it, a hash with the current ones is made once.
_STORED_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$ge2sa1XHjvN+xt5bqIsj+w$Hw06X1Cj32194ZIYeYHrPI98q8qbSlnTu0vm74FM5JI"
)
_dummy: list[str] = []
_hashers: list[PasswordHasher] = []


def _hasher() -> PasswordHasher:
    # Built on first use, after settings have loaded `.env`; settings refuse a bad value at start-up.
    if not _hashers:
        _hashers.append(configured())
    return _hashers[0]


def _dummy_hash() -> str:
    if not _dummy:
        stale = _hasher().check_needs_rehash(_STORED_DUMMY_HASH)
        _dummy.append(_hasher().hash("not-a-real-password") if stale else _STORED_DUMMY_HASH)
    return _dummy[0]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher().verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    # argon2 is deliberately CPU-heavy (~0.15 s with the default cost): keep it off the event loop.
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)
