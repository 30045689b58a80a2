"""Every route handler of the application, domain by domain."""

from __future__ import annotations

from typing import Any


def route_handlers() -> list[Any]:
    from app.accounts.apikey_pages import ApiKeyController
    from app.accounts.controllers import AccountController
    from app.accounts.pin_pages import PinController
    from app.api.controllers import api_router
    from app.core.controllers import CoreController
    from app.core.static import serve_static
    from app.dashboard.apikeys import StaffApiKeyController
    from app.dashboard.controllers import StaffController
    from app.dashboard.funding import StaffFundingController
    from app.dashboard.plans import StaffPlanController
    from app.dashboard.purchases import StaffPurchaseController
    from app.payments.controllers import FundingController, MonnifyWebhookController
    from app.referrals.controllers import ReferralController
    from app.vtu.controllers import VTpassCallbackController
    from app.vtu.pages import PurchasePagesController

    return [
        CoreController,
        AccountController,
        PinController,
        StaffController,
        StaffPurchaseController,  # /staff/purchases
        StaffFundingController,  # /staff/funding
        StaffPlanController,  # /staff/plans
        FundingController,
        MonnifyWebhookController,
        VTpassCallbackController,
        PurchasePagesController,  # /buy/*, /purchases
        ReferralController,
        api_router(),  # reseller API v1 (bearer keys)
        ApiKeyController,
        StaffApiKeyController,
        serve_static,
    ]
