"""Paying referral bonuses, inside the money transaction of the event that earns them.

Called by the listeners (listeners.py) with the caller's session or connection; nothing here commits,
calls out, or raises for business reasons. Each bonus is at most three statements, and a user without a
referrer costs one primary-key probe on `referrals` that finds nothing:

1. lock the referred user's `referrals` row (SELECT ... FOR UPDATE, joined to both users and the
   referrer's wallet) -- per referred user, so the cap holds under any concurrency without a hot row;
2. record the bonus under its key (INSERT ... ON CONFLICT DO NOTHING) and add it to the row's running
   total, in one statement; a replayed event conflicts here and pays nothing;
3. post it through the ledger (`expense:referral_bonuses` -> referrer wallet) under the same key.

Bonuses for a friend who has not verified their e-mail yet are withheld (a funding bonus leaves a mark on
the referral row; a purchase is its own record) and paid by `release_withheld` in the transaction that
verifies them, under the same keys.

Keys: `referral:funding:<referred user id>` (one funding bonus per referred user, ever),
`referral:purchase:<purchase id>`, `referral:clawback:<purchase id>`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.events import EmailVerified, PurchaseSettled, WalletFunded
from app.ledger.accounts import EXPENSE_REFERRALS, resolve_accounts
from app.ledger.posting import transfer
from app.referrals import rules
from app.referrals.config import ReferralConfig
from app.referrals.models import CLAWBACK, FUNDING, PURCHASE

log = structlog.get_logger("app.referrals")

Executor = AsyncSession | AsyncConnection
CREATED_BY = "referrals"


def funding_key(referred_id: uuid.UUID) -> str:
    return f"referral:funding:{referred_id}"


def purchase_key(purchase_id: uuid.UUID) -> str:
    return f"referral:purchase:{purchase_id}"


def clawback_key(purchase_id: uuid.UUID) -> str:
    return f"referral:clawback:{purchase_id}"


# Statement 1: the referred user's row, locked, with everything the rules need. A user without a referrer
# has no row: one index probe, nothing locked. `funding` skips users whose funding bonus is already paid
# and `cap` skips users who are at their cap, before any lock is taken.
_LOCK_LINK = text(
    """
    SELECT r.earned_kobo, r.referred_verified_at, r.funding_withheld_at, r.funding_bonus_at,
           u.email AS referred_email, u.referred_by_id AS referrer_id,
           coalesce(ref.is_active, false) AS referrer_active, ref.referred_by_id AS referrer_referred_by,
           w.id AS wallet_id,
           (SELECT a.id FROM ledger_accounts a WHERE a.code = :expense) AS expense_id
    FROM referrals r
    JOIN users u ON u.id = r.referred_id
    LEFT JOIN users ref ON ref.id = u.referred_by_id
    LEFT JOIN ledger_accounts w ON w.user_id = u.referred_by_id
    WHERE r.referred_id = :referred
      AND (NOT CAST(:funding AS boolean) OR r.funding_bonus_at IS NULL)
      AND (CAST(:cap AS bigint) = 0 OR r.earned_kobo < CAST(:cap AS bigint))
    FOR UPDATE OF r
    """
)

# Statement 2: the exactly-once record and the running total, together. Only an inserted bonus counts.
_RECORD = text(
    """
    WITH ins AS (
        INSERT INTO referral_bonuses
            (key, kind, referrer_id, referred_id, purchase_id, amount_kobo, uncollected_kobo)
        VALUES (:key, :kind, :referrer, :referred, :purchase, :amount, :uncollected)
        ON CONFLICT (key) DO NOTHING
        RETURNING id
    ), counted AS (
        UPDATE referrals
        SET earned_kobo = referrals.earned_kobo + CAST(:amount AS bigint),
            funding_bonus_at = CASE WHEN CAST(:is_funding AS boolean) THEN now()
                                    ELSE referrals.funding_bonus_at END,
            updated_at = now()
        FROM ins
        WHERE referrals.referred_id = :referred
        RETURNING referrals.referred_id
    )
    SELECT id FROM ins
    """
)

# A qualifying transfer from a friend who has not verified their e-mail yet: remember it (under the lock).
_WITHHOLD_FUNDING = text(
    "UPDATE referrals SET funding_withheld_at = coalesce(funding_withheld_at, now()), updated_at = now()"
    " WHERE referred_id = :referred"
)

# The friend verified: copy it onto their referral row (this locks the row, so a bonus decision racing
# the verification either ran before -- and left a withheld mark for us -- or runs after and sees it).
_MARK_VERIFIED = text(
    "UPDATE referrals SET referred_verified_at = coalesce(referred_verified_at, :at), updated_at = now()"
    " WHERE referred_id = :referred RETURNING referred_id"
)

# Delivered purchases of the friend that earned no share because they were not verified yet, oldest first.
_WITHHELD_PURCHASES = text(
    "SELECT p.id, p.amount_kobo - p.cost_kobo AS margin_kobo FROM purchases p"
    " WHERE p.user_id = :referred AND p.status = 'successful' AND p.amount_kobo > p.cost_kobo"
    " AND NOT EXISTS (SELECT 1 FROM referral_bonuses b WHERE b.key = 'referral:purchase:' || p.id::text)"
    " ORDER BY p.completed_at, p.id LIMIT :limit"
)
RELEASE_PURCHASES_LIMIT = 1000

# Reversal: the bonus paid for the purchase, and the referrer's wallet locked so that what is taken back
# never exceeds what is there (a wallet never goes below zero; the posting would refuse it anyway). The lock
# and the locked balance come from ledger_lock_wallet: the application role may not lock ledger rows itself.
_LOCK_FOR_CLAWBACK = text(
    """
    SELECT b.amount_kobo, b.referrer_id, b.referred_id, w.id AS wallet_id,
           ledger_lock_wallet(w.id) AS balance,
           (SELECT a.id FROM ledger_accounts a WHERE a.code = :expense) AS expense_id
    FROM referral_bonuses b
    JOIN ledger_accounts w ON w.user_id = b.referrer_id
    WHERE b.key = :key
    """
)


@dataclass(frozen=True, slots=True)
class Paid:
    key: str
    referrer_id: uuid.UUID
    amount_kobo: int  # credited to the referrer; negative for a claw-back
    uncollected_kobo: int = 0


async def _record(
    conn: Executor,
    *,
    key: str,
    kind: str,
    referrer_id: uuid.UUID,
    referred_id: uuid.UUID,
    purchase_id: uuid.UUID | None,
    amount: int,
    uncollected: int = 0,
) -> bool:
    """Insert the bonus row and count it; False when the key was already recorded (a replay)."""
    row = (
        await conn.execute(
            _RECORD,
            {
                "key": key,
                "kind": kind,
                "is_funding": kind == FUNDING,
                "referrer": referrer_id,
                "referred": referred_id,
                "purchase": purchase_id,
                "amount": amount,
                "uncollected": uncollected,
            },
        )
    ).first()
    return row is not None


async def _accounts(conn: Executor, row: Any, referrer_id: uuid.UUID) -> tuple[int, int]:
    """(expense account id, referrer wallet id); opened here the first time either is missing."""
    if row.expense_id is not None and row.wallet_id is not None:
        return row.expense_id, row.wallet_id
    found = await resolve_accounts(conn, system=[EXPENSE_REFERRALS], wallets=[referrer_id])
    return found.system[EXPENSE_REFERRALS], found.wallets[referrer_id]


async def _lock_link(
    conn: Executor, referred_id: uuid.UUID, config: ReferralConfig, *, funding: bool
) -> tuple[rules.Link, Any] | None:
    row = (
        await conn.execute(
            _LOCK_LINK,
            {
                "referred": referred_id,
                "expense": EXPENSE_REFERRALS,
                "funding": funding,
                "cap": max(config.cap_per_referred_kobo, 0),
            },
        )
    ).first()
    if row is None:
        return None
    link = rules.Link(
        referred_id=referred_id,
        referrer_id=row.referrer_id,
        referrer_active=bool(row.referrer_active),
        referrer_referred_by=row.referrer_referred_by,
        earned_kobo=int(row.earned_kobo),
    )
    return link, row


async def _pay(
    conn: Executor,
    *,
    link: rules.Link,
    row: Any,
    key: str,
    kind: str,
    amount: int,
    purchase_id: uuid.UUID | None,
    memo: str,
    reference: tuple[str, object],
) -> Paid | None:
    assert link.referrer_id is not None
    recorded = await _record(
        conn,
        key=key,
        kind=kind,
        referrer_id=link.referrer_id,
        referred_id=link.referred_id,
        purchase_id=purchase_id,
        amount=amount,
    )
    if not recorded:
        log.info("referral_bonus_replayed", key=key)
        return None
    expense_id, wallet_id = await _accounts(conn, row, link.referrer_id)
    await transfer(
        conn,
        key=key,
        from_account=expense_id,
        to_account=wallet_id,
        amount=amount,
        kind="referral_bonus",
        memo=memo[:255],
        reference=reference,
        created_by=CREATED_BY,
    )
    log.info(
        "referral_bonus_paid",
        key=key,
        referrer_id=str(link.referrer_id),
        referred_id=str(link.referred_id),
        amount_kobo=amount,
    )
    return Paid(key, link.referrer_id, amount)


async def award_funding_bonus(conn: Executor, event: WalletFunded, config: ReferralConfig) -> Paid | None:
    """The fixed bonus for a referred user's first bank transfer of at least the minimum."""
    if not rules.funding_qualifies(config, event.amount_paid_kobo):
        return None  # below the minimum (or the bonus is off): no database work at all
    found = await _lock_link(conn, event.user_id, config, funding=True)
    if found is None:
        return None  # no referrer, funding bonus already paid, or at the cap
    link, row = found
    decision = rules.funding_bonus(config, link, event.amount_paid_kobo)
    if not decision:
        log.debug("referral_bonus_refused", user_id=str(event.user_id), reason=decision.reason)
        return None
    if row.referred_verified_at is None:
        # Throwaway sign-ups must not farm bonuses: paid when (if) the friend verifies their e-mail.
        await conn.execute(_WITHHOLD_FUNDING, {"referred": event.user_id})
        log.info("referral_bonus_withheld", key=funding_key(event.user_id), reason="email_not_verified")
        return None
    return await _pay_funding_bonus(conn, link, row, event.user_id, decision.amount_kobo)


async def _pay_funding_bonus(
    conn: Executor, link: Any, row: Any, referred_id: uuid.UUID, amount: int
) -> Paid | None:
    """The first-funding bonus, under `referral:funding:<friend>` (at most once, whenever it is paid)."""
    return await _pay(
        conn,
        link=link,
        row=row,
        key=funding_key(referred_id),
        kind=FUNDING,
        amount=amount,
        purchase_id=None,
        memo=f"Referral bonus: {rules.mask_email(row.referred_email)} funded their wallet",
        reference=("user", referred_id),
    )


async def _pay_margin_share(
    conn: Executor, link: Any, row: Any, purchase_id: uuid.UUID, amount: int
) -> Paid | None:
    """A share of one delivered purchase's margin, under `referral:purchase:<id>`."""
    return await _pay(
        conn,
        link=link,
        row=row,
        key=purchase_key(purchase_id),
        kind=PURCHASE,
        amount=amount,
        purchase_id=purchase_id,
        memo=f"Referral bonus: purchase by {rules.mask_email(row.referred_email)}",
        reference=("purchase", purchase_id),
    )


async def award_margin_share(conn: Executor, event: PurchaseSettled, config: ReferralConfig) -> Paid | None:
    """The referrer's share of a delivered purchase's margin, within the per-referred-user cap."""
    share = rules.margin_share_of(config, event.margin_kobo)
    if share <= 0:
        return None  # no margin (or sharing is off): no database work at all
    found = await _lock_link(conn, event.user_id, config, funding=False)
    if found is None:
        return None
    link, row = found
    decision = rules.margin_share(config, link, event.margin_kobo)
    if not decision:
        log.debug("referral_bonus_refused", user_id=str(event.user_id), reason=decision.reason)
        return None
    if row.referred_verified_at is None:
        # Withheld: the purchase itself is the record; release_withheld pays it when the friend verifies.
        log.info("referral_bonus_withheld", key=purchase_key(event.purchase_id), reason="email_not_verified")
        return None
    return await _pay_margin_share(conn, link, row, event.purchase_id, decision.amount_kobo)


async def release_withheld(conn: Executor, event: EmailVerified, config: ReferralConfig) -> list[Paid]:
    """The friend verified their e-mail: pay what was withheld, in the verifying transaction -- the
    funding bonus (same key as ever: `referral:funding:<friend>`, so at most once) and the margin shares
    of their delivered purchases that have none yet (`referral:purchase:<id>`), oldest first, within the
    cap. Nothing is paid twice: each key is recorded ON CONFLICT DO NOTHING under the row lock."""
    marked = (
        await conn.execute(_MARK_VERIFIED, {"referred": event.user_id, "at": event.verified_at})
    ).first()
    if marked is None:
        return []  # no referrer: nothing was ever withheld
    found = await _lock_link(conn, event.user_id, config, funding=False)
    if found is None:
        return []  # at the cap
    link, row = found
    paid: list[Paid] = []
    if row.funding_withheld_at is not None and row.funding_bonus_at is None:
        decision = rules.withheld_funding_bonus(config, link)
        if decision:
            done = await _pay_funding_bonus(conn, link, row, event.user_id, decision.amount_kobo)
            if done is not None:
                paid.append(done)
                link = replace(link, earned_kobo=link.earned_kobo + done.amount_kobo)
        else:
            log.debug("referral_bonus_refused", user_id=str(event.user_id), reason=decision.reason)
    if rules.margin_share_of(config, 10_000) > 0:
        purchases = (
            await conn.execute(
                _WITHHELD_PURCHASES, {"referred": event.user_id, "limit": RELEASE_PURCHASES_LIMIT}
            )
        ).all()
        for purchase in purchases:
            decision = rules.margin_share(config, link, int(purchase.margin_kobo))
            if decision.reason in (rules.CAP_REACHED, rules.NO_REFERRER, rules.SELF_REFERRAL,
                                   rules.REFERRER_INACTIVE, rules.REFERRAL_LOOP):  # fmt: skip
                break  # nothing more can be paid for this friend
            if not decision:
                continue
            done = await _pay_margin_share(conn, link, row, purchase.id, decision.amount_kobo)
            if done is not None:
                paid.append(done)
                link = replace(link, earned_kobo=link.earned_kobo + done.amount_kobo)
    if paid:
        log.info("referral_bonuses_released", referred_id=str(event.user_id), count=len(paid))
    return paid


async def claw_back(conn: Executor, event: PurchaseSettled) -> Paid | None:
    """A delivered purchase was reversed: take its bonus back from the referrer, as far as their wallet
    covers it; what they already spent stays with them, recorded as uncollected and flagged for staff."""
    bonus = (
        await conn.execute(
            _LOCK_FOR_CLAWBACK, {"key": purchase_key(event.purchase_id), "expense": EXPENSE_REFERRALS}
        )
    ).first()
    if bonus is None:
        return None  # no bonus was paid for this purchase
    split = rules.clawback(int(bonus.amount_kobo), int(bonus.balance))
    key = clawback_key(event.purchase_id)
    recorded = await _record(
        conn,
        key=key,
        kind=CLAWBACK,
        referrer_id=bonus.referrer_id,
        referred_id=bonus.referred_id,
        purchase_id=event.purchase_id,
        amount=-split.taken_kobo,
        uncollected=split.uncollected_kobo,
    )
    if not recorded:
        log.info("referral_clawback_replayed", key=key)
        return None
    if split.taken_kobo > 0:
        expense_id = bonus.expense_id
        if expense_id is None:
            expense_id = (await resolve_accounts(conn, system=[EXPENSE_REFERRALS])).system[EXPENSE_REFERRALS]
        await transfer(
            conn,
            key=key,
            from_account=bonus.wallet_id,
            to_account=expense_id,
            amount=split.taken_kobo,
            kind="referral_clawback",
            memo="Referral bonus taken back: the purchase was reversed",
            reference=("purchase", event.purchase_id),
            created_by=CREATED_BY,
        )
    if split.uncollected_kobo > 0:
        log.warning(
            "referral_clawback_short",
            alert=True,
            key=key,
            referrer_id=str(bonus.referrer_id),
            purchase_id=str(event.purchase_id),
            taken_kobo=split.taken_kobo,
            uncollected_kobo=split.uncollected_kobo,
        )
    else:
        log.info(
            "referral_clawback", key=key, referrer_id=str(bonus.referrer_id), taken_kobo=split.taken_kobo
        )
    return Paid(key, bonus.referrer_id, -split.taken_kobo, split.uncollected_kobo)


__all__ = [
    "Paid",
    "award_funding_bonus",
    "award_margin_share",
    "claw_back",
    "clawback_key",
    "funding_key",
    "purchase_key",
    "release_withheld",
]
