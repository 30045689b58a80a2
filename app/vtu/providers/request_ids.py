"""VTpass request ids: 12 digits of Lagos time (YYYYMMDDHHII) then a random suffix.

VTpass rejects an id whose date prefix is not today's Lagos date (code 085), so the prefix is always computed
in Africa/Lagos, never in server-local time or UTC.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

from app.core.lagos import LAGOS

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits  # lower case: ids are compared case-sensitively
SUFFIX_LENGTH = 12
MAX_LENGTH = 36


def lagos_prefix(now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:  # naive datetimes are UTC in this code base
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LAGOS).strftime("%Y%m%d%H%M")


def new_request_id(now: datetime | None = None) -> str:
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))
    return lagos_prefix(now) + suffix


def request_id_time(request_id: str) -> datetime | None:
    """The Lagos time encoded in a request id's prefix, or None when it has no valid prefix."""
    prefix = request_id[:12]
    if len(prefix) != 12 or not prefix.isdigit():
        return None
    try:
        return datetime.strptime(prefix, "%Y%m%d%H%M").replace(tzinfo=LAGOS)
    except ValueError:
        return None
