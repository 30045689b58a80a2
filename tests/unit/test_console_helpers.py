"""Small shared helpers of the console: the BIGINT id cursor, the LIKE escaper, staff role ranks."""

from __future__ import annotations

import pytest

from app.accounts.staff_roles import may, needs, rank, role_of
from app.core.keyset import MAX_BIGINT, decode_id
from app.core.validation import escape_like
from tests.factories import UserFactory


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("42", 42), (" 7 ", 7), (str(MAX_BIGINT), MAX_BIGINT), (None, None), ("", None), ("0", None),
     ("-1", None), ("1.5", None), ("abc", None), (str(MAX_BIGINT + 1), None), ("9" * 20, None),
     ("\u0661\u0662", None)],
)  # fmt: skip
def test_id_cursor(raw: str | None, expected: int | None) -> None:
    assert decode_id(raw) == expected


def test_escape_like_makes_wildcards_literal() -> None:
    assert escape_like("50%_off\\") == "50\\%\\_off\\\\"
    assert escape_like("plain@example.ng") == "plain@example.ng"


def test_roles_include_the_ones_below() -> None:
    assert [rank(r) for r in (None, "customer", "support", "operations", "finance", "admin")] == [
        0,
        0,
        1,
        2,
        3,
        4,
    ]
    finance = UserFactory.build(is_staff=True, staff_role="finance")
    assert may(finance, "support") and may(finance, "operations") and may(finance, "finance")
    assert not may(finance, "admin")
    customer = UserFactory.build()
    assert role_of(customer) is None and not may(customer, "support")
    suspended = UserFactory.build(is_staff=True, staff_role="admin", suspended_reason="fraud")
    suspended.suspended_at = suspended.created_at
    assert role_of(suspended) is None
    with pytest.raises(ValueError, match="unknown staff role"):
        needs("superuser")
