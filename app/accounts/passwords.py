"""Password and PIN hashing with argon2id (argon2-cffi's tuned defaults)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# Verifying against this keeps "unknown email" as slow as "wrong password" (no user enumeration by timing).
# A stored hash of "not-a-real-password", not one computed at import: an argon2 hash costs every process
# that imports this module (each `vtu` command, web and worker process) about 0.1-0.5 s of CPU. Should the
# hasher's parameters ever differ from the ones written in it, a hash with the current ones is made once.
_STORED_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$ge2sa1XHjvN+xt5bqIsj+w$Hw06X1Cj32194ZIYeYHrPI98q8qbSlnTu0vm74FM5JI"
)
_dummy: list[str] = []


def _dummy_hash() -> str:
    if not _dummy:
        stale = _hasher.check_needs_rehash(_STORED_DUMMY_HASH)
        _dummy.append(_hasher.hash("not-a-real-password") if stale else _STORED_DUMMY_HASH)
    return _dummy[0]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    # argon2 is deliberately CPU-heavy (~50 ms): keep it off the event loop.
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
