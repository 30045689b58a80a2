"""How a Monnify transfer is written in the ledger (the only place payments moves money)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.ledger.accounts import (
    EXPENSE_MONNIFY_FEES,
    MONNIFY_CLEARING,
    REVENUE_FUNDING_FEES,
    system_account_ids,
    wallet_account_id,
)
from app.ledger.posting import Leg, post_transaction


def funding_key(transaction_reference: str) -> str:
    return f"monnify:{transaction_reference}"


async def post_funding(
    session: AsyncSession,
    *,
    transaction_reference: str,
    user_id: uuid.UUID,
    wallet_id: int | None = None,
    amount_kobo: int,
    fee_kobo: int,
    monnify_charge_kobo: int,
    event_id: int,
) -> int:
    """Credit the customer with what they sent minus the platform's funding fee, exactly once.

    Legs: wallet +(amount - fee); funding-fee revenue +fee; Monnify's charge to its expense account;
    Monnify clearing -(amount - charge), i.e. what Monnify will settle to us.
    """
    system = await system_account_ids(session, (MONNIFY_CLEARING, REVENUE_FUNDING_FEES, EXPENSE_MONNIFY_FEES))
    wallet = wallet_id if wallet_id is not None else await wallet_account_id(session, user_id)
    legs = [
        Leg(wallet, amount_kobo - fee_kobo),
        Leg(system[REVENUE_FUNDING_FEES], fee_kobo),
        Leg(system[EXPENSE_MONNIFY_FEES], -monnify_charge_kobo),
        Leg(system[MONNIFY_CLEARING], -(amount_kobo - monnify_charge_kobo)),
    ]
    result = await post_transaction(
        session,
        key=funding_key(transaction_reference),
        kind="funding",
        legs=[leg for leg in legs if leg.amount != 0],
        memo=f"Bank transfer {transaction_reference}"[:255],
        reference=("monnify_event", event_id),
        created_by="monnify-webhook",
    )
    return result.transaction_id
