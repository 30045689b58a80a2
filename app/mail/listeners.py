"""Transactional e-mails driven by money events (app.core.events).

- Funding received: `WALLET_FUNDED` runs inside the crediting transaction; the outbox row is inserted
  there (one statement, `funding:<transactionReference>`), so the e-mail exists exactly when the credit
  commits, and a replayed webhook mails nothing. The job is enqueued after that commit.
- Purchase receipt: NOT in the settlement transaction (the purchase path stays one statement).
  `PURCHASE_FINISHED` (after commit) enqueues `mail_purchase_receipt` keyed by the purchase id, for
  delivered web purchases only (API purchases get reseller callbacks instead); the job records the
  receipt once and sends it, and `sweep_mail` enqueues receipts whose enqueue was lost.
"""

from __future__ import annotations

from typing import Any

import structlog

from app.core.events import PURCHASE_FINISHED, WALLET_FUNDED, PurchaseSettled, WalletFunded
from app.mail import outbox

log = structlog.get_logger("app.mail")


@WALLET_FUNDED.connect
async def mail_funding_received(session: Any, event: WalletFunded) -> None:
    mail_id = await outbox.add(
        session,
        key=f"funding:{event.transaction_reference}",
        user_id=event.user_id,
        template="funding_received",
        preference="funding",
        context={
            "amount_paid_kobo": event.amount_paid_kobo,
            "credited_kobo": event.credited_kobo,
            "fee_kobo": event.amount_paid_kobo - event.credited_kobo,
            "reference": event.transaction_reference,
        },
    )
    outbox.kick_after_commit(session, mail_id)


def _web_delivery(event: PurchaseSettled) -> bool:
    return event.status == "successful" and event.api_key_id is None


@PURCHASE_FINISHED.connect_when(_web_delivery)
async def enqueue_purchase_receipt(service: Any, event: PurchaseSettled) -> None:
    from app.mail.tasks import enqueue_receipt

    queue = getattr(getattr(service, "scheduler", None), "queue", None)
    if queue is None:
        log.info("mail_receipt_no_queue", purchase_id=str(event.purchase_id))  # the sweep enqueues it
        return
    # If Redis is down this raises (the event logs it): sweep_mail enqueues it later.
    await enqueue_receipt(queue, event.purchase_id)


__all__ = ["enqueue_purchase_receipt", "mail_funding_received"]
