"""Keyset paging on (created_at, id), newest first: page N costs the same as page 1, and rows made in the
same microsecond are neither skipped nor repeated. One cursor format for every list that pages this way
(the customer's purchase history, the staff purchase console): microseconds since the epoch (PostgreSQL's
precision) and the id's hex, e.g. `1796609530773000.0193a2c4...` -- URL-safe and exact. Lists keyed by a
growing BIGINT id (funding events, the audit log) page on the id alone: `decode_id`."""

from __future__ import annotations

import datetime
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal, tuple_
from sqlalchemy.sql.elements import ColumnElement

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_CURSOR = re.compile(r"^([0-9]{1,20})\.([0-9a-f]{32})$")


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last row of a page: the next page starts just after (older than) it."""

    created_at: datetime.datetime
    id: uuid.UUID

    def encode(self) -> str:
        micros = (self.created_at - _EPOCH) // datetime.timedelta(microseconds=1)
        return f"{micros}.{self.id.hex}"

    @classmethod
    def decode(cls, raw: str | None) -> Cursor | None:
        """None for a missing or malformed cursor (the list then starts at its first page)."""
        match = _CURSOR.fullmatch((raw or "").strip())
        if match is None:
            return None
        try:
            at = _EPOCH + datetime.timedelta(microseconds=int(match.group(1)))
        except OverflowError:
            return None
        return cls(at, uuid.UUID(hex=match.group(2)))

    @classmethod
    def after(cls, row: Any) -> str:
        """The encoded cursor of a row with `created_at` and `id`."""
        return cls(row.created_at, row.id).encode()


def older_than(created_at: Any, id_: Any, cursor: Cursor) -> ColumnElement[bool]:
    """`(created_at, id) < cursor`: one row-value comparison the (created_at, id) indexes serve."""
    return tuple_(created_at, id_) < tuple_(
        literal(cursor.created_at, created_at.type), literal(cursor.id, id_.type)
    )


# Lists keyed by a BIGINT identity (Monnify events, the audit log) page on the id alone, newest first: ids
# only grow, so `id < cursor` is the whole condition and the cursor is the last id shown.
MAX_BIGINT = 2**63 - 1
_ID_CURSOR = re.compile(r"^[0-9]{1,19}$")  # ASCII digits only: \d also matches "١٢"


def decode_id(raw: str | None) -> int | None:
    """The id in a `before=<id>` cursor; None for a missing, malformed or out-of-range one."""
    value = (raw or "").strip()
    if not _ID_CURSOR.fullmatch(value):
        return None
    number = int(value)
    return number if 0 < number <= MAX_BIGINT else None


__all__ = ["MAX_BIGINT", "Cursor", "decode_id", "older_than"]
