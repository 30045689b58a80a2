"""KYC for funding (docs/architecture.md, "KYC"): a customer's BVN and NIN, their KYC level, and the limits
that level gives.

- Format: a BVN and a NIN are each exactly 11 ASCII digits; a BVN starts with "22".
- At rest: the number encrypted (`app/core/encryption.py`, column `kyc_documents.number_encrypted`, rotated
  by `vtu keys rotate`), its last 4 digits for masked display, and a keyed fingerprint (HMAC-SHA256 under
  KYC_FINGERPRINT_KEY, else a key derived from SECRET_KEY) that is UNIQUE: one BVN/NIN on one account. The
  fingerprint cannot be reversed without the key; changing that key makes stored fingerprints incomparable,
  so production sets KYC_FINGERPRINT_KEY once.
- Level: 0 none, 1 a BVN or a NIN that Monnify accepted, 2 both. Only Monnify's acceptance counts: the
  reserved account created (v2) with the number, or the number added to it (`kyc-info`). A number Monnify
  refused is removed (it reserves nothing); one Monnify could not be asked about stays `pending` with the
  error, and submitting again retries, as does the worker (`retry_unconfirmed`). The level, when and how it
  was set, and an audit entry (`kyc.verified`) are written in one transaction.
- Limits: KYC_LIMITS (app/accounts/kyc_config.py) per level, enforced by `purchase_open`
  (app/vtu/sql/purchases.sql) for every channel.

The Monnify calls run with no transaction open (invariant 8).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from app.accounts.kyc_config import LevelLimits
from app.accounts.models import KYC_KINDS, KYC_PENDING, KYC_VERIFIED, KycDocument, User
from app.accounts.services import FormErrors
from app.audit.service import Actor, record
from app.core.encryption import cipher_for, mask
from app.payments.models import RESERVATION_ACTIVE, ReservedAccount
from app.payments.monnify_client import MonnifyClient, MonnifyError, MonnifyRequestError
from app.payments.reservations import get_reservation, reserve_for_user

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.config.settings import Settings

log = structlog.get_logger("app.accounts.kyc")

LABELS = {"bvn": "BVN", "nin": "NIN"}
ALREADY_USED = "This {label} is already used by another account."
MONNIFY_DOWN = (
    "We could not confirm your {labels} with our bank partner just now, so your level is unchanged. "
    "Nothing else was affected. We will keep trying for a week and raise your level as soon as they confirm; "
    "you can also try again here in a few minutes."
)
# Numbers Monnify could not be asked about are asked again by the worker (`retry_unconfirmed`): each at most
# every RETRY_EVERY, for RETRY_FOR after they were given (then the customer submits again).
RETRY_EVERY = datetime.timedelta(minutes=10)
RETRY_FOR = datetime.timedelta(days=7)
MONNIFY_REFUSED = "Our bank partner did not accept this {labels}: check the number and try again."


class KycRefused(Exception):
    """Monnify did not accept (or could not be asked about) the numbers; `message` says which.
    `unavailable`: Monnify could not be asked (the numbers stay pending and are retried)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unavailable = unavailable


@dataclass(frozen=True, slots=True)
class RetryReport:
    tried: int
    verified: int  # customers whose level rose (or numbers were confirmed)
    refused: int  # numbers Monnify refused: removed, as when the customer submits them
    unavailable: bool  # Monnify could not be asked: the rest wait for the next sweep


def number_problem(kind: str, value: str) -> str | None:
    """Why `value` is not a valid BVN / NIN (None when it is)."""
    label = LABELS[kind]
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        return f"A {label} is exactly 11 digits (0-9)."
    if kind == "bvn" and not value.startswith("22"):
        return 'A BVN starts with "22": check the number (dial *565*0# to see yours).'
    return None


def normalise(value: str) -> str:
    """What the customer typed, without spaces and dashes (`2221 234 5678` is fine)."""
    return "".join(value.split()).replace("-", "")


def fingerprint_key(settings: Settings) -> bytes:
    if settings.kyc_fingerprint_key:
        return settings.kyc_fingerprint_key.encode()
    return hashlib.sha256(b"vtu-kyc-fingerprint:" + settings.secret_key.encode()).digest()


def fingerprint(settings: Settings, kind: str, number: str) -> str:
    """Keyed, non-reversible fingerprint of a number (unique across accounts)."""
    return hmac.new(fingerprint_key(settings), f"{kind}:{number}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class DocumentView:
    kind: str
    masked: str
    status: str
    verified_at: datetime.datetime | None
    verified_via: str | None
    last_error: str | None

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    @property
    def verified(self) -> bool:
        return self.status == KYC_VERIFIED


@dataclass(frozen=True, slots=True)
class KycStatus:
    level: int
    level_at: datetime.datetime | None
    documents: dict[str, DocumentView]
    limits: LevelLimits | None  # the level's limits (None: KYC_LIMITS off)
    next_limits: LevelLimits | None  # the next level's, to show what adding a number gives

    def document(self, kind: str) -> DocumentView | None:
        return self.documents.get(kind)


def level_limits(settings: Settings, level: int) -> LevelLimits | None:
    limits = settings.kyc_limits
    return limits[level] if 0 <= level < len(limits) else None


async def status_of(session: AsyncSession, settings: Settings, user_id: uuid.UUID) -> KycStatus:
    user = (await session.execute(select(User.kyc_level, User.kyc_level_at).where(User.id == user_id))).one()
    rows = (await session.execute(select(KycDocument).where(KycDocument.user_id == user_id))).scalars()
    documents = {
        row.kind: DocumentView(
            row.kind, mask("0" * 7 + row.last4), row.status, row.verified_at, row.verified_via, row.last_error
        )
        for row in rows
    }
    level = int(user.kyc_level)
    return KycStatus(
        level, user.kyc_level_at, documents, level_limits(settings, level), level_limits(settings, level + 1)
    )


def _labels(kinds: list[str]) -> str:
    return " and ".join(LABELS[k] for k in kinds)


class KycService:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, monnify: MonnifyClient
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.monnify = monnify
        self.cipher = cipher_for(settings)

    def validate(self, bvn: str, nin: str) -> dict[str, str]:
        """The numbers given ({kind: number}); FormErrors naming each bad field, or both when none given."""
        given = {kind: normalise(value) for kind, value in (("bvn", bvn), ("nin", nin)) if value.strip()}
        errors = {kind: problem for kind, value in given.items() if (problem := number_problem(kind, value))}
        if not given:
            errors = {
                "bvn": "Enter your BVN, your NIN, or both.",
                "nin": "Enter your BVN, your NIN, or both.",
            }
        if errors:
            raise FormErrors(errors)
        return given

    async def store(self, session: AsyncSession, user: User, numbers: dict[str, str]) -> None:
        """Record the numbers as pending (encrypted, fingerprinted) in the caller's transaction. A number
        already verified on this account stays; one used by another account is refused (FormErrors)."""
        existing = {
            row.kind: row
            for row in (
                await session.execute(
                    select(KycDocument).where(KycDocument.user_id == user.id).with_for_update()
                )
            ).scalars()
        }
        errors: dict[str, str] = {}
        for kind, number in numbers.items():
            mark = fingerprint(self.settings, kind, number)
            row = existing.get(kind)
            if row is not None and row.status == KYC_VERIFIED:
                if row.fingerprint != mark:
                    errors[kind] = f"Your {LABELS[kind]} is already verified. To change it, contact support."
                continue
            owner = (
                await session.execute(select(KycDocument.user_id).where(KycDocument.fingerprint == mark))
            ).scalar_one_or_none()
            if owner is not None and owner != user.id:
                errors[kind] = ALREADY_USED.format(label=LABELS[kind])
        if errors:
            raise FormErrors(errors)
        for kind, number in numbers.items():
            row = existing.get(kind)
            if row is not None and row.status == KYC_VERIFIED:
                continue
            values = {
                "number_encrypted": self.cipher.encrypt(number),
                "fingerprint": fingerprint(self.settings, kind, number),
                "last4": number[-4:],
                "status": KYC_PENDING,
                "last_error": None,
            }
            try:
                async with session.begin_nested():
                    await session.execute(
                        insert(KycDocument)
                        .values(id=uuid.uuid4(), user_id=user.id, kind=kind, **values)
                        .on_conflict_do_update(
                            index_elements=["user_id", "kind"],
                            set_={**values, "updated_at": func.now()},
                            where=KycDocument.status == KYC_PENDING,
                        )
                    )
            except IntegrityError:  # another account stored the same number a moment ago
                raise FormErrors({kind: ALREADY_USED.format(label=LABELS[kind])}) from None

    async def pending_numbers(self, user_id: uuid.UUID) -> dict[str, tuple[str, str]]:
        """{kind: (number, fingerprint)} of the customer's numbers Monnify has not accepted yet."""
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(KycDocument).where(
                        KycDocument.user_id == user_id, KycDocument.status == KYC_PENDING
                    )
                )
            ).scalars()
            return {row.kind: (self.cipher.decrypt(row.number_encrypted), row.fingerprint) for row in rows}

    async def verify_with_monnify(self, user: User, *, ip: str | None = None, retried: bool = False) -> int:
        """Send the pending numbers to Monnify (no transaction open) and record the answer. Returns the new
        level; raises KycRefused (level unchanged) when Monnify refused them or could not be asked.
        `retried`: the worker asking again (`retry_unconfirmed`), said in the audit entry."""
        pending = await self.pending_numbers(user.id)
        if not pending:
            async with self.sessionmaker() as session:
                level = await session.scalar(select(User.kyc_level).where(User.id == user.id))
                return int(level or 0)
        numbers = {kind: number for kind, (number, _) in pending.items()}
        labels = _labels(sorted(pending))
        async with self.sessionmaker() as session:
            reservation = await get_reservation(session, user.id)
            active = reservation is not None and reservation.status == RESERVATION_ACTIVE
        via = "monnify:kyc-info"
        account_name: str | None = None
        try:
            if active or await self.monnify.get_reserved_account(user.account_reference) is not None:
                answer = await self.monnify.update_kyc_info(
                    user.account_reference, bvn=numbers.get("bvn"), nin=numbers.get("nin")
                )
                # the name on the account becomes the name on the BVN/NIN: keep what Monnify says now
                name = answer.get("accountName")
                account_name = name.strip()[:120] if isinstance(name, str) and name.strip() else None
                if not active:  # Monnify holds the account but we never stored it: fetch its numbers
                    await reserve_for_user(self.sessionmaker, self.monnify, user.id)
            else:
                via = "monnify:reserve-v2"
                await reserve_for_user(
                    self.sessionmaker, self.monnify, user.id, bvn=numbers.get("bvn"), nin=numbers.get("nin")
                )
        except MonnifyRequestError as exc:
            # Monnify understood and refused: the numbers are not kept (they would block their owner).
            log.warning(
                "kyc_refused_by_monnify", user_id=str(user.id), status=exc.status, code=exc.response_code
            )
            await self._forget(user.id, pending)
            raise KycRefused(MONNIFY_REFUSED.format(labels=labels)) from exc
        except MonnifyError as exc:
            log.warning("kyc_monnify_unavailable", user_id=str(user.id), error=type(exc).__name__)
            await self._note_error(user.id, pending, str(exc))
            raise KycRefused(MONNIFY_DOWN.format(labels=labels), unavailable=True) from exc
        return await self._verified(user, pending, via, ip, account_name, retried=retried)

    async def _forget(self, user_id: uuid.UUID, pending: dict[str, tuple[str, str]]) -> None:
        async with self.sessionmaker() as session, session.begin():
            for kind, (_, mark) in pending.items():
                await session.execute(
                    delete(KycDocument).where(
                        KycDocument.user_id == user_id,
                        KycDocument.kind == kind,
                        KycDocument.fingerprint == mark,
                        KycDocument.status == KYC_PENDING,
                    )
                )

    async def _note_error(self, user_id: uuid.UUID, pending: dict[str, tuple[str, str]], error: str) -> None:
        async with self.sessionmaker() as session, session.begin():
            for kind, (_, mark) in pending.items():
                await session.execute(
                    update(KycDocument)
                    .where(
                        KycDocument.user_id == user_id,
                        KycDocument.kind == kind,
                        KycDocument.fingerprint == mark,
                        KycDocument.status == KYC_PENDING,
                    )
                    .values(last_error=error[:500], updated_at=func.now())
                )

    async def _verified(
        self,
        user: User,
        pending: dict[str, tuple[str, str]],
        via: str,
        ip: str | None,
        account_name: str | None = None,
        *,
        retried: bool = False,
    ) -> int:
        """Mark what Monnify accepted as verified, raise the level, audit: one transaction."""
        async with self.sessionmaker() as session, session.begin():
            if account_name:
                await session.execute(
                    update(ReservedAccount)
                    .where(ReservedAccount.user_id == user.id)
                    .values(account_name=account_name)
                )
            now = datetime.datetime.now(datetime.UTC)
            done: list[str] = []
            for kind, (_, mark) in sorted(pending.items()):
                result = await session.execute(
                    update(KycDocument)
                    .where(
                        KycDocument.user_id == user.id,
                        KycDocument.kind == kind,
                        KycDocument.fingerprint == mark,  # not replaced meanwhile by another submission
                        KycDocument.status == KYC_PENDING,
                    )
                    .values(
                        status=KYC_VERIFIED,
                        verified_at=now,
                        verified_via=via,
                        last_error=None,
                        updated_at=now,
                    )
                    .returning(KycDocument.id)
                )
                if result.first() is not None:
                    done.append(kind)
            verified = await session.scalar(
                select(func.count()).where(KycDocument.user_id == user.id, KycDocument.status == KYC_VERIFIED)
            )
            level = min(int(verified or 0), len(KYC_KINDS))
            before = await session.scalar(select(User.kyc_level).where(User.id == user.id).with_for_update())
            if level != before:
                await session.execute(
                    update(User).where(User.id == user.id).values(kyc_level=level, kyc_level_at=now)
                )
            if done:
                actor = Actor(user.id, user.email, "customer", ip)
                await record(
                    session,
                    actor,
                    "kyc.verified",
                    target=("user", user.id),
                    before={"kyc_level": before},
                    after={"kyc_level": level, "verified": done, "via": via}
                    | ({"retried_by": "worker"} if retried else {}),
                )
            log.info("kyc_verified", user_id=str(user.id), kinds=done, level=level, via=via)
            return level


async def retry_unconfirmed(service: KycService, *, limit: int = 10) -> RetryReport:
    """The worker's sweep (app/payments/tasks.py `sweep_funding`): numbers still pending RETRY_EVERY after
    they were last tried (Monnify was down, or the request that stored them ended before asking) and given
    within RETRY_FOR are sent to Monnify again, as if the customer had submitted them again. Stops at the
    first "could not be asked" (the rest wait for the next sweep, and each such number waits RETRY_EVERY)."""
    now = datetime.datetime.now(datetime.UTC)
    async with service.sessionmaker() as session:
        due = (
            select(KycDocument.user_id)
            .where(
                KycDocument.status == KYC_PENDING,
                KycDocument.updated_at < now - RETRY_EVERY,
                KycDocument.created_at > now - RETRY_FOR,
            )
            .group_by(KycDocument.user_id)
            .order_by(func.min(KycDocument.updated_at))
            .limit(limit)
        )
        user_ids = list((await session.execute(due)).scalars())
    tried = verified = refused = 0
    for user_id in user_ids:
        async with service.sessionmaker() as session:
            user = await session.get(User, user_id)
        if user is None:
            continue
        tried += 1
        try:
            await service.verify_with_monnify(user, retried=True)
        except KycRefused as exc:
            if exc.unavailable:
                return RetryReport(tried, verified, refused, unavailable=True)
            refused += 1
            continue
        verified += 1
    return RetryReport(tried, verified, refused, unavailable=False)


__all__ = [
    "ALREADY_USED",
    "DocumentView",
    "KycRefused",
    "KycService",
    "KycStatus",
    "RetryReport",
    "fingerprint",
    "level_limits",
    "normalise",
    "number_problem",
    "retry_unconfirmed",
    "status_of",
]
