"""Every route handler of the application, domain by domain."""

from __future__ import annotations

from typing import Any


def route_handlers(*, dev_pages: bool = False) -> list[Any]:
    from app.accounts.apikey_pages import ApiKeyController
    from app.accounts.controllers import AccountController
    from app.accounts.kyc_pages import KycController
    from app.accounts.pin_pages import PinController
    from app.accounts.recovery_pages import RecoveryController
    from app.api.controllers import api_router
    from app.api.guide import ApiGuideController
    from app.core.controllers import CoreController
    from app.core.pwa import PwaController
    from app.core.static import serve_static
    from app.dashboard.adjustments import StaffAdjustmentController
    from app.dashboard.apikeys import StaffApiKeyController
    from app.dashboard.audit import StaffAuditController
    from app.dashboard.controllers import StaffController
    from app.dashboard.funding import StaffFundingController
    from app.dashboard.plans import StaffPlanController
    from app.dashboard.providers import StaffProviderController
    from app.dashboard.purchases import StaffPurchaseController
    from app.dashboard.queue_ui import SaqUiAssets, SaqUiController
    from app.dashboard.unmatched import StaffUnmatchedController
    from app.dashboard.users import StaffUserController
    from app.ledger.pages import StatementController
    from app.mail.pages import DevMailController, NotificationsController
    from app.payments.controllers import FundingController, MonnifyWebhookController
    from app.referrals.controllers import ReferralController
    from app.vtu.beneficiary_pages import BeneficiaryController
    from app.vtu.bulk_pages import BulkPagesController
    from app.vtu.controllers import ClubKonnectCallbackController, VTpassCallbackController
    from app.vtu.pages import PurchasePagesController

    handlers = [
        CoreController,
        PwaController,  # /manifest.webmanifest, /sw.js, /offline (the installable app)
        AccountController,
        RecoveryController,  # /password/forgot, /password/reset/<token>, /account/verify/<token>
        NotificationsController,  # /account/notifications
        PinController,
        KycController,  # /account/kyc: BVN / NIN and the KYC level
        StaffController,
        StaffPurchaseController,  # /staff/purchases
        StaffFundingController,  # /staff/funding
        StaffUnmatchedController,  # /staff/funding/unmatched
        StaffAdjustmentController,  # /staff/adjustments
        StaffPlanController,  # /staff/plans
        StaffProviderController,  # /staff/providers: routing order, breakers, float
        StaffAuditController,  # /staff/audit
        StaffUserController,  # /staff/users
        SaqUiController,  # /staff/queue/ui: SAQ's own job UI (admin)
        SaqUiAssets,
        FundingController,
        MonnifyWebhookController,
        VTpassCallbackController,
        ClubKonnectCallbackController,  # GET, unsigned: a secret URL, then a requery
        PurchasePagesController,  # /buy/*, /purchases
        BeneficiaryController,  # /beneficiaries: saved numbers, meters, smartcards
        BulkPagesController,  # /bulk: bulk airtime / data orders
        StatementController,  # /statement, /statement.csv
        ReferralController,
        api_router(),  # reseller API v1 (bearer keys)
        ApiGuideController,  # /api/guide: docs/api.md as a page
        ApiKeyController,
        StaffApiKeyController,
        serve_static,
    ]
    if dev_pages:
        handlers.append(DevMailController)  # /dev/mail: never routed in production
    return handlers
