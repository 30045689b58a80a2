"""The ledger accounts of a purchase's money movements. Money moves only through the ledger's one posting
statement (ledger_post), called by the purchase's one-statement SQL functions (app/vtu/sql/purchases.sql)
inside the transaction that changes the purchase's status, so status and money never disagree:
`purchase_open` (the debit), `purchase_deliver` (the delivery), `purchase_fail` and `purchase_reverse` (the
refund). Python passes them the account ids below and keeps no copy of their legs.

Signs follow the ledger: a positive leg raises an account's balance; a wallet's balance is what we owe the
customer. Keys make every movement happen at most once per purchase:
- `purchase:<id>`  wallet -> purchases in flight (the price)
- `delivery:<id>`  in flight -> provider float (cost) + revenue (margin, may be negative)
- `refund:<id>`    back to the wallet, from wherever the money is: in flight (failed, or reversed before we
                   saw it delivered) or provider float + revenue (reversed after delivery)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.ledger.accounts import (
    PURCHASES_IN_FLIGHT,
    REVENUE_COMMISSION,
    provider_float,
    resolve_accounts,
)
from app.vtu.views import Executor


@dataclass(frozen=True, slots=True)
class PurchaseAccounts:
    """The four ledger accounts a purchase can touch. Account ids never change (the ledger forbids it), so
    the ids resolved for the debit are reused for the same purchase's delivery or refund moments later."""

    wallet: int
    in_flight: int
    provider_float: int
    revenue: int


async def purchase_accounts(session: Executor, user_id: uuid.UUID, provider_slug: str) -> PurchaseAccounts:
    """All four ids in one query (creating a missing system account on first use)."""
    codes = [PURCHASES_IN_FLIGHT, provider_float(provider_slug), REVENUE_COMMISSION]
    found = await resolve_accounts(session, system=codes, wallets=[user_id])
    return PurchaseAccounts(found.wallets[user_id], *(found.system[c] for c in codes))


__all__ = ["PurchaseAccounts", "purchase_accounts"]
