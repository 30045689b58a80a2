"""`vtu keys refingerprint`: every stored BVN/NIN fingerprint recomputed under the current key.

A fingerprint (app/accounts/kyc.py `fingerprint`) only compares with fingerprints made under the same key.
When KYC_FINGERPRINT_KEY changes (or SECRET_KEY, while KYC_FINGERPRINT_KEY is unset), the stored ones no
longer match what a new submission computes, so a number already held by one account could be attached to a
second. This recomputes each stored fingerprint from the decrypted number (docs/architecture.md, "KYC").

- Each row is a compare-and-set on its old fingerprint, a batch per transaction: safe to run while the site
  serves, and to re-run (a row already under the current key is left alone).
- A number that two accounts now hold (the second attached while the fingerprints were stale) cannot take
  its fingerprint twice (the column is UNIQUE): the row keeps its old one and is reported with both
  accounts, for staff to decide. Nothing is deleted.
- A number that no key in DATA_ENCRYPTION_KEYS decrypts is reported and left as it is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.kyc import LABELS, fingerprint
from app.accounts.models import KycDocument
from app.config.settings import Settings
from app.core.encryption import DecryptionFailed, cipher_for


@dataclass(slots=True)
class FingerprintReport:
    checked: int = 0
    recomputed: int = 0
    conflicts: list[str] = field(default_factory=list)  # one line per number held by two accounts
    unreadable: list[str] = field(default_factory=list)  # one line per number no key decrypts

    @property
    def clean(self) -> bool:
        return not self.conflicts and not self.unreadable


_EMAIL = text("SELECT email FROM users WHERE id = :id")


async def _email(session: AsyncSession, user_id: uuid.UUID | None) -> str:
    found = await session.scalar(_EMAIL, {"id": user_id}) if user_id is not None else None
    return str(found) if found else f"user {user_id}"


async def refingerprint(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, batch_size: int = 500
) -> FingerprintReport:
    """Recompute every kyc_documents fingerprint under the current key; see the module's docstring."""
    cipher = cipher_for(settings)
    report = FingerprintReport()
    after: uuid.UUID | None = None
    while True:
        async with sessionmaker() as session, session.begin():
            query = select(
                KycDocument.id,
                KycDocument.user_id,
                KycDocument.kind,
                KycDocument.number_encrypted,
                KycDocument.fingerprint,
                KycDocument.last4,
            ).order_by(KycDocument.id)
            if after is not None:
                query = query.where(KycDocument.id > after)
            rows = (await session.execute(query.limit(batch_size))).all()
            if not rows:
                return report
            for row in rows:
                report.checked += 1
                what = f"{LABELS.get(row.kind, row.kind)} ending {row.last4}"
                try:
                    mark = fingerprint(settings, row.kind, cipher.decrypt(row.number_encrypted))
                except DecryptionFailed:
                    who = await _email(session, row.user_id)
                    report.unreadable.append(f"{what} of {who}: no key in DATA_ENCRYPTION_KEYS decrypts it")
                    continue
                if mark == row.fingerprint:
                    continue
                try:
                    async with session.begin_nested():
                        moved = await session.execute(
                            update(KycDocument)
                            .where(KycDocument.id == row.id, KycDocument.fingerprint == row.fingerprint)
                            .values(fingerprint=mark)
                        )
                    report.recomputed += moved.rowcount or 0  # type: ignore[attr-defined]
                except IntegrityError:  # the same number, already on another account under the new key
                    holder = await session.scalar(
                        select(KycDocument.user_id).where(KycDocument.fingerprint == mark)
                    )
                    report.conflicts.append(
                        f"{what} is on two accounts: {await _email(session, row.user_id)} and "
                        f"{await _email(session, holder)} (kept as it is: decide which keeps it)"
                    )
            after = rows[-1].id


__all__ = ["FingerprintReport", "refingerprint"]
