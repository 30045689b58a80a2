"""The ledger key of a Monnify transfer. The credit itself is one SQL function, `monnify_credit`
(app/payments/sql/funding.sql), used by the webhook's one-statement path and the worker alike."""

from __future__ import annotations


def funding_key(transaction_reference: str) -> str:
    """`monnify:<transactionReference>`: a transfer is credited once, whoever posts it (webhook, worker,
    staff)."""
    return f"monnify:{transaction_reference}"
