"""Double-entry, append-only wallet ledger. The only way money moves is `post_transaction` (see README.md).

Importing the package registers the sign-up hook that opens every new user's wallet (app.ledger.accounts).
"""

from app.ledger.accounts import resolve_accounts, system_account_id, system_account_ids, wallet_account_id
from app.ledger.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidPosting,
    LedgerError,
    UnknownAccount,
)
from app.ledger.posting import Leg, PostingResult, credit, debit, post_transaction, transfer
from app.ledger.queries import wallet_balance

__all__ = [
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidPosting",
    "LedgerError",
    "Leg",
    "PostingResult",
    "UnknownAccount",
    "credit",
    "debit",
    "post_transaction",
    "resolve_accounts",
    "system_account_id",
    "system_account_ids",
    "transfer",
    "wallet_account_id",
    "wallet_balance",
]
