"""Reading a pasted / uploaded bulk list (app/vtu/bulk.py `parse_text`): the columns, what is skipped, and the
lines that cannot be read, by their own line numbers. The purchase rules (phone format, limits, plans) are
checked afterwards by the purchase service (tests/integration/test_bulk_orders.py)."""

from __future__ import annotations

import pytest

from app.vtu.bulk import BulkInvalid, LineInput, csv_rows, parse_text


def test_airtime_lines_header_comments_and_separators() -> None:
    text = "\ufeffPhone,Amount\n\n# staff\n08031234567,500\n08051234567;1,000\n07011111111\t200\tGlo\n"
    inputs, errors = parse_text("airtime", text)
    assert errors == []
    assert inputs == [
        LineInput(4, "08031234567", None, amount_kobo=50_000),
        LineInput(5, "08051234567", None, amount_kobo=100_000),
        LineInput(6, "07011111111", "glo", amount_kobo=20_000),
    ]


def test_data_lines_take_the_plan_and_a_network_column() -> None:
    inputs, errors = parse_text("data", "08031234567,mtn-1gb-1day\n08091234567,9mob-1gb,9mobile")
    assert errors == []
    assert [(i.service_id, i.variation_code) for i in inputs] == [
        (None, "mtn-1gb-1day"),
        ("etisalat-data", "9mob-1gb"),
    ]


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("08031234567", "line", "phone,amount"),
        ("08031234567,500,mtn,extra", "line", "phone,amount"),
        (",500", "line", "phone,amount"),
        ("08031234567,50.50", "amount_kobo", "without kobo"),
        ("08031234567,five hundred", "amount_kobo", "digits"),
        ("08031234567,\u0665\u0660\u0660", "amount_kobo", "digits"),  # ASCII digits only
        ("08031234567,500,vodafone", "service_id", "Unknown network"),
    ],
)
def test_unreadable_lines_are_named(line: str, field: str, words: str) -> None:
    inputs, errors = parse_text("airtime", "08031234567,100\n" + line)
    assert len(inputs) == 1
    assert [(e.line_no, e.field) for e in errors] == [(2, field)]
    assert words in errors[0].message


def test_only_airtime_or_data() -> None:
    with pytest.raises(BulkInvalid, match="airtime or data"):
        parse_text("electricity", "1111111111111,500")


def test_csv_cells_never_start_a_formula() -> None:
    from app.vtu.bulk import BulkLineView, BulkView

    line = BulkLineView(1, "08031234567", "mtn-data", None, "x", "=HYPERLINK(\"x\")", 10_050, "failed",
                        "-oops", None, None, None)  # fmt: skip
    bulk = BulkView(None, None, "data", "web", "done", 1, 10_050, None, None, None, lines=[line])  # type: ignore[arg-type]
    assert csv_rows(bulk)[1] == ["1", "08031234567", '\'=HYPERLINK("x")', "100.50", "failed", "", "'-oops"]
