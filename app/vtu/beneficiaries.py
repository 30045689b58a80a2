"""Beneficiaries: the numbers a customer buys for, offered on the buy forms so a repeat purchase is a tap
(docs/architecture.md, "Beneficiaries").

Two sources, one list of `Offer`s per form:
- **recent**: distinct recipients of the customer's latest purchases (successful or pending: a number that
  only ever failed is not offered), read from `purchases` through its (user_id, created_at) index, looking
  at the last `RECENT_SCAN` purchases only, so the read stays cheap for a reseller with a million rows;
- **saved**: the `beneficiaries` table, written when a purchase with "Save this number" ticked was accepted
  (`remember`), renamed or deleted on /beneficiaries (`rename`, `delete`, only the owner's rows).

A beneficiary is a recipient, not a product: `kind` is `phone` (airtime and data share them), `meter` or
`smartcard`, unique per customer. At most `MAX_SAVED` each; labels are plain text of at most `LABEL_MAX`
characters (templates escape them).
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    String,
    UniqueConstraint,
    bindparam,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import UUIDv7AuditBase
from app.vtu.providers.catalog import METER_TYPES, SERVICES, ServiceKind, get_service

MAX_SAVED = 50
LABEL_MAX = 40
RECENT_SHOWN = 5
RECENT_SCAN = 200  # purchases looked at for recents (newest first)
OFFERS_SHOWN = 12  # buttons on one form: the recents, then saved ones

PHONE, METER, SMARTCARD = "phone", "meter", "smartcard"
RECIPIENT_KINDS = (PHONE, METER, SMARTCARD)
RECIPIENT_OF = {
    ServiceKind.AIRTIME: PHONE,
    ServiceKind.DATA: PHONE,
    ServiceKind.ELECTRICITY: METER,
    ServiceKind.CABLE: SMARTCARD,
}
# The buy form field that holds the recipient, per recipient kind.
FIELD_OF = {PHONE: "phone", METER: "meter_number", SMARTCARD: "smartcard_number"}
PRODUCTS_OF = {
    PHONE: (ServiceKind.AIRTIME, ServiceKind.DATA),
    METER: (ServiceKind.ELECTRICITY,),
    SMARTCARD: (ServiceKind.CABLE,),
}


class Beneficiary(UUIDv7AuditBase):
    """A recipient a customer saved, with the network / disco / TV provider it was bought on."""

    __tablename__ = "beneficiaries"
    __table_args__ = (
        # Also the index of every read (all by user_id first).
        UniqueConstraint("user_id", "kind", "recipient"),
        CheckConstraint("kind IN ('phone', 'meter', 'smartcard')", name="kind"),
        CheckConstraint("meter_type IS NULL OR meter_type IN ('prepaid', 'postpaid')", name="meter_type"),
        CheckConstraint(f"char_length(label) <= {LABEL_MAX}", name="label_length"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    service_id: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(20))
    meter_type: Mapped[str | None] = mapped_column(String(16), default=None)
    label: Mapped[str] = mapped_column(String(LABEL_MAX), default="", server_default=text("''"))
    customer_name: Mapped[str | None] = mapped_column(String(200), default=None)  # as the provider verified
    last_used_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class BeneficiaryError(Exception):
    """Refused; `message` is for the customer. Nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooManySaved(BeneficiaryError):
    def __init__(self) -> None:
        super().__init__(
            f"You already have {MAX_SAVED} saved numbers, the most we keep. "
            "Delete one on the Saved numbers page first, or untick “Save”."
        )


class BeneficiaryNotFound(BeneficiaryError):
    def __init__(self) -> None:
        super().__init__("No such saved number.")


def clean_label(raw: str) -> str:
    """A label as typed, without control characters and runs of spaces (not yet length-checked)."""
    printable = "".join(ch if ch.isprintable() else " " for ch in raw)
    return " ".join(printable.split())


def label_problem(label: str) -> str | None:
    if len(label) > LABEL_MAX:
        return f"Keep the name to {LABEL_MAX} characters or fewer."
    return None


def service_for(kind: ServiceKind, service_id: str) -> str:
    """The form's service for a recipient bought on `service_id`: a phone topped up with MTN airtime is an
    MTN data customer too ("mtn" <-> "mtn-data"); '' when there is none."""
    bought = get_service(service_id)
    if bought is None:
        return ""
    if bought.kind is kind:
        return bought.service_id
    same = next((s for s in SERVICES if s.kind is kind and s.brand == bought.brand), None)
    return same.service_id if same else ""


@dataclass(frozen=True, slots=True)
class Offer:
    """One tappable recipient on a buy form: `fill` is what it puts in the form (data attribute, for
    static/js/beneficiaries.js), `href` the same form prefilled (GET, without JavaScript)."""

    recipient: str
    label: str
    detail: str  # network / disco / TV brand, and the verified name
    saved: bool
    fill: dict[str, str] = field(default_factory=dict)
    href: str = ""


def _offer(kind: ServiceKind, recipient: str, service_id: str, *, label: str, meter_type: str | None,
           customer_name: str | None, saved: bool) -> Offer:  # fmt: skip
    rkind = RECIPIENT_OF[kind]
    fill = {FIELD_OF[rkind]: recipient}
    if form_service := service_for(kind, service_id):
        fill["service_id"] = form_service
    if kind is ServiceKind.ELECTRICITY and meter_type in METER_TYPES:
        fill["meter_type"] = meter_type or ""
    service = get_service(form_service)
    parts = [service.brand if service else "", (customer_name or "").strip()]
    if kind is ServiceKind.ELECTRICITY and meter_type:
        parts.append(meter_type)
    return Offer(
        recipient=recipient,
        label=label,
        detail=" · ".join(p for p in parts if p),
        saved=saved,
        fill=fill,
        href=f"/buy/{kind.value}?{urlencode(fill)}",
    )


# The customer's latest purchases, newest first, one row per recipient. The inner LIMIT bounds the walk of
# ix_purchases_user_id_created_at whatever the customer's history holds.
_RECENTS = text(
    """
    SELECT recipient, service_id, variation_code, customer_name, created_at FROM (
      SELECT DISTINCT ON (recipient) recipient, service_id, variation_code, customer_name, created_at
      FROM (
        SELECT recipient, service_id, kind, status, variation_code, customer_name, created_at
        FROM purchases WHERE user_id = :user_id
        ORDER BY created_at DESC LIMIT :scan
      ) latest
      WHERE kind = ANY(:kinds) AND status IN ('successful', 'pending')
      ORDER BY recipient, created_at DESC
    ) one_each
    ORDER BY created_at DESC
    LIMIT :shown
    """
)


async def recents(session: AsyncSession, user_id: uuid.UUID, kind: ServiceKind) -> list[Any]:
    """Distinct recipients of the customer's latest purchases of this recipient kind, newest first."""
    kinds = [k.value for k in PRODUCTS_OF[RECIPIENT_OF[kind]]]
    rows = await session.execute(
        _RECENTS, {"user_id": user_id, "kinds": kinds, "scan": RECENT_SCAN, "shown": RECENT_SHOWN}
    )
    return list(rows)


# Built once (every buy form reads it: bench/README.md, "pages"); the kind is optional (NULL: all kinds).
_SAVED = (
    select(Beneficiary)
    .where(
        Beneficiary.user_id == bindparam("user_id"),
        or_(bindparam("kind", type_=String).is_(None), Beneficiary.kind == bindparam("kind", type_=String)),
    )
    .order_by(Beneficiary.kind, func.lower(Beneficiary.label), Beneficiary.recipient)
)


async def saved(session: AsyncSession, user_id: uuid.UUID, kind: str | None = None) -> list[Beneficiary]:
    """The customer's saved recipients (of one recipient kind, or all), by name then number."""
    return list((await session.execute(_SAVED, {"user_id": user_id, "kind": kind or None})).scalars())


async def offers(session: AsyncSession, user_id: uuid.UUID, kind: ServiceKind) -> list[Offer]:
    """What a buy form offers: the recent recipients (named when saved), then the other saved ones."""
    mine = {b.recipient: b for b in await saved(session, user_id, RECIPIENT_OF[kind])}
    out: list[Offer] = []
    for row in await recents(session, user_id, kind):
        own = mine.pop(row.recipient, None)
        meter_type = row.variation_code if kind is ServiceKind.ELECTRICITY else None
        name = row.customer_name or (own.customer_name if own else None)
        out.append(
            _offer(kind, row.recipient, row.service_id, label=own.label if own else "", meter_type=meter_type,
                   customer_name=name, saved=own is not None)
        )  # fmt: skip
    for own in mine.values():
        if len(out) >= OFFERS_SHOWN:
            break
        out.append(
            _offer(kind, own.recipient, own.service_id, label=own.label, meter_type=own.meter_type,
                   customer_name=own.customer_name, saved=True)
        )  # fmt: skip
    return out


async def count_saved(session: AsyncSession, user_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(Beneficiary).where(Beneficiary.user_id == user_id)
    return int((await session.execute(query)).scalar_one())


async def save_problem(session: AsyncSession, user_id: uuid.UUID, kind: ServiceKind, recipient: str,
                       label: str) -> str | None:  # fmt: skip
    """Why "Save this number" would be refused, checked before buying (the purchase is not made then)."""
    if problem := label_problem(label):
        return problem
    if await count_saved(session, user_id) < MAX_SAVED:
        return None
    query = select(Beneficiary.id).where(
        Beneficiary.user_id == user_id,
        Beneficiary.kind == RECIPIENT_OF[kind],
        Beneficiary.recipient == recipient,
    )
    already = (await session.execute(query)).first()
    return None if already else TooManySaved().message


async def remember(session: AsyncSession, user_id: uuid.UUID, purchase: Any, label: str) -> Beneficiary:
    """Save (or refresh) the recipient of an accepted purchase; a label given replaces the old one. One
    customer's saves run one at a time (a transaction advisory lock), so `MAX_SAVED` holds under races.
    Raises TooManySaved / BeneficiaryError; the caller commits."""
    if problem := label_problem(label):
        raise BeneficiaryError(problem)
    kind = ServiceKind(purchase.kind)
    rkind = RECIPIENT_OF[kind]
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"beneficiaries:{user_id}"}
    )
    query = select(Beneficiary).where(
        Beneficiary.user_id == user_id, Beneficiary.kind == rkind, Beneficiary.recipient == purchase.recipient
    )
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        if await count_saved(session, user_id) >= MAX_SAVED:
            raise TooManySaved()
        row = Beneficiary(user_id=user_id, kind=rkind, recipient=purchase.recipient)
        session.add(row)
    row.service_id = purchase.service_id
    row.meter_type = purchase.variation_code if kind is ServiceKind.ELECTRICITY else None
    if label:
        row.label = label
    if purchase.customer_name:
        row.customer_name = purchase.customer_name[:200]
    row.last_used_at = datetime.datetime.now(datetime.UTC)
    await session.flush()
    return row


async def _own(session: AsyncSession, user_id: uuid.UUID, beneficiary_id: uuid.UUID) -> Beneficiary:
    query = select(Beneficiary).where(Beneficiary.id == beneficiary_id, Beneficiary.user_id == user_id)
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:  # also another customer's: not even its existence is told
        raise BeneficiaryNotFound()
    return row


async def rename(
    session: AsyncSession, user_id: uuid.UUID, beneficiary_id: uuid.UUID, label: str
) -> Beneficiary:
    """Rename one of the customer's saved recipients ('' = no name). The caller commits."""
    row = await _own(session, user_id, beneficiary_id)
    if problem := label_problem(label):  # raised before any write
        raise BeneficiaryError(problem)
    row.label = label
    await session.flush()
    return row


async def delete(session: AsyncSession, user_id: uuid.UUID, beneficiary_id: uuid.UUID) -> Beneficiary:
    """Forget one of the customer's saved recipients. The caller commits."""
    row = await _own(session, user_id, beneficiary_id)
    await session.delete(row)
    await session.flush()
    return row


def buy_links(row: Beneficiary) -> list[tuple[str, str]]:
    """(product title, prefilled buy form) for a saved recipient, for the /beneficiaries page."""
    titles = {ServiceKind.AIRTIME: "Airtime", ServiceKind.DATA: "Data",
              ServiceKind.ELECTRICITY: "Electricity", ServiceKind.CABLE: "Cable TV"}  # fmt: skip
    out = []
    for kind in PRODUCTS_OF[row.kind]:
        offer = _offer(kind, row.recipient, row.service_id, label=row.label, meter_type=row.meter_type,
                       customer_name=row.customer_name, saved=True)  # fmt: skip
        out.append((titles[kind], offer.href))
    return out


def service_brand(service_id: str) -> str:
    service = get_service(service_id)
    return service.brand if service else service_id


__all__ = [
    "LABEL_MAX",
    "MAX_SAVED",
    "RECIPIENT_OF",
    "Beneficiary",
    "BeneficiaryError",
    "BeneficiaryNotFound",
    "Offer",
    "TooManySaved",
    "buy_links",
    "clean_label",
    "count_saved",
    "delete",
    "label_problem",
    "offers",
    "recents",
    "remember",
    "rename",
    "save_problem",
    "saved",
    "service_brand",
    "service_for",
]
