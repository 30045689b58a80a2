from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from app.vtu.providers.request_ids import LAGOS, MAX_LENGTH, new_request_id, request_id_time


def test_prefix_is_lagos_time_not_utc() -> None:
    # 23:30 UTC is already the next day in Lagos (UTC+1)
    rid = new_request_id(datetime(2025, 1, 31, 23, 30, tzinfo=UTC))
    assert rid.startswith("202502010030")


def test_other_offsets_and_naive_utc_are_converted() -> None:
    assert new_request_id(datetime(2025, 6, 1, 10, 5, tzinfo=timezone(timedelta(hours=-5)))).startswith(
        "202506011605"
    )
    assert new_request_id(datetime(2025, 6, 1, 10, 5)).startswith("202506011105")


def test_shape_and_uniqueness() -> None:
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for rid in list(ids)[:50]:
        assert len(rid) <= MAX_LENGTH
        assert re.fullmatch(r"\d{12}[a-z0-9]{12}", rid)


def test_default_now_round_trips() -> None:
    stamped = request_id_time(new_request_id())
    assert stamped is not None and stamped.tzinfo == LAGOS
    assert abs(datetime.now(UTC) - stamped) < timedelta(minutes=2)


def test_request_id_time_rejects_bad_prefixes() -> None:
    assert request_id_time("abc") is None
    assert request_id_time("202513011200xyz") is None  # month 13
    assert request_id_time("202501011200xyz") == datetime(2025, 1, 1, 12, 0, tzinfo=LAGOS)
