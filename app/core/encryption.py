"""Encryption at rest for the few values we must be able to read back: exam PINs and serials, BVN / NIN
(docs/architecture.md, "Encryption at rest").

`DATA_ENCRYPTION_KEYS` is a comma-separated list of Fernet keys (`vtu keys generate` prints one). The FIRST
key encrypts; every key decrypts, so a key is rotated without downtime:
  1. put a new key first and keep the old one after it (deploy: new values use the new key, old ones still
     read);
  2. run `vtu keys rotate` (re-encrypts every registered column with the first key);
  3. drop the old key.
Outside prod, with no keys set, one key is derived from SECRET_KEY so development and tests need no setup;
prod refuses to start without DATA_ENCRYPTION_KEYS (app/config/settings.py).

Every column holding ciphertext is listed in `ENCRYPTED_COLUMNS` below (table, key column, text column), so
the rotation finds it. Ciphertext is the Fernet token as text (AES-128-CBC + HMAC-SHA256, with its own IV:
the same PIN twice encrypts differently, so the database reveals nothing, not even equality).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.config.settings import Settings


class DecryptionFailed(Exception):
    """A stored value no configured key opens (a key dropped too early, or a tampered value)."""


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    table: str
    key_column: str  # the primary key, to update one row at a time
    column: str  # text column holding Fernet tokens (NULL allowed)


# Every column holding ciphertext from this module, in one list: `vtu keys rotate` re-encrypts them all.
ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn("purchases", "id", "pins_ciphertext"),  # exam PINs and serials (app/vtu/exam.py)
    EncryptedColumn("kyc_documents", "id", "number_encrypted"),  # BVN / NIN (app/accounts/kyc.py)
)


def key_problem(key: str) -> str | None:
    """Why `key` is not a usable Fernet key (None when it is)."""
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        return "must be a Fernet key: 32 bytes, url-safe base64 (44 characters); `vtu keys generate`"
    return None


def derived_dev_key(secret_key: str) -> str:
    """The development/test key when DATA_ENCRYPTION_KEYS is unset (never used in prod)."""
    digest = hashlib.sha256(b"vtu-data-encryption:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


class DataCipher:
    def __init__(self, keys: tuple[str, ...] | list[str]) -> None:
        if not keys:
            raise ValueError("at least one data encryption key is needed")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise DecryptionFailed("no configured DATA_ENCRYPTION_KEYS key opens this value") from exc

    def rotate(self, token: str) -> str:
        """The same plaintext under the first key (unchanged content; raises DecryptionFailed)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise DecryptionFailed("no configured DATA_ENCRYPTION_KEYS key opens this value") from exc


@lru_cache(maxsize=8)
def _cipher(keys: tuple[str, ...]) -> DataCipher:
    return DataCipher(keys)


def cipher_for(settings: Settings) -> DataCipher:
    """The process's cipher from Settings: DATA_ENCRYPTION_KEYS, else (outside prod) the derived key."""
    keys = settings.data_encryption_keys or (derived_dev_key(settings.secret_key),)
    return _cipher(keys)


def mask(value: str, visible: int = 4) -> str:
    """`***********7890`-style display of a secret identifier: only the last `visible` characters."""
    value = value or ""
    if len(value) <= visible:
        return "*" * len(value)
    return "*" * (len(value) - visible) + value[-visible:]


__all__ = [
    "ENCRYPTED_COLUMNS",
    "DataCipher",
    "DecryptionFailed",
    "EncryptedColumn",
    "cipher_for",
    "derived_dev_key",
    "generate_key",
    "key_problem",
    "mask",
]


async def rotate_column(
    session: AsyncSession, cipher: DataCipher, column: EncryptedColumn, *, batch_size: int
) -> int:
    """Re-encrypt one column under the first key, a batch per transaction, each row compare-and-set (a value
    changed meanwhile is left to the next run). Returns how many values were rewritten."""
    from sqlalchemy import text

    # Identifiers come from ENCRYPTED_COLUMNS (constants in this file), never from input.
    table, key, col = column.table, column.key_column, column.column
    done, after = 0, None
    while True:
        where = f"{col} IS NOT NULL" + (f" AND {key} > :after" if after is not None else "")
        rows = (
            await session.execute(
                text(f"SELECT {key}, {col} FROM {table} WHERE {where} ORDER BY {key} LIMIT :n"),  # noqa: S608
                {"after": after, "n": batch_size},
            )
        ).all()
        if not rows:
            return done
        for row_key, token in rows:
            fresh = cipher.rotate(token)
            result = await session.execute(
                text(f"UPDATE {table} SET {col} = :fresh WHERE {key} = :k AND {col} = :old"),  # noqa: S608
                {"fresh": fresh, "k": row_key, "old": token},
            )
            done += result.rowcount or 0  # type: ignore[attr-defined]
        await session.commit()
        after = rows[-1][0]
