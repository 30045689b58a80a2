"""The purchase engine's money movements, all through the ledger's one posting statement (ledger_post),
inside the transaction that changes the purchase's status, so status and money never disagree.

The two movements of every sale run inside one-statement SQL functions (0009 migration), which call
ledger_post with these legs: `purchase_open` (the debit) and `purchase_deliver` (the delivery). The refund
below is posted from Python through app.ledger.post_transaction.

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
from app.ledger.posting import Leg, PostingResult, post_transaction
from app.vtu.views import Executor


def _legs(*pairs: tuple[int, int]) -> list[Leg]:
    """Legs without zero amounts (a zero margin or cost is simply not posted)."""
    return [Leg(account, amount) for account, amount in pairs if amount != 0]


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


async def post_refund(
    session: Executor,
    *,
    purchase_id: uuid.UUID,
    user_id: uuid.UUID,
    amount_kobo: int,
    cost_kobo: int,
    provider_slug: str,
    delivered: bool,
    memo: str,
    accounts: PurchaseAccounts | None = None,
) -> PostingResult:
    """Give the price back once (key refund:<id>), undoing the delivery split if there was one."""
    a = accounts or await purchase_accounts(session, user_id, provider_slug)
    if delivered:
        legs = _legs(
            (a.provider_float, -cost_kobo), (a.revenue, cost_kobo - amount_kobo), (a.wallet, amount_kobo)
        )
    else:
        legs = _legs((a.in_flight, -amount_kobo), (a.wallet, amount_kobo))
    return await post_transaction(
        session,
        key=f"refund:{purchase_id}",
        kind="purchase_refund",
        legs=legs,
        memo=memo[:255],
        reference=("purchase", purchase_id),
    )


__all__ = ["PurchaseAccounts", "post_refund", "purchase_accounts"]
