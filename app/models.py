"""Imports every domain's models so Alembic and the app see one complete metadata."""

from app.accounts.apikeys import ApiKey
from app.accounts.models import User
from app.api.models import ApiCallbackDelivery
from app.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from app.payments.models import MonnifyEvent, ReservedAccount, ReservedBankAccount
from app.referrals.models import Referral, ReferralBonus
from app.vtu.models import Plan, PlanPriceChange, PriceRule, Purchase

__all__ = [
    "ApiCallbackDelivery",
    "ApiKey",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "MonnifyEvent",
    "Plan",
    "PlanPriceChange",
    "PriceRule",
    "Purchase",
    "Referral",
    "ReferralBonus",
    "ReservedAccount",
    "ReservedBankAccount",
    "User",
]
