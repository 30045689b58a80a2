"""Every route handler of the application, domain by domain."""

from __future__ import annotations

from typing import Any


def route_handlers() -> list[Any]:
    from app.accounts.controllers import AccountController
    from app.core.controllers import CoreController
    from app.core.static import serve_static
    from app.dashboard.controllers import StaffController
    from app.payments.controllers import FundingController, MonnifyWebhookController
    from app.vtu.controllers import VTpassCallbackController

    return [
        CoreController,
        AccountController,
        StaffController,
        FundingController,
        MonnifyWebhookController,
        VTpassCallbackController,
        serve_static,
    ]
