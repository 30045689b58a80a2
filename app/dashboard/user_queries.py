"""Read-only queries behind the staff Users console (/staff/users). Nothing here writes: accounts change
through app.accounts.suspension / app.accounts.staff_admin, money only through app.ledger.

- `list_users`: recent sign-ups or search results, newest first, keyset-paginated on (created_at, id).
- `search_clause`: what staff paste (e-mail, phone, name, references, account number, purchase reference).
- `user_profile`, `referrals_of`, `audit_entries`: the profile page's sections.
- `statement`: the wallet's statement (`app.ledger.statement`, the one the customer's /statement reads)
  with each line's console link, keyset on the entry id.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, union_all
from sqlalchemy.orm import aliased

from app.accounts.models import User
from app.audit.models import AuditEntry
from app.core.keyset import Cursor, decode_id, older_than
from app.core.validation import InvalidPhone, normalise_phone
from app.ledger import statement as ledger_statement
from app.ledger.models import LedgerAccount
from app.ledger.queries import StatementLine
from app.payments import models as m
from app.referrals.models import Referral, ReferralBonus
from app.vtu.models import Purchase

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
STATEMENT_PAGE = 50
AUDIT_LIMIT = 20
REFERRED_LIMIT = 50
BONUS_LIMIT = 20

_u = User.__table__.c
_w = LedgerAccount.__table__.c
_p = Purchase.__table__.c
_r = m.ReservedAccount.__table__.c
_b = m.ReservedBankAccount.__table__.c
_ACCOUNT_NUMBER = re.compile(r"^\d{10}$")

ACTIVE, SUSPENDED, UNVERIFIED, CLOSED = "active", "suspended", "unverified", "closed"


# -- rows -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UserRow:
    """A user as the console shows them (list line and profile head)."""

    id: uuid.UUID
    email: str
    full_name: str
    phone: str | None
    tier: str
    staff_role: str | None
    is_superuser: bool
    is_active: bool
    suspended_at: datetime.datetime | None
    suspended_reason: str | None
    email_verified_at: datetime.datetime | None
    last_login_at: datetime.datetime | None
    account_reference: str
    referral_code: str
    referred_by_id: uuid.UUID | None
    pin_set: bool
    created_at: datetime.datetime
    balance_kobo: int  # the wallet now (0 without a wallet)
    kyc_level: int = 0  # app/accounts/kyc.py: 0 none, 1 BVN or NIN, 2 both

    @property
    def status(self) -> str:
        """closed / suspended / unverified (e-mail not confirmed yet) / active."""
        if not self.is_active:
            return CLOSED
        if self.suspended_at is not None:
            return SUSPENDED
        if self.email_verified_at is None:
            return UNVERIFIED
        return ACTIVE

    @property
    def role(self) -> str:
        """'admin (superuser)', 'support', ... or '' for customers."""
        if self.staff_role is None:
            return ""
        return f"{self.staff_role} (superuser)" if self.is_superuser else self.staff_role


_COLUMNS = (
    _u.id, _u.email, _u.full_name, _u.phone, _u.tier, _u.staff_role, _u.is_superuser, _u.is_active,
    _u.suspended_at, _u.suspended_reason, _u.email_verified_at, _u.last_login_at, _u.account_reference,
    _u.referral_code, _u.referred_by_id, _u.pin_hash.is_not(None).label("pin_set"), _u.created_at,
    func.coalesce(_w.balance, 0).label("balance_kobo"), _u.kyc_level,
)  # fmt: skip
_FROM = User.__table__.outerjoin(LedgerAccount.__table__, and_(_w.user_id == _u.id, _w.kind == "wallet"))


def _rows(result: Any) -> list[UserRow]:
    return [UserRow(**dict(row._mapping)) for row in result]


# -- search ---------------------------------------------------------------------------------------------
def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    return column.ilike(f"%{_like_escape(text)}%", escape="\\")


# The users table again, for the search's arms (`search_clause`).
_su = User.__table__.alias("searched_user").c


def search_clause(q: str) -> ColumnElement[bool] | None:
    """What staff paste, matched at once against every key that could mean it:
    - a UUID: the user id, or a purchase id (-> its buyer);
    - text with `@`: part of the e-mail (case-insensitive, LIKE wildcards taken literally);
    - anything else: part of the e-mail or the name; exactly the account reference or referral code (any
      case), the phone (any spelling: 080..., 234..., +234...), the 10-digit reserved bank account number,
      or a purchase's reference (our request_id or the provider's) -> its buyer.
    As `id IN (the union of each meaning's matching user ids)`: every arm is an index look-up of its own
    (e-mail and name by trigram index), where the same arms OR-ed on the user are a filter over every user
    (~250 ms at 200,000 users)."""
    q = q.strip()
    if not q:
        return None
    try:
        as_uuid = uuid.UUID(q)
    except ValueError:
        pass
    else:
        return _u.id.in_(
            union_all(select(_su.id).where(_su.id == as_uuid), select(_p.user_id).where(_p.id == as_uuid))
        )
    if "@" in q:
        return _contains(_u.email, q.lower())
    words = " ".join(q.split())
    arms: list[Select[Any]] = [
        select(_su.id).where(_contains(_su.email, q.lower())),
        select(_su.id).where(_contains(_su.full_name, words)),
        select(_su.id).where(_su.account_reference.in_(sorted({q, q.upper()}))),
        select(_su.id).where(_su.referral_code == q.upper()),
    ]
    with contextlib.suppress(InvalidPhone):
        arms.append(select(_su.id).where(_su.phone == normalise_phone(q)))
    if _ACCOUNT_NUMBER.fullmatch(q):
        arms.append(
            select(_r.user_id)
            .select_from(
                m.ReservedAccount.__table__.join(m.ReservedBankAccount.__table__, _b.reservation_id == _r.id)
            )
            .where(_b.account_number == q)
        )
    arms.append(select(_p.user_id).where(_p.request_id == q))
    arms.append(select(_p.user_id).where(_p.provider_reference == q))
    return _u.id.in_(union_all(*arms))


@dataclass(frozen=True, slots=True)
class UserPage:
    rows: list[UserRow]
    next_cursor: str | None  # pass as `before` for the next (older) page


def decode_cursor(raw: str | None) -> Cursor | None:
    return Cursor.decode(raw)


async def list_users(
    session: AsyncSession,
    q: str = "",
    *,
    before: str | None = None,
    limit: int = PAGE_SIZE,
    kyc_level: int | None = None,
) -> UserPage:
    """Newest sign-ups first (all users, or those `q` matches, at KYC level `kyc_level` when given); keyset
    on (created_at, id)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(*_COLUMNS).select_from(_FROM)
    found = search_clause(q)
    if found is not None:
        query = query.where(found)
    if kyc_level is not None:
        query = query.where(_u.kyc_level == kyc_level)
    cursor = Cursor.decode(before)
    if cursor is not None:
        query = query.where(older_than(_u.created_at, _u.id, cursor))
    rows = _rows(await session.execute(query.order_by(_u.created_at.desc(), _u.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return UserPage(rows, Cursor.after(rows[-1]) if more and rows else None)


# -- one user -------------------------------------------------------------------------------------------
async def user_profile(session: AsyncSession, user_id: uuid.UUID) -> UserRow | None:
    rows = _rows(await session.execute(select(*_COLUMNS).select_from(_FROM).where(_u.id == user_id)))
    return rows[0] if rows else None


@dataclass(frozen=True, slots=True)
class Person:
    """Another user, named on the profile (a referrer, a referred friend)."""

    id: uuid.UUID
    email: str
    created_at: datetime.datetime
    earned_kobo: int = 0  # referred friends: what they have earned the referrer so far
    funding_bonus_at: datetime.datetime | None = None


@dataclass(frozen=True, slots=True)
class BonusRow:
    kind: str  # funding | purchase | clawback
    referrer_id: uuid.UUID
    referrer_email: str
    referred_id: uuid.UUID
    referred_email: str
    purchase_id: uuid.UUID | None
    amount_kobo: int
    uncollected_kobo: int
    created_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class Referrals:
    referred_by: Person | None
    referred_count: int
    referred: list[Person]  # newest first, at most REFERRED_LIMIT
    earned_kobo: int  # bonuses paid to this user, net of claw-backs
    bonuses: list[BonusRow]  # paid to them as referrer or for them as the friend, newest first


async def referrals_of(session: AsyncSession, user: UserRow) -> Referrals:
    referred_by = None
    if user.referred_by_id is not None:
        row = (
            await session.execute(select(_u.id, _u.email, _u.created_at).where(_u.id == user.referred_by_id))
        ).one_or_none()
        referred_by = Person(row.id, row.email, row.created_at) if row else None
    count = (
        await session.execute(select(func.count()).select_from(User).where(User.referred_by_id == user.id))
    ).scalar_one()
    friends = await session.execute(
        select(User.id, User.email, User.created_at, Referral.earned_kobo, Referral.funding_bonus_at)
        .outerjoin(Referral, Referral.referred_id == User.id)
        .where(User.referred_by_id == user.id)
        .order_by(User.created_at.desc(), User.id.desc())
        .limit(REFERRED_LIMIT)
    )
    referred = [
        Person(r.id, r.email, r.created_at, int(r.earned_kobo or 0), r.funding_bonus_at) for r in friends
    ]
    earned = (
        await session.execute(
            select(func.coalesce(func.sum(ReferralBonus.amount_kobo), 0)).where(
                ReferralBonus.referrer_id == user.id
            )
        )
    ).scalar_one()
    referrer, friend = aliased(User), aliased(User)
    bonus_rows = await session.execute(
        select(
            ReferralBonus.kind,
            ReferralBonus.referrer_id,
            referrer.email.label("referrer_email"),
            ReferralBonus.referred_id,
            friend.email.label("referred_email"),
            ReferralBonus.purchase_id,
            ReferralBonus.amount_kobo,
            ReferralBonus.uncollected_kobo,
            ReferralBonus.created_at,
        )
        .join(referrer, referrer.id == ReferralBonus.referrer_id)
        .join(friend, friend.id == ReferralBonus.referred_id)
        .where(or_(ReferralBonus.referrer_id == user.id, ReferralBonus.referred_id == user.id))
        .order_by(ReferralBonus.id.desc())
        .limit(BONUS_LIMIT)
    )
    bonuses = [BonusRow(**dict(row._mapping)) for row in bonus_rows]
    return Referrals(referred_by, int(count), referred, int(earned), bonuses)


async def audit_entries(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int = AUDIT_LIMIT
) -> list[AuditEntry]:
    """The latest staff actions on this user (target user:<id>), newest first."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.target_type == "user", AuditEntry.target_id == str(user_id))
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


# -- the wallet statement (app.ledger.statement: the customer's /statement reads the same) ----------------
@dataclass(frozen=True, slots=True)
class StatementRow:
    """A statement line with the console page it is about."""

    row: ledger_statement.StatementRow
    link: str | None  # the console page of what it is about
    about: str  # the reference as text ("purchase 0193...", "funding event #12")

    @property
    def line(self) -> StatementLine:
        return self.row.line

    @property
    def label(self) -> str:
        return self.row.label

    @property
    def amount(self) -> int:
        return self.row.amount


def _about(line: StatementLine) -> tuple[str | None, str]:
    kind, ref = line.reference_type, line.reference_id
    if kind == "purchase" and ref:
        return f"/staff/purchases/{ref}", f"purchase {ref[:8]}…"
    if kind == "monnify_event" and ref and ref.isdigit():
        return f"/staff/funding/{ref}", f"funding event #{ref}"
    if kind == "adjustment" and ref and ref.isdigit():
        return f"/staff/adjustments#adj-{ref}", f"adjustment #{ref}"
    if kind == "user" and ref:
        return f"/staff/users/{ref}", f"user {ref[:8]}…"
    if kind and ref:
        return None, f"{kind} {ref}"
    return None, line.idempotency_key


@dataclass(frozen=True, slots=True)
class Statement:
    rows: list[StatementRow]
    next_before: int | None  # the entry id to pass as `before` for the next (older) page


def decode_entry_cursor(raw: str | None) -> int | None:
    return decode_id(raw)


async def statement(
    session: AsyncSession, user_id: uuid.UUID, *, before: int | None = None, limit: int = STATEMENT_PAGE
) -> Statement:
    """Every entry of the user's wallet, newest first, with the balance after each
    (`app.ledger.statement.wallet_statement_rows`), plus the console link of what each is about."""
    page = await ledger_statement.wallet_statement_rows(session, user_id, limit=limit, before=before)
    return Statement([StatementRow(row, *_about(row.line)) for row in page.rows], page.next_before)


__all__ = [
    "BonusRow",
    "Person",
    "Referrals",
    "Statement",
    "StatementRow",
    "UserPage",
    "UserRow",
    "audit_entries",
    "decode_cursor",
    "decode_entry_cursor",
    "list_users",
    "referrals_of",
    "search_clause",
    "statement",
    "user_profile",
]
