"""Ledger accounts: stable codes for the system accounts, and the customer wallet opened at sign-up.

Accounts are created idempotently (get-or-create, safe when two requests race) by the SQL functions
`ledger_open_wallet` and `ledger_open_system_account` (app/ledger/sql/ledger.sql): the application's database
role cannot insert into the ledger tables itself, and a wallet can only be opened empty. They are never
deleted or re-addressed (the database rejects it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text

from app.accounts.hooks import on_user_created
from app.ledger.errors import UnknownAccount
from app.ledger.models import LedgerAccount

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    Session = AsyncSession | AsyncConnection

# Money received by Monnify for us, not yet settled to the bank (asset; credits to wallets come from here).
MONNIFY_CLEARING = "monnify_clearing"
# Customer money taken for purchases that the provider has not confirmed yet (refunds come back from here).
PURCHASES_IN_FLIGHT = "purchases_in_flight"
# The platform's margin on purchases (price charged minus what the provider float paid).
REVENUE_COMMISSION = "revenue:commission"
# Funding fees charged to customers (FUNDING_FEE_*).
REVENUE_FUNDING_FEES = "revenue:funding_fees"
# Monnify's own charge on a transfer: the platform's cost, never the customer's.
EXPENSE_MONNIFY_FEES = "expense:monnify_fees"
# Referral bonuses paid into referrers' wallets.
EXPENSE_REFERRALS = "expense:referral_bonuses"
# The other side of every manual staff correction.
STAFF_ADJUSTMENTS = "staff_adjustments"
# Money that arrived but cannot be placed yet (e.g. a transfer for an unknown account reference).
SUSPENSE = "suspense"
PROVIDER_FLOAT_PREFIX = "provider_float:"
WALLET_PREFIX = "wallet:"

SYSTEM_ACCOUNTS: dict[str, str] = {
    MONNIFY_CLEARING: "Monnify clearing",
    PURCHASES_IN_FLIGHT: "Purchases in flight",
    REVENUE_COMMISSION: "Revenue: purchase commission",
    REVENUE_FUNDING_FEES: "Revenue: funding fees",
    EXPENSE_MONNIFY_FEES: "Expense: Monnify fees",
    EXPENSE_REFERRALS: "Expense: referral bonuses",
    STAFF_ADJUSTMENTS: "Staff adjustments",
    SUSPENSE: "Suspense",
}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")


def provider_float(slug: str) -> str:
    """Code of a provider's float account (our prepaid balance there), e.g. provider_float:vtpass."""
    if not _SLUG.match(slug):
        raise ValueError(f"invalid provider slug {slug!r}")
    return PROVIDER_FLOAT_PREFIX + slug


def system_account_name(code: str) -> str:
    """Display name of a system account code; raises ValueError for a code that is not a system account."""
    if code in SYSTEM_ACCOUNTS:
        return SYSTEM_ACCOUNTS[code]
    if code.startswith(PROVIDER_FLOAT_PREFIX) and _SLUG.match(code.removeprefix(PROVIDER_FLOAT_PREFIX)):
        return f"Provider float: {code.removeprefix(PROVIDER_FLOAT_PREFIX)}"
    raise ValueError(f"unknown system account code {code!r}")


def wallet_code(user_id: uuid.UUID) -> str:
    return f"{WALLET_PREFIX}{user_id}"


@dataclass(frozen=True, slots=True)
class AccountIds:
    system: dict[str, int]  # system code -> account id
    wallets: dict[uuid.UUID, int]  # user id -> wallet account id


async def resolve_accounts(
    session: Session, *, system: Iterable[str] = (), wallets: Iterable[uuid.UUID] = ()
) -> AccountIds:
    """Ids of system accounts (by code) and users' wallets in ONE query, creating any that are missing.

    Race-safe: missing rows are inserted with ON CONFLICT DO NOTHING and then read back in a separate
    statement, which under READ COMMITTED also sees a row a concurrent request has just committed.
    """
    names = {code: system_account_name(code) for code in system}
    owners = {wallet_code(user_id): user_id for user_id in wallets}
    wanted = [*names, *owners]
    if not wanted:
        return AccountIds(system={}, wallets={})
    found = await _ids_by_code(session, wanted)
    missing = [code for code in wanted if code not in found]
    if missing:
        # One statement (on an autocommit connection the accounts a purchase needs appear together), in
        # code order, so two openers never wait on each other in opposite orders.
        statement, params = _open_accounts(
            [(code, names.get(code), owners.get(code)) for code in sorted(missing)]
        )
        found.update({code: account_id for code, account_id in await session.execute(statement, params)})
        if absent := [code for code in wanted if code not in found]:
            raise UnknownAccount(f"ledger accounts could not be opened: {', '.join(absent)}")
    return AccountIds(
        system={code: found[code] for code in names},
        wallets={user_id: found[code] for code, user_id in owners.items()},
    )


async def system_account_ids(session: Session, codes: Iterable[str]) -> dict[str, int]:
    """Ids of system accounts by code, creating the missing ones. One SELECT when they all exist."""
    return (await resolve_accounts(session, system=codes)).system


async def system_account_id(session: Session, code: str) -> int:
    return (await resolve_accounts(session, system=[code])).system[code]


async def wallet_account_id(session: Session, user_id: uuid.UUID) -> int:
    """The id of the user's wallet (every user gets one at sign-up; opened here if it is missing)."""
    return (await resolve_accounts(session, wallets=[user_id])).wallets[user_id]


async def open_wallet(session: Session, user_id: uuid.UUID) -> int:
    """The user's wallet account id, creating the (empty) wallet if it does not exist yet."""
    return await wallet_account_id(session, user_id)


def _open_accounts(rows: list[tuple[str, str | None, uuid.UUID | None]]) -> tuple[Any, dict[str, Any]]:
    """`SELECT code, id` opening each (code, system name, wallet owner) through the SQL functions, one row of
    scalar parameters each, in the order given."""
    values, params = [], {}
    for n, (code, name, user_id) in enumerate(rows):
        values.append(f"(CAST(:c{n} AS text), CAST(:n{n} AS text), CAST(:u{n} AS uuid), {n})")
        params.update({f"c{n}": code, f"n{n}": name, f"u{n}": user_id})
    rows_sql = ", ".join(values)  # placeholders only: every value is a bound parameter
    statement = text(
        "SELECT v.code, CASE WHEN v.user_id IS NULL THEN ledger_open_system_account(v.code, v.name)"  # noqa: S608
        " ELSE ledger_open_wallet(v.user_id) END AS id"
        f" FROM (VALUES {rows_sql}) AS v(code, name, user_id, n) ORDER BY v.n"
    )
    return statement, params


_OPEN_WALLET = text("SELECT ledger_open_wallet(:user_id)")


async def _ids_by_code(session: Session, codes: list[str]) -> dict[str, int]:
    rows = await session.execute(
        select(LedgerAccount.code, LedgerAccount.id).where(LedgerAccount.code.in_(codes))
    )
    return {code: account_id for code, account_id in rows}


@on_user_created
async def open_wallet_for_new_user(session: Any, user: Any) -> None:
    """Sign-up hook: the wallet is opened (empty) in the same transaction as the user."""
    await session.execute(_OPEN_WALLET, {"user_id": user.id})


__all__ = [
    "EXPENSE_MONNIFY_FEES",
    "EXPENSE_REFERRALS",
    "MONNIFY_CLEARING",
    "PURCHASES_IN_FLIGHT",
    "REVENUE_COMMISSION",
    "REVENUE_FUNDING_FEES",
    "STAFF_ADJUSTMENTS",
    "SUSPENSE",
    "SYSTEM_ACCOUNTS",
    "AccountIds",
    "open_wallet",
    "provider_float",
    "resolve_accounts",
    "system_account_id",
    "system_account_ids",
    "system_account_name",
    "wallet_account_id",
    "wallet_code",
]
