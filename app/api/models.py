"""What became of each reseller completion callback: one row per (purchase, final status), written by the
delivery job. The sweep (`app.api.callbacks.sweep_api_callbacks`) re-enqueues finished API purchases that
have no row at all: their enqueue after commit was lost (Redis down at that moment, a process killed)."""

from __future__ import annotations

import datetime
import uuid

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column


class ApiCallbackDelivery(DefaultBase):
    __tablename__ = "api_callback_deliveries"

    purchase_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("purchases.id", ondelete="RESTRICT"), primary_key=True
    )
    final_status: Mapped[str] = mapped_column(String(16), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    delivered_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    # Set after the last attempt failed, or when there is nothing to deliver to (key revoked, URL removed).
    gave_up_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    last_error: Mapped[str | None] = mapped_column(String(255), default=None)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )
