"""When /pay may still be on its way, and from when VTpass's 015 "unknown request id" can be final."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.vtu.models import PENDING, SUCCESSFUL
from app.vtu.providers.http import longest_wait
from app.vtu.settlement import PAY_START_LIMIT, pay_in_flight, unknown_request_anchor
from app.vtu.views import FIELD_NAMES, PurchaseView

PAID = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
LONGEST = timedelta(seconds=95)  # VTpass: pool 30 + connect 5 + write 30 + read 30


def purchase(*exchanges: dict[str, Any], status: str = PENDING) -> PurchaseView:
    values: dict[str, Any] = dict.fromkeys(FIELD_NAMES)
    values |= {"id": uuid.uuid4(), "status": status, "paid_at": PAID, "exchanges": list(exchanges)}
    return PurchaseView.from_mapping(values)


def pay(started: timedelta, finished: timedelta | None) -> dict[str, Any]:
    record = {"kind": "pay", "at": (PAID + started).isoformat()}
    if finished is not None:
        record["finished_at"] = (PAID + finished).isoformat()
    return record


def test_longest_wait_adds_every_phase_of_a_request() -> None:
    assert longest_wait(httpx.Timeout(connect=5, read=30, write=30, pool=30)) == 95
    with pytest.raises(ValueError):
        longest_wait(httpx.Timeout(None))


def test_a_pay_answered_or_failed_starts_the_grace_when_it_finished() -> None:
    done = purchase(pay(timedelta(seconds=1), timedelta(seconds=70)))  # 69 s in the client's pool, then 503
    assert unknown_request_anchor(done, LONGEST) == PAID + timedelta(seconds=70)
    assert not pay_in_flight(done, LONGEST, PAID + timedelta(seconds=2))


def test_without_a_logged_pay_the_grace_starts_when_pay_must_be_over() -> None:
    waiting = purchase()
    deadline = PAID + PAY_START_LIMIT + LONGEST
    assert unknown_request_anchor(waiting, LONGEST) == deadline
    assert pay_in_flight(waiting, LONGEST, PAID + timedelta(seconds=45))
    assert not pay_in_flight(waiting, LONGEST, deadline)  # the process died: the sweep may take it now
    assert not pay_in_flight(dataclasses.replace(waiting, status=SUCCESSFUL), LONGEST, PAID)


def test_a_pay_logged_before_finished_at_existed_counts_as_finished_at_its_longest() -> None:
    legacy = purchase(pay(timedelta(seconds=1), None), {"kind": "requery", "at": PAID.isoformat()})
    assert unknown_request_anchor(legacy, LONGEST) == PAID + timedelta(seconds=1) + LONGEST


def test_no_paid_at_means_015_is_never_final() -> None:
    unknown = dataclasses.replace(purchase(), paid_at=None)
    assert unknown_request_anchor(unknown, LONGEST) is None
    assert not pay_in_flight(unknown, LONGEST, PAID)
