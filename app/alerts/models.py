"""`alerts`: one row per occurrence of a condition (`key` = condition + subject). At most one open row per
key (the partial unique index `uq_alerts_open_key`): two checker runs at once raise it once."""

from __future__ import annotations

import datetime
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Identity, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column


class Alert(DefaultBase):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("uq_alerts_open_key", "key", unique=True, postgresql_where=text("cleared_at IS NULL")),
        Index("ix_alerts_opened_at", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    key: Mapped[str] = mapped_column(String(200))  # "pending_over_1h", "float_low:vtpass", ...
    opened_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    last_seen_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    cleared_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


__all__ = ["Alert"]
