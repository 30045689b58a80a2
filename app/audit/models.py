"""One row per staff action: who, in which role, did what to which target, the state before and after, why,
when and from where. Append-only, enforced by the database (app/audit/sql/audit.sql)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ForeignKey, Identity, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column


class AuditEntry(DefaultBase):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_target", "target_type", "target_id", "at"),
        Index("ix_audit_log_actor", "actor_id", "at"),
        Index("ix_audit_log_action", "action", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=text("now()"))
    # The staff member (NULL for an operator's CLI command); e-mail and role as they were at the time.
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), default=None
    )
    actor: Mapped[str] = mapped_column(String(254))  # "ops@example.ng" or "cli:<os user>"
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))  # "purchase.resolve", "user.suspend", ...
    target_type: Mapped[str] = mapped_column(String(32))  # "purchase", "user", "funding_event", ...
    target_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    ip: Mapped[str | None] = mapped_column(String(45), default=None)


__all__ = ["AuditEntry"]
