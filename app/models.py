"""Imports every domain's models so Alembic and the app see one complete metadata."""

from app.accounts.apikeys import ApiKey
from app.accounts.models import AccountToken, User
from app.alerts.models import Alert
from app.api.models import ApiCallbackDelivery
from app.audit.models import AuditEntry
from app.ledger.models import Adjustment, LedgerAccount, LedgerEntry, LedgerTransaction
from app.mail.models import MailPreferences, OutgoingMail
from app.payments.models import MonnifyEvent, ReservedAccount, ReservedBankAccount
from app.referrals.models import Referral, ReferralBonus
from app.vtu.beneficiaries import Beneficiary
from app.vtu.bulk_models import BulkOrder, BulkOrderLine
from app.vtu.models import Plan, PlanPriceChange, PriceRule, Purchase
from app.vtu.provider_routes import ProviderRoute

__all__ = [
    "AccountToken",
    "Adjustment",
    "Alert",
    "ApiCallbackDelivery",
    "ApiKey",
    "AuditEntry",
    "Beneficiary",
    "BulkOrder",
    "BulkOrderLine",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "MailPreferences",
    "MonnifyEvent",
    "OutgoingMail",
    "Plan",
    "PlanPriceChange",
    "PriceRule",
    "ProviderRoute",
    "Purchase",
    "Referral",
    "ReferralBonus",
    "ReservedAccount",
    "ReservedBankAccount",
    "User",
]
