"""The bonus rules as pure functions (no I/O): who may earn, how much, and what a reversal takes back.

The listeners fetch the facts in one locked read and ask these functions; unit tests cover every branch
(tests/unit/test_referral_rules.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.referrals.config import ReferralConfig

# Why a bonus was not paid (logged at debug level; never raised: listeners run inside money transactions).
NO_REFERRER = "no_referrer"
SELF_REFERRAL = "self_referral"
REFERRER_INACTIVE = "referrer_inactive"
REFERRAL_LOOP = "referral_loop"
CAP_REACHED = "cap_reached"
NOTHING_TO_SHARE = "nothing_to_share"


@dataclass(frozen=True, slots=True)
class Link:
    """What the ledger-side decision needs to know about one referred user, read under their row lock."""

    referred_id: uuid.UUID
    referrer_id: uuid.UUID | None
    referrer_active: bool
    referrer_referred_by: uuid.UUID | None  # who referred the referrer (a loop if it is the referred user)
    earned_kobo: int  # what the referrer has earned from this referred user so far, net of claw-backs


@dataclass(frozen=True, slots=True)
class Decision:
    amount_kobo: int
    reason: str = ""  # why nothing is paid, when amount_kobo == 0

    def __bool__(self) -> bool:
        return self.amount_kobo > 0


def refusal(link: Link) -> str:
    """Why this link earns nothing at all (one level only: the referred user's own referrer, never the
    referrer's referrer), or "" when it may earn."""
    if link.referrer_id is None:
        return NO_REFERRER
    if link.referrer_id == link.referred_id:
        return SELF_REFERRAL
    if not link.referrer_active:
        return REFERRER_INACTIVE
    if link.referrer_referred_by == link.referred_id:
        return REFERRAL_LOOP  # A referred B and B referred A: neither earns from the other
    return ""


def _capped(config: ReferralConfig, link: Link, amount: int) -> Decision:
    if amount <= 0:
        return Decision(0, NOTHING_TO_SHARE)
    if why := refusal(link):
        return Decision(0, why)
    room = config.headroom(link.earned_kobo)
    if room is not None:
        amount = min(amount, room)
    return Decision(amount) if amount > 0 else Decision(0, CAP_REACHED)


def funding_qualifies(config: ReferralConfig, amount_paid_kobo: int) -> bool:
    """Whether a bank transfer of this size can pay the funding bonus (checked before any database work)."""
    return config.funding_bonus_kobo > 0 and amount_paid_kobo >= max(config.funding_min_kobo, 1)


def funding_bonus(config: ReferralConfig, link: Link, amount_paid_kobo: int) -> Decision:
    """The fixed bonus for the referred user's first transfer of at least the minimum (the caller makes
    sure it is the first: one bonus per referred user, ever), within the cap."""
    if not funding_qualifies(config, amount_paid_kobo):
        return Decision(0, NOTHING_TO_SHARE)
    return _capped(config, link, config.funding_bonus_kobo)


def withheld_funding_bonus(config: ReferralConfig, link: Link) -> Decision:
    """The funding bonus of a friend whose qualifying transfer arrived before they verified their e-mail,
    decided when they verify (under the rules and cap of that moment)."""
    if config.funding_bonus_kobo <= 0:
        return Decision(0, NOTHING_TO_SHARE)
    return _capped(config, link, config.funding_bonus_kobo)


def margin_share_of(config: ReferralConfig, margin_kobo: int) -> int:
    """The referrer's share of one purchase's margin, rounded down to the kobo (0 for no or negative
    margin, e.g. a reseller discount)."""
    if margin_kobo <= 0 or config.margin_bps <= 0:
        return 0
    return margin_kobo * config.margin_bps // 10_000


def margin_share(config: ReferralConfig, link: Link, margin_kobo: int) -> Decision:
    return _capped(config, link, margin_share_of(config, margin_kobo))


@dataclass(frozen=True, slots=True)
class Clawback:
    taken_kobo: int  # moved back from the referrer's wallet
    uncollected_kobo: int  # already spent: left for staff (a wallet never goes below zero)


def clawback(bonus_kobo: int, referrer_balance_kobo: int) -> Clawback:
    """A delivered purchase was reversed: take its bonus back, as far as the referrer's wallet covers it."""
    taken = max(0, min(bonus_kobo, referrer_balance_kobo))
    return Clawback(taken, max(0, bonus_kobo - taken))


def mask_email(email: str) -> str:
    """'adaeze@gmail.com' -> 'ad***@gmail.com': enough to recognise a friend, not to harvest addresses."""
    local, at, domain = email.partition("@")
    keep = 2 if len(local) > 3 else 1
    return f"{local[:keep]}***{at}{domain}" if at else f"{email[:keep]}***"


__all__ = [
    "CAP_REACHED",
    "NOTHING_TO_SHARE",
    "NO_REFERRER",
    "REFERRAL_LOOP",
    "REFERRER_INACTIVE",
    "SELF_REFERRAL",
    "Clawback",
    "Decision",
    "Link",
    "clawback",
    "funding_bonus",
    "funding_qualifies",
    "margin_share",
    "margin_share_of",
    "mask_email",
    "refusal",
    "withheld_funding_bonus",
]
