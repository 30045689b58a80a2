"""Imports every domain's models so Alembic and the app see one complete metadata."""

from app.accounts.models import User
from app.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from app.payments.models import MonnifyEvent, ReservedAccount, ReservedBankAccount
from app.vtu.models import Plan, PlanPriceChange, PriceRule, Purchase

__all__ = [
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "MonnifyEvent",
    "Plan",
    "PlanPriceChange",
    "PriceRule",
    "Purchase",
    "ReservedAccount",
    "ReservedBankAccount",
    "User",
]
