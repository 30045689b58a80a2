"""The outbox (`outgoing_mail`: one row per e-mail, ever) and each customer's e-mail preferences."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

QUEUED = "queued"  # waiting for the worker (or for its retry)
SENT = "sent"  # accepted by the SMTP server
SUPPRESSED = "suppressed"  # the customer turned this kind of e-mail off: recorded, never sent
FAILED = "failed"  # gave up after the last attempt
EXPIRED = "expired"  # its link expired before it could be sent (nothing worth sending any more)
STATUSES = (QUEUED, SENT, SUPPRESSED, FAILED, EXPIRED)


class OutgoingMail(DefaultBase):
    """One e-mail. `dedupe_key` names the event it tells about (`funding:<transfer>`, `receipt:<purchase>`,
    `reset:<token id>` ...): inserting it ON CONFLICT DO NOTHING is what makes one event mail once.

    The body is rendered by the worker from `template` + `context` when it sends. A context holding a
    secret link (`sensitive`) is emptied as soon as the mail is sent, expires or is given up."""

    __tablename__ = "outgoing_mail"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        Index("ix_outgoing_mail_queued", "created_at", postgresql_where=text("status = 'queued'")),
        Index("ix_outgoing_mail_user_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(start=1, increment=1), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), default=None
    )
    to_address: Mapped[str] = mapped_column(String(254))
    template: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    sensitive: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'queued'"))
    subject: Mapped[str] = mapped_column(String(200), server_default=text("''"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    # A worker that took the mail owns it until then (two jobs for one mail never send it twice at once).
    claimed_until: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # Not worth sending after this (a reset link that has expired).
    expires_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )
    sent_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class MailPreferences(DefaultBase):
    """What a customer wants to be e-mailed about. No row = everything on (the defaults)."""

    __tablename__ = "mail_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    funding: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    purchase: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    password: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    api_key: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )


__all__ = [
    "EXPIRED",
    "FAILED",
    "QUEUED",
    "SENT",
    "STATUSES",
    "SUPPRESSED",
    "MailPreferences",
    "OutgoingMail",
]
