"""Unmatched transfers credited by hand: finance staff (/staff/funding/unmatched) or an operator
(`vtu funding assign`) names the customer an `unmatched` Monnify transfer belongs to, with a reason.

The credit is the webhook's own: the same checks with Monnify (`funding.amounts_to_credit`, asked with no
database transaction open), the same fee rule (`money.funding_fees`), and the same SQL credit
(`monnify_post_credit`, called by `monnify_assign`) under the same ledger key
`monnify:<transactionReference>`. So a transfer is credited once whatever happens next: a webhook Monnify
re-sends is a duplicate of the stored event, a worker retry finds it credited, and two staff assigning it at
once meet on the locked event row (the second is told it is already credited). The assignment, the event's
new state and the audit entry commit together, in one short transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import func, select

from app.accounts.models import User
from app.audit import service as audit
from app.core.events import WALLET_FUNDED, WalletFunded
from app.payments import models as m
from app.payments.events import MalformedEvent, parse_monnify_event
from app.payments.funding import NotConfirmed, amounts_to_credit, creditable
from app.payments.money import funding_fees

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.config.settings import Settings
    from app.payments.monnify_client import MonnifyClient

log = structlog.get_logger("app.payments.assign")

REASON_MAX = 500
AUDIT_ACTION = "funding_event.assign"
_ASSIGN = "SELECT status, refused, ledger_transaction_id FROM monnify_assign($1, $2, $3, $4, $5, $6, $7, $8)"


class AssignRefused(Exception):
    """Nothing was credited, and why (`field` names the form field at fault, if one is)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class Assigned:
    event_id: int
    user_id: uuid.UUID
    email: str
    transaction_reference: str
    amount_paid_kobo: int
    fee_kobo: int
    credited_kobo: int
    ledger_transaction_id: int

    def line(self) -> str:
        """The one-line result (CLI output, flash message)."""
        from app.core.naira import format_naira

        fee = f" (paid {format_naira(self.amount_paid_kobo)}, fee {format_naira(self.fee_kobo)})"
        return (
            f"credited {format_naira(self.credited_kobo)} to {self.email} from transfer "
            f"{self.transaction_reference} (event {self.event_id}, ledger transaction "
            f"{self.ledger_transaction_id}){fee if self.fee_kobo else ''}"
        )


def clean_reason(raw: str | None) -> str:
    reason = (raw or "").strip()
    if not reason:
        raise AssignRefused(
            "A reason is required: why this transfer belongs to this customer (kept with the event).",
            field="reason",
        )
    if len(reason) > REASON_MAX:
        raise AssignRefused(f"Keep the reason under {REASON_MAX} characters.", field="reason")
    return reason


async def event_by_reference(session: AsyncSession, transaction_reference: str) -> int | None:
    """The SUCCESSFUL_TRANSACTION event of a Monnify transaction reference (exact, then any case)."""
    ref = transaction_reference.strip()
    if not ref:
        return None
    e = m.MonnifyEvent
    for match in (e.transaction_reference == ref, func.lower(e.transaction_reference) == ref.lower()):
        found = (
            await session.execute(
                select(e.id).where(match, e.event_type == "SUCCESSFUL_TRANSACTION").order_by(e.id).limit(1)
            )
        ).scalar_one_or_none()
        if found is not None:
            return int(found)
    return None


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    text = email.strip().lower()
    if not text:
        return None
    return (await session.execute(select(User).where(func.lower(User.email) == text))).scalar_one_or_none()


async def assign_unmatched(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: MonnifyClient | None,
    *,
    event_id: int,
    user_id: uuid.UUID,
    actor: audit.Actor,
    reason: str,
) -> Assigned:
    """Credit the unmatched event `event_id` to `user_id`'s wallet, once. Raises AssignRefused (nothing
    credited, nothing written) for an event that is not unmatched, a customer who cannot receive it, a missing
    reason, or a transfer Monnify does not confirm as paid."""
    reason = clean_reason(reason)
    async with sessionmaker() as session:
        event = await session.get(m.MonnifyEvent, event_id)
        if event is None:
            raise AssignRefused("No such funding event.")
        if event.status != m.EVENT_UNMATCHED:
            raise AssignRefused(_not_unmatched(event))
        try:
            parsed = parse_monnify_event(event.payload)
        except MalformedEvent as exc:
            raise AssignRefused(
                f"Not assigned: this event is not a transfer that can be credited ({exc.reason})."
            ) from None
        if not creditable(parsed) or parsed.transaction_reference is None:
            raise AssignRefused(
                f"Not assigned: a {parsed.event_type} event is not a paid reserved-account transfer."
            )
        user = await session.get(User, user_id)
        if user is None:
            raise AssignRefused("No such customer.", field="customer")
        if not user.is_active:
            raise AssignRefused(f"Not assigned: {user.email}'s account is closed.", field="customer")
        email = user.email
    # The request's own read is over: no transaction is open while Monnify is asked (money invariant 8).
    try:
        amount, settlement = await amounts_to_credit(settings, client, parsed)
    except NotConfirmed as exc:
        raise AssignRefused(f"Not assigned: Monnify did not confirm the transfer ({exc.message}).") from None
    if amount <= 0:
        raise AssignRefused("Not assigned: the amount paid is zero.")
    fee, charge = funding_fees(settings, amount, settlement)

    from app.ledger.accounts import (
        EXPENSE_MONNIFY_FEES,
        MONNIFY_CLEARING,
        REVENUE_FUNDING_FEES,
        resolve_accounts,
    )

    async with sessionmaker() as session, session.begin():
        await resolve_accounts(
            session, system=(MONNIFY_CLEARING, REVENUE_FUNDING_FEES, EXPENSE_MONNIFY_FEES), wallets=[user_id]
        )
        connection = await session.connection()
        row = (
            await connection.exec_driver_sql(
                _ASSIGN, (event_id, user_id, amount, fee, charge, actor.user_id, actor.source, reason)
            )
        ).one()
        if row.refused is not None:  # leaving the block rolls back (accounts opened above included)
            raise AssignRefused(_refusal(row.status, row.refused))
        assigned = Assigned(
            event_id=event_id,
            user_id=user_id,
            email=email,
            transaction_reference=parsed.transaction_reference,
            amount_paid_kobo=amount,
            fee_kobo=fee,
            credited_kobo=amount - fee,
            ledger_transaction_id=int(row.ledger_transaction_id),
        )
        await WALLET_FUNDED.emit(
            session,
            WalletFunded(
                user_id=user_id,
                amount_paid_kobo=amount,
                credited_kobo=amount - fee,
                transaction_reference=parsed.transaction_reference,
                ledger_transaction_id=assigned.ledger_transaction_id,
            ),
        )
        await audit.record(
            session,
            actor,
            AUDIT_ACTION,
            target=("funding_event", event_id),
            before={"status": m.EVENT_UNMATCHED, "product_reference": parsed.product_reference},
            after={
                "status": m.EVENT_CREDITED,
                "user_id": user_id,
                "email": email,
                "transaction_reference": parsed.transaction_reference,
                "amount_paid_kobo": amount,
                "fee_kobo": fee,
                "credited_kobo": amount - fee,
                "ledger_transaction_id": assigned.ledger_transaction_id,
            },
            reason=reason,
        )
    log.info(
        "unmatched_transfer_assigned",
        event_id=event_id,
        user_id=str(user_id),
        credited_kobo=amount - fee,
        by=actor.label,
    )
    return assigned


def _not_unmatched(event: m.MonnifyEvent) -> str:
    if event.status == m.EVENT_CREDITED:
        return "Not assigned: this transfer is already credited; nothing was changed."
    return f"Not assigned: this event is {event.status}, not unmatched; nothing was changed."


def _refusal(status: str | None, refused: str) -> str:
    if status == m.EVENT_CREDITED:
        return "Not assigned: this transfer was credited meanwhile (by someone else); nothing was changed."
    return f"Not assigned: {refused}; nothing was changed."


__all__ = [
    "AUDIT_ACTION",
    "REASON_MAX",
    "AssignRefused",
    "Assigned",
    "assign_unmatched",
    "clean_reason",
    "event_by_reference",
    "user_by_email",
]
