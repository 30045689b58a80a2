from __future__ import annotations

import pytest

from app.core.validation import InvalidPhone, format_naira, normalise_email, normalise_phone, password_problem


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("08031234567", "08031234567"),
        ("+2348031234567", "08031234567"),
        ("2349051234567", "09051234567"),
        ("0803 123 4567", "08031234567"),
        ("07061234567", "07061234567"),
    ],
)
def test_nigerian_numbers_normalise(raw, expected):
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "12345", "0803123456", "080312345678", "+14155550100", "06031234567", "abc"]
)
def test_bad_numbers_are_refused(raw):
    with pytest.raises(InvalidPhone):
        normalise_phone(raw)


def test_sandbox_numbers_only_when_allowed():
    assert normalise_phone("201000000000", allow_sandbox=True) == "201000000000"
    with pytest.raises(InvalidPhone):
        normalise_phone("201000000000")


def test_email_and_password_rules():
    assert normalise_email("  Ada@Example.NG ") == "ada@example.ng"
    with pytest.raises(ValueError):
        normalise_email("ada@")
    assert password_problem("short") is not None
    assert password_problem("12345678") is not None
    assert password_problem("a-decent-pass") is None


@pytest.mark.parametrize(
    ("kobo", "text"),
    [(0, "₦0.00"), (5, "₦0.05"), (123450, "₦1,234.50"), (-100, "-₦1.00"), (10**12, "₦10,000,000,000.00")],
)
def test_naira_display(kobo, text):
    assert format_naira(kobo) == text
