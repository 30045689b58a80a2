from __future__ import annotations

import pytest

from app.core.naira import format_naira
from app.core.validation import InvalidPhone, normalise_email, normalise_phone, password_problem


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


@pytest.mark.parametrize(
    ("raw", "kobo"),
    [("1,500", 150_000), ("₦500", 50_000), ("500.00", 50_000), (" 7 ", 700), ("", None), ("  ", None)],
)
def test_whole_naira_typed_by_people(raw, kobo):
    from app.core.naira import parse_whole_naira

    assert parse_whole_naira(raw) == kobo


@pytest.mark.parametrize(
    ("raw", "message"), [("50.5", "without kobo"), ("abc", "digits only"), ("-5", "digits")]
)
def test_whole_naira_refusals_say_why(raw, message):
    from app.core.naira import parse_whole_naira

    with pytest.raises(ValueError, match=message):
        parse_whole_naira(raw)


def test_negative_whole_naira_only_when_allowed():
    from app.core.naira import amount_in_search, format_naira_short, parse_whole_naira

    assert parse_whole_naira("-5", allow_negative=True) == -500
    assert format_naira_short(100_000) == "₦1,000" and format_naira_short(1_250) == "₦12.50"
    assert amount_in_search("N5,000.50") == 500_050 and amount_in_search("ada@example.ng") is None


def test_numbers_in_other_scripts_are_not_digits_for_us() -> None:
    """Python's \\d and str.isdigit() accept Arabic-Indic and other digits; phones, meters, smartcards,
    amounts and cursors must be ASCII or be refused (a provider would fail them, or worse, misread them)."""
    import pytest as _pytest

    from app.core.naira import parse_whole_naira
    from app.core.validation import InvalidPhone, normalise_phone

    with _pytest.raises(InvalidPhone):
        normalise_phone("".join(chr(0x0660 + int(d)) for d in "08031234567"))
    with _pytest.raises(ValueError, match="digits only"):
        parse_whole_naira("\u0665\u0660\u0660")
