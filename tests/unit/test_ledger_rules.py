"""Pure rules of the ledger package: leg validation, error translation, account codes, the report."""

from __future__ import annotations

import pytest

from app.ledger.accounts import (
    MONNIFY_CLEARING,
    SYSTEM_ACCOUNTS,
    provider_float,
    system_account_name,
    wallet_code,
)
from app.ledger.errors import (
    AppendOnlyViolation,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidPosting,
    UnbalancedTransaction,
    UnknownAccount,
    translate,
)
from app.ledger.posting import Leg, credit, debit, normalise_legs
from app.ledger.reconcile import MAX_REPORTED, Drift, ReconcileReport


def test_legs_are_sorted_by_account_for_a_fixed_lock_order():
    assert normalise_legs([Leg(9, -5), Leg(3, 2), Leg(5, 3)]) == ([3, 5, 9], [2, 3, -5])


def test_credit_and_debit_are_signed_legs():
    assert credit(4, 100) == Leg(4, 100)
    assert debit(4, 100) == Leg(4, -100)


@pytest.mark.parametrize(
    "legs",
    [
        [],
        [Leg(1, 5)],
        [Leg(1, 5), Leg(2, -4)],
        [Leg(1, 5), Leg(1, -5)],
        [Leg(1, 0), Leg(2, 0)],
        [Leg(0, 5), Leg(2, -5)],
        [Leg(1, 5.0), Leg(2, -5.0)],
        [Leg(1, "5"), Leg(2, "-5")],
    ],
)
def test_bad_legs_are_invalid(legs):
    with pytest.raises(InvalidPosting):
        normalise_legs(legs)


class _Driver(Exception):
    def __init__(self, sqlstate: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.sqlstate, self.message, self.detail = sqlstate, message, detail


class _Wrapped(Exception):
    """Shaped like SQLAlchemy's DBAPIError: .orig is the adapted error, caused by the driver's."""

    def __init__(self, driver: _Driver) -> None:
        super().__init__(str(driver))

        class Orig(Exception):
            sqlstate = driver.sqlstate

        self.orig = Orig()
        self.orig.__cause__ = driver


def test_sqlstates_become_typed_errors():
    funds = translate(_Wrapped(_Driver("LG001", "insufficient", "account=7 balance=50 amount=-100")))
    assert isinstance(funds, InsufficientFunds)
    assert (funds.account_id, funds.balance, funds.amount) == (7, 50, -100)
    conflict = translate(_Wrapped(_Driver("LG002", "used", "transaction 42")), key="k")
    assert isinstance(conflict, IdempotencyConflict) and (conflict.key, conflict.transaction_id) == ("k", 42)
    assert isinstance(translate(_Wrapped(_Driver("LG003", "x"))), UnknownAccount)
    assert isinstance(translate(_Wrapped(_Driver("LG004", "x"))), UnbalancedTransaction)
    assert isinstance(translate(_Wrapped(_Driver("LG005", "x"))), AppendOnlyViolation)
    assert translate(_Wrapped(_Driver("23505", "duplicate"))) is None
    assert translate(ValueError("not a database error")) is None


def test_account_codes():
    assert provider_float("vtpass") == "provider_float:vtpass"
    assert system_account_name("provider_float:stub") == "Provider float: stub"
    assert system_account_name(MONNIFY_CLEARING) == SYSTEM_ACCOUNTS[MONNIFY_CLEARING]
    for bad in ("provider_float:", "provider_float:Bad Slug", "wallet:x", "anything"):
        with pytest.raises(ValueError):
            system_account_name(bad)
    with pytest.raises(ValueError):
        provider_float("../etc")
    assert all(len(code) <= 64 for code in SYSTEM_ACCOUNTS)
    assert len(wallet_code(__import__("uuid").uuid4())) <= 64


def test_report_lines_cap_the_drift_list_but_not_the_count():
    report = ReconcileReport(accounts_checked=3, wallets_checked=2, transactions_checked=4, entries_checked=9)
    assert report.ok and report.lines()[0] == "ledger reconcile: OK"
    for i in range(MAX_REPORTED + 5):
        report.add(Drift("wallet_balance", f"account {i}", "off"))
    lines = report.lines()
    assert not report.ok and lines[0] == "ledger reconcile: DRIFT"
    assert f"drift: {MAX_REPORTED + 5}" in "\n".join(lines)
    assert lines[-1] == "    ... and 5 more"
