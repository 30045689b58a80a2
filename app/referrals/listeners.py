"""Subscriptions to the money events (app.core.events): each runs inside the transaction that moved the
customer's money, so a bonus commits or rolls back with the credit or the delivery that earned it.

Never raise for business reasons (no referrer, cap reached, rules misconfigured): return. An unexpected
error does propagate, which aborts the caller's transaction; its owner retries it (the funding sweep, the
purchase requery), and the keys make the retry pay once.
"""

from __future__ import annotations

from typing import Any

import structlog

from app.core.events import (
    EMAIL_VERIFIED,
    PURCHASE_SETTLED,
    WALLET_FUNDED,
    EmailVerified,
    PurchaseSettled,
    WalletFunded,
)
from app.referrals import rules, service
from app.referrals.config import ReferralConfig, ReferralConfigError, current_config

log = structlog.get_logger("app.referrals")

SUCCESSFUL = "successful"
REVERSED = "reversed"


def _rules() -> ReferralConfig | None:
    try:
        return current_config()
    except ReferralConfigError as exc:  # validated at start-up; never block money on a bad setting
        log.error("referral_config_invalid", error=str(exc), alert=True)
        return None


@WALLET_FUNDED.connect
async def on_wallet_funded(session: Any, event: WalletFunded) -> None:
    config = _rules()
    if config is not None:
        await service.award_funding_bonus(session, event, config)


def _settlement_matters(event: PurchaseSettled) -> bool:
    """A delivered sale whose margin earns a share under the current rules, or a reversal of a delivered
    sale (whose bonus, if any, is taken back). Anything else needs no database work here."""
    if event.status == SUCCESSFUL:
        config = _rules()
        return config is not None and rules.margin_share_of(config, event.margin_kobo) > 0
    return event.status == REVERSED and event.previous_status == SUCCESSFUL


@PURCHASE_SETTLED.connect_when(_settlement_matters)
async def on_purchase_settled(conn: Any, event: PurchaseSettled) -> None:
    if event.status == SUCCESSFUL:
        config = _rules()
        if config is not None:
            await service.award_margin_share(conn, event, config)
    elif event.status == REVERSED and event.previous_status == SUCCESSFUL:
        # Taken back whatever the rules are now: the bonus was paid for a sale that did not happen.
        await service.claw_back(conn, event)
    # failed, or reversed before we ever saw it delivered: no bonus was paid, nothing to do.


@EMAIL_VERIFIED.connect
async def on_email_verified(session: Any, event: EmailVerified) -> None:
    """Bonuses withheld while the friend was unverified are paid now, in the verifying transaction."""
    config = _rules()
    if config is not None:
        await service.release_withheld(session, event, config)


__all__ = ["on_email_verified", "on_purchase_settled", "on_wallet_funded"]
