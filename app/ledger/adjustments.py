"""Manual adjustments: finance staff credit or debit a customer's wallet by hand (a goodwill credit, a
provider's late refund, a correction), with a reason, against the `staff_adjustments` system account.

Rules (the console at /staff/adjustments only parses and renders; they live here and in the SQL):
- An amount at or below ADJUSTMENT_APPROVAL_KOBO posts at once when a finance user asks; above it the
  request waits (`pending_approval`) for a SECOND finance (or admin) user. Nobody approves or rejects their
  own request. `ADJUSTMENT_APPROVAL_KOBO=0` sends every adjustment for approval.
- Posting is ONE statement, `adjustment_post` (app/ledger/sql/adjustments.sql): the guarded transition
  `pending_approval -> posted` and the ledger posting under `adjustment:<id>` (kind `adjustment`, memo
  "Adjustment: <reason>", reference ('adjustment', <id>)), so 20 approvals racing post once.
- A debit larger than the wallet is refused (ledger_post's LG001) and nothing posts: at request time the
  request is not kept; at approval time it stays pending (reject it, or approve once the wallet allows).
- Every request, approval and rejection is audit-recorded in the same transaction as the change
  (`adjustment.request|approve|reject`, target ('adjustment', id), the customer's id in `after`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from app.accounts.models import User
from app.audit import service as audit
from app.ledger.accounts import STAFF_ADJUSTMENTS, resolve_accounts
from app.ledger.errors import InsufficientFunds, translate
from app.ledger.models import (
    ADJUSTMENT_DIRECTIONS,
    ADJUSTMENT_PENDING,
    ADJUSTMENT_POSTED,
    ADJUSTMENT_REASON_MAX,
    ADJUSTMENT_REJECTED,
    Adjustment,
)
from app.ledger.queries import wallet_balance

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

NOTE_MAX = 500
MAX_AMOUNT_KOBO = 10**13  # ₦100 billion: anything larger is a typing accident
_POST = "SELECT applied, status, ledger_transaction_id FROM adjustment_post($1, $2, $3, $4, $5)"
_AUDITED = (
    "status",
    "user_id",
    "direction",
    "amount_kobo",
    "reason",
    "ledger_transaction_id",
    "decision_note",
)


class AdjustmentRefused(Exception):
    """Nothing changed, and why; `fields` maps form fields to their problems (empty: a general refusal)."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


@dataclass(frozen=True, slots=True)
class Outcome:
    adjustment: Adjustment
    posted: bool  # money moved by this call
    message: str


def needs_approval(amount_kobo: int, limit_kobo: int) -> bool:
    """Above the limit a second person must approve (limit 0: always)."""
    return limit_kobo <= 0 or amount_kobo > limit_kobo


def parse_amount_naira(raw: str) -> int:
    """A naira amount typed by staff ("5000", "5,000.50", "₦1,200") as kobo; raises ValueError."""
    from decimal import Decimal, InvalidOperation

    text = raw.strip().replace(",", "").replace("₦", "").replace(" ", "")
    if not text:
        raise ValueError("Enter the amount in naira, e.g. 1500 or 1500.50.")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("Enter the amount in naira, e.g. 1500 or 1500.50.") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("The amount must be more than ₦0.")
    kobo = value * 100
    if kobo != kobo.to_integral_value():
        raise ValueError("At most two decimals (kobo).")
    if kobo > MAX_AMOUNT_KOBO:
        raise ValueError("That amount is too large.")
    return int(kobo)


def _snapshot(row: Adjustment) -> dict[str, Any]:
    return audit.snapshot(row, *_AUDITED)


async def _load(session: AsyncSession, adjustment_id: uuid.UUID) -> Adjustment:
    row = await session.get(Adjustment, adjustment_id, populate_existing=True)
    if row is None:
        raise AdjustmentRefused("No such adjustment.")
    return row


async def _post(
    session: AsyncSession, row_id: uuid.UUID, actor: audit.Actor, note: str | None, *, approval: bool
) -> tuple[bool, str | None]:
    """adjustment_post in a savepoint: (applied, status now). InsufficientFunds undoes it (and is raised)."""
    try:
        async with session.begin_nested():
            connection = await session.connection()
            row = (
                await connection.exec_driver_sql(
                    _POST, (row_id, actor.user_id, actor.label, note or "", approval)
                )
            ).one()
    except Exception as exc:
        typed = translate(exc)
        if typed is not None:
            raise typed from exc
        raise
    return bool(row.applied), row.status


def _insufficient(user_email: str, balance: int, amount: int) -> AdjustmentRefused:
    from app.core.naira import format_naira

    return AdjustmentRefused(
        f"Not posted: {user_email}'s wallet holds {format_naira(balance)}, less than the "
        f"{format_naira(amount)} debit. Nothing was taken.",
        {"amount": "More than the wallet holds."},
    )


async def request_adjustment(
    session: AsyncSession,
    actor: audit.Actor,
    *,
    user_id: uuid.UUID,
    direction: str,
    amount_kobo: int,
    reason: str,
    approval_limit_kobo: int,
) -> Outcome:
    """A finance user's request: posted at once within the limit, else kept for a second person. Runs in the
    caller's transaction (the caller commits); raises AdjustmentRefused with nothing written."""
    reason = reason.strip()
    errors: dict[str, str] = {}
    if direction not in ADJUSTMENT_DIRECTIONS:
        errors["direction"] = "Choose credit (add to the wallet) or debit (take from it)."
    if not reason:
        errors["reason"] = "Write why (the customer's statement shows it)."
    elif len(reason) > ADJUSTMENT_REASON_MAX:
        errors["reason"] = f"Keep the reason under {ADJUSTMENT_REASON_MAX} characters."
    if amount_kobo <= 0:
        errors["amount"] = "The amount must be more than ₦0."
    user = await session.get(User, user_id)
    if user is None:
        errors["user"] = "No such customer."
    if errors:
        raise AdjustmentRefused("Not saved: fix the fields marked below.", errors)
    assert user is not None
    if actor.user_id == user.id:
        raise AdjustmentRefused("Not saved: nobody adjusts their own wallet.", {"user": "This is you."})
    await resolve_accounts(session, system=[STAFF_ADJUSTMENTS], wallets=[user.id])
    balance = await wallet_balance(session, user.id)
    if direction == "debit" and amount_kobo > balance:
        raise _insufficient(user.email, balance, amount_kobo)

    immediate = not needs_approval(amount_kobo, approval_limit_kobo)
    savepoint = await session.begin_nested()
    row_id = (
        await session.execute(
            insert(Adjustment)
            .values(
                user_id=user.id,
                direction=direction,
                amount_kobo=amount_kobo,
                reason=reason,
                status=ADJUSTMENT_PENDING,
                requested_by_id=actor.user_id,
                requested_by=actor.label[:254],
            )
            .returning(Adjustment.id)
        )
    ).scalar_one()
    posted = False
    if immediate:
        try:
            posted, _ = await _post(session, row_id, actor, "within the no-approval limit", approval=False)
        except InsufficientFunds:
            await savepoint.rollback()  # the request is not kept either
            raise _insufficient(user.email, await wallet_balance(session, user.id), amount_kobo) from None
    await savepoint.commit()
    row = await _load(session, row_id)
    await audit.record(
        session,
        actor,
        "adjustment.request",
        target=("adjustment", row.id),
        before=None,
        after={
            **_snapshot(row),
            "posted_at_once": posted,
            "wallet_after": await wallet_balance(session, user.id),
        },
        reason=reason,
    )
    from app.core.naira import format_naira

    what = f"{direction} of {format_naira(amount_kobo)} for {user.email}"
    if posted:
        message = f"Posted: {what}. The customer's statement shows it now."
    else:
        message = (
            f"Saved for approval: {what} is above {format_naira(approval_limit_kobo)}, so a second finance "
            "user must approve it."
        )
    return Outcome(row, posted, message)


async def approve_adjustment(
    session: AsyncSession, actor: audit.Actor, adjustment_id: uuid.UUID, *, note: str = ""
) -> Outcome:
    """A second person's approval: posts once. Raises AdjustmentRefused (nothing changed) for one's own
    request, one already decided, or a debit the wallet no longer covers."""
    note = note.strip()[:NOTE_MAX]
    row = await _load(session, adjustment_id)
    before = _snapshot(row)
    if row.status != ADJUSTMENT_PENDING:
        raise AdjustmentRefused(_decided(row))
    if row.requested_by_id is not None and row.requested_by_id == actor.user_id:
        raise AdjustmentRefused("Not approved: nobody approves their own request. Ask another finance user.")
    await resolve_accounts(session, system=[STAFF_ADJUSTMENTS], wallets=[row.user_id])
    try:
        applied, _status = await _post(session, adjustment_id, actor, note, approval=True)
    except InsufficientFunds:
        email = (await session.get(User, row.user_id)).email  # type: ignore[union-attr]
        balance = await wallet_balance(session, row.user_id)
        raise AdjustmentRefused(
            f"Not approved: {email}'s wallet now holds {_naira(balance)}, less than the "
            f"{_naira(row.amount_kobo)} debit. It stays pending; reject it or approve later."
        ) from None
    row = await _load(session, adjustment_id)
    if not applied:
        raise AdjustmentRefused(_decided(row))
    await audit.record(
        session,
        actor,
        "adjustment.approve",
        target=("adjustment", row.id),
        before=before,
        after={**_snapshot(row), "wallet_after": await wallet_balance(session, row.user_id)},
        reason=note or None,
    )
    return Outcome(row, True, f"Approved and posted: {row.direction} of {_naira(row.amount_kobo)}.")


async def reject_adjustment(
    session: AsyncSession, actor: audit.Actor, adjustment_id: uuid.UUID, *, note: str
) -> Outcome:
    """Reject a pending request with a note (a guarded update; moves no money)."""
    note = note.strip()
    if not note:
        raise AdjustmentRefused("Not rejected: write why.", {"note": "Write why it is rejected."})
    if len(note) > NOTE_MAX:
        raise AdjustmentRefused("Not rejected.", {"note": f"Keep the note under {NOTE_MAX} characters."})
    row = await _load(session, adjustment_id)
    before = _snapshot(row)
    if row.status != ADJUSTMENT_PENDING:
        raise AdjustmentRefused(_decided(row))
    if row.requested_by_id is not None and row.requested_by_id == actor.user_id:
        raise AdjustmentRefused("Not rejected: nobody decides their own request. Ask another finance user.")
    done = (
        await session.execute(
            update(Adjustment)
            .where(
                Adjustment.id == adjustment_id,
                Adjustment.status == ADJUSTMENT_PENDING,
                Adjustment.requested_by_id.is_distinct_from(actor.user_id),
            )
            .values(
                status=ADJUSTMENT_REJECTED,
                decided_by_id=actor.user_id,
                decided_by=actor.label[:254],
                decided_at=_now(),
                decision_note=note,
            )
            .returning(Adjustment.id)
        )
    ).scalar_one_or_none()
    row = await _load(session, adjustment_id)
    if done is None:
        raise AdjustmentRefused(_decided(row))
    await audit.record(
        session, actor, "adjustment.reject", target=("adjustment", row.id), before=before,
        after=_snapshot(row), reason=note,
    )  # fmt: skip
    return Outcome(row, False, "Rejected: nothing was posted.")


def _now() -> Any:
    import datetime

    return datetime.datetime.now(datetime.UTC)


def _naira(kobo: int) -> str:
    from app.core.naira import format_naira

    return format_naira(kobo)


def _decided(row: Adjustment) -> str:
    who = f" by {row.decided_by}" if row.decided_by else ""
    if row.status == ADJUSTMENT_POSTED:
        return f"Not changed: this adjustment was already posted{who}."
    if row.status == ADJUSTMENT_REJECTED:
        return f"Not changed: this adjustment was already rejected{who}."
    return f"Not changed: this adjustment is {row.status}."


# -- reads for the console ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AdjustmentRow:
    adjustment: Adjustment
    email: str
    balance_kobo: int


async def list_adjustments(
    session: AsyncSession, *, recent: int = 50
) -> tuple[list[AdjustmentRow], list[AdjustmentRow]]:
    """(pending approvals, oldest first; the most recent decided ones, newest first)."""
    from app.ledger.models import LedgerAccount

    base = (
        select(Adjustment, User.email, LedgerAccount.balance)
        .join(User, User.id == Adjustment.user_id)
        .outerjoin(
            LedgerAccount, (LedgerAccount.user_id == Adjustment.user_id) & (LedgerAccount.kind == "wallet")
        )
    )
    pending = await session.execute(
        base.where(Adjustment.status == ADJUSTMENT_PENDING).order_by(Adjustment.requested_at, Adjustment.id)
    )
    done = await session.execute(
        base.where(Adjustment.status != ADJUSTMENT_PENDING)
        .order_by(Adjustment.requested_at.desc(), Adjustment.id.desc())
        .limit(recent)
    )
    to_rows = lambda result: [AdjustmentRow(a, e, b or 0) for a, e, b in result]  # noqa: E731
    return to_rows(pending), to_rows(done)


__all__ = [
    "AdjustmentRefused",
    "AdjustmentRow",
    "Outcome",
    "approve_adjustment",
    "list_adjustments",
    "needs_approval",
    "parse_amount_naira",
    "reject_adjustment",
    "request_adjustment",
]
