"""Lagos time (WAT, UTC+1, no daylight saving): what customers, staff and VTpass's request ids count in.
"Today" everywhere in the product starts at Lagos midnight."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

LAGOS = ZoneInfo("Africa/Lagos")


def lagos_midnight(now: datetime.datetime) -> datetime.datetime:
    """The start of `now`'s day in Lagos, as an aware datetime."""
    return now.astimezone(LAGOS).replace(hour=0, minute=0, second=0, microsecond=0)


__all__ = ["LAGOS", "lagos_midnight"]
