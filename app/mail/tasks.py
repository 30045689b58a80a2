"""SAQ jobs: send one outbox row (`send_mail`), write + send a web purchase's receipt
(`mail_purchase_receipt`), and the sweep that re-enqueues whatever a lost job left behind (`sweep_mail`).

No database transaction or row lock is held while talking SMTP: a mail is claimed (a short lease in
`claimed_until`, so two jobs for one mail never send it at the same time), the claim commits, the message
is sent, then the outcome is written in a second short transaction.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import structlog
from sqlalchemy import text

from app.mail import outbox, smtp
from app.mail.config import mail_from, smtp_config
from app.mail.models import EXPIRED, FAILED, QUEUED, SENT
from app.mail.render import render

log = structlog.get_logger("app.mail")

CLAIM_SECONDS = 90  # longer than one SMTP exchange (timeout 30 s) and shorter than the job timeout retry
SWEEP_GRACE_SECONDS = 30  # the enqueue after commit (and the first attempt) get this long
SWEEP_GIVE_UP_HOURS = 72  # a mail still queued after this is given up (the SMTP server was gone for days)
SWEEP_RECEIPT_HOURS = 24
SWEEP_BATCH = 500

_CLAIM = text(
    "UPDATE outgoing_mail m SET claimed_until = now() + make_interval(secs => :lease),"
    " attempts = m.attempts + 1"
    " WHERE m.id = :id AND m.status = 'queued' AND (m.claimed_until IS NULL OR m.claimed_until < now())"
    " RETURNING m.id, m.to_address, m.template, m.context, m.sensitive, m.attempts, m.dedupe_key,"
    " (m.expires_at IS NOT NULL AND m.expires_at <= now()) AS expired,"
    " (SELECT u.full_name FROM users u WHERE u.id = m.user_id) AS full_name"
)
_FINISH = text(
    "UPDATE outgoing_mail SET status = CAST(:status AS varchar), claimed_until = NULL, last_error = :error,"
    " sent_at = CASE WHEN CAST(:status AS varchar) = 'sent' THEN now() ELSE sent_at END,"
    " subject = coalesce(CAST(:subject AS varchar), subject),"
    " context = CASE WHEN sensitive AND CAST(:status AS varchar) <> 'queued' THEN '{}'::jsonb"
    " ELSE context END"
    " WHERE id = :id AND status = 'queued'"
)


class MailNotSent(Exception):
    """The SMTP server could not take the message now (SAQ retries the job)."""


async def _finish(ctx: dict[str, Any], mail_id: int, status: str, *, error: str | None = None,
                  subject: str | None = None) -> None:  # fmt: skip
    async with ctx["sessionmaker"]() as session, session.begin():
        await session.execute(
            _FINISH,
            {"id": mail_id, "status": status, "error": (error or "")[:500] or None, "subject": subject},
        )


def _with_pins(context: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The context to render: a purchase receipt's encrypted exam PINs (`pins_ciphertext`) opened into
    `pins` ([{"serial", "pin"}]), in memory only."""
    if "pins_ciphertext" not in context:
        return context
    sealed = context.pop("pins_ciphertext")
    context["pins"] = None
    if sealed:
        from app.core.encryption import cipher_for

        context["pins"] = json.loads(cipher_for(settings).decrypt(sealed))
    return context


async def deliver(ctx: dict[str, Any], mail_id: int) -> str:
    """Send one queued mail. Returns its new status (or "skipped": not queued, or another job holds it);
    raises MailNotSent to be retried."""
    settings = ctx["settings"]
    async with ctx["sessionmaker"]() as session, session.begin():
        row = (await session.execute(_CLAIM, {"id": mail_id, "lease": CLAIM_SECONDS})).first()
    if row is None:
        return "skipped"
    if row.expired:
        await _finish(ctx, mail_id, EXPIRED, error="its link expired before it could be sent")
        log.warning("mail_expired", mail_id=mail_id, template=row.template)
        return EXPIRED
    config = smtp_config(settings)
    if config is None:
        # No SMTP server configured (development without `vtu dev`): leave it queued, un-claimed.
        async with ctx["sessionmaker"]() as session, session.begin():
            await session.execute(
                text("UPDATE outgoing_mail SET claimed_until = NULL, attempts = attempts - 1,"
                     " last_error = 'SMTP_URL is not set' WHERE id = :id"), {"id": mail_id},
            )  # fmt: skip
        log.info("mail_not_sent_no_smtp", mail_id=mail_id)
        return QUEUED
    try:
        rendered = render(
            row.template,
            _with_pins(dict(row.context or {}), settings),
            site_url=settings.site_url,
            name=row.full_name or "",
        )
    except Exception as exc:  # a template bug: retrying cannot help
        log.exception("mail_render_failed", mail_id=mail_id, template=row.template)
        await _finish(ctx, mail_id, FAILED, error=f"render failed: {type(exc).__name__}: {exc}")
        return FAILED
    message = smtp.build_message(
        rendered, to=row.to_address, sender=mail_from(settings), message_id_key=f"{row.dedupe_key}.{mail_id}"
    )
    try:
        await smtp.send(config, message)
    except smtp.PermanentFailure as exc:
        log.warning("mail_refused", mail_id=mail_id, error=str(exc))
        await _finish(ctx, mail_id, FAILED, error=str(exc), subject=rendered.subject)
        return FAILED
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
        last = int(row.attempts) >= outbox.MAIL_ATTEMPTS
        log.warning("mail_send_failed", mail_id=mail_id, attempt=row.attempts, error=problem, gave_up=last)
        await _finish(ctx, mail_id, FAILED if last else QUEUED, error=problem, subject=rendered.subject)
        if last:
            return FAILED
        raise MailNotSent(problem) from exc
    await _finish(ctx, mail_id, SENT, subject=rendered.subject)
    log.info("mail_sent", mail_id=mail_id, template=row.template, smtp=config.describe())
    return SENT


async def send_mail(ctx: dict[str, Any], *, mail_id: int) -> str:
    """SAQ job (key `mail:<id>`): send one outbox row."""
    return await deliver(ctx, int(mail_id))


# --- purchase receipts -------------------------------------------------------------------------------------

_RECEIPT_SOURCE = text(
    "SELECT p.id, p.user_id, p.status, p.channel, p.product_name, p.service_id, p.recipient, p.amount_kobo,"
    " p.token, p.units, p.request_id, p.completed_at, p.pins_ciphertext FROM purchases p WHERE p.id = :id"
)
_MAIL_BY_KEY = text("SELECT id, status FROM outgoing_mail WHERE dedupe_key = :key")


def receipt_key(purchase_id: uuid.UUID | str) -> str:
    return f"receipt:{purchase_id}"


async def mail_purchase_receipt(ctx: dict[str, Any], *, purchase_id: str) -> str:
    """SAQ job (key `mail-receipt:<purchase id>`): record the receipt of a delivered web purchase (once,
    whatever the retries) and send it."""
    from app.core.templating import lagos_time

    pid = uuid.UUID(purchase_id)
    key = receipt_key(pid)
    async with ctx["sessionmaker"]() as session, session.begin():
        p = (await session.execute(_RECEIPT_SOURCE, {"id": pid})).first()
        if p is None or p.status != "successful" or p.channel != "web":
            return "skipped"
        mail_id = await outbox.add(
            session,
            key=key,
            user_id=p.user_id,
            template="purchase_receipt",
            preference="purchase",
            # Exam PINs stay encrypted in the outbox (opened only to render: `_with_pins`), and the context
            # is emptied once the mail is sent (sensitive).
            sensitive=p.pins_ciphertext is not None,
            context={
                "pins_ciphertext": p.pins_ciphertext,
                "purchase_id": str(p.id),
                "product": p.product_name or p.service_id,
                "recipient": p.recipient,
                "amount_kobo": int(p.amount_kobo),
                "token": p.token,
                "units": p.units,
                "reference": p.request_id,
                "completed_at": lagos_time(p.completed_at),
            },
        )
        if mail_id is None:  # recorded by an earlier attempt of this job (or suppressed)
            existing = (await session.execute(_MAIL_BY_KEY, {"key": key})).first()
            if existing is None or existing.status != QUEUED:
                return existing.status if existing else "skipped"
            mail_id = int(existing.id)
    return await deliver(ctx, mail_id)


# --- the sweep ---------------------------------------------------------------------------------------------

_DUE = text(
    "SELECT id FROM outgoing_mail WHERE status = 'queued' AND created_at < :until AND created_at >= :since"
    " AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY created_at LIMIT :limit"
)
_GIVE_UP = text(
    "UPDATE outgoing_mail SET status = 'failed', last_error = 'not sent within the retry window',"
    " context = CASE WHEN sensitive THEN '{}'::jsonb ELSE context END"
    " WHERE status = 'queued' AND created_at < :since"
)
_EXPIRE = text(
    "UPDATE outgoing_mail SET status = 'expired', context = '{}'::jsonb"
    " WHERE status = 'queued' AND expires_at IS NOT NULL AND expires_at <= now()"
    " AND (claimed_until IS NULL OR claimed_until < now())"
)
# Delivered web purchases whose receipt was never recorded: the enqueue after commit was lost.
_MISSING_RECEIPTS = text(
    "SELECT p.id FROM purchases p"
    " LEFT JOIN outgoing_mail m ON m.dedupe_key = 'receipt:' || p.id::text"
    " WHERE p.status = 'successful' AND p.channel = 'web'"
    " AND p.completed_at >= :since AND p.completed_at < :until AND m.id IS NULL"
    " ORDER BY p.completed_at LIMIT :limit"
)


async def sweep_mail(ctx: dict[str, Any]) -> dict[str, int]:
    """SAQ cron (every minute): expire mails whose link has expired, give up on very old ones, re-enqueue
    queued mails whose job was lost, and enqueue receipts that were never recorded."""
    now = datetime.datetime.now(datetime.UTC)
    async with ctx["sessionmaker"]() as session, session.begin():
        expired = (await session.execute(_EXPIRE)).rowcount
        gave_up = (
            await session.execute(_GIVE_UP, {"since": now - datetime.timedelta(hours=SWEEP_GIVE_UP_HOURS)})
        ).rowcount
        due = (
            (
                await session.execute(
                    _DUE,
                    {
                        "since": now - datetime.timedelta(hours=SWEEP_GIVE_UP_HOURS),
                        "until": now - datetime.timedelta(seconds=SWEEP_GRACE_SECONDS),
                        "limit": SWEEP_BATCH,
                    },
                )
            )
            .scalars()
            .all()
        )
        receipts = (
            (
                await session.execute(
                    _MISSING_RECEIPTS,
                    {
                        "since": now - datetime.timedelta(hours=SWEEP_RECEIPT_HOURS),
                        "until": now - datetime.timedelta(seconds=SWEEP_GRACE_SECONDS),
                        "limit": SWEEP_BATCH,
                    },
                )
            )
            .scalars()
            .all()
        )
    queue = ctx["worker"].queue
    enqueued = await outbox.kick([int(i) for i in due], queue)
    for purchase_id in receipts:
        enqueued += (await enqueue_receipt(queue, purchase_id)) is not None
    if due or receipts or gave_up:
        log.warning("mail_sweep", due=len(due), receipts=len(receipts), enqueued=enqueued, gave_up=gave_up)
    return {
        "due": len(due),
        "receipts": len(receipts),
        "enqueued": enqueued,
        "expired": expired,
        "gave_up": gave_up,
    }


async def enqueue_receipt(queue: Any, purchase_id: uuid.UUID | str) -> Any:
    return await queue.enqueue(
        outbox.RECEIPT_TASK,
        key=outbox.receipt_job_key(purchase_id),
        timeout=outbox.SEND_JOB_TIMEOUT_SECONDS,
        retries=outbox.MAIL_ATTEMPTS,
        retry_delay=outbox.RETRY_DELAY_SECONDS,
        retry_backoff=outbox.MAX_RETRY_DELAY_SECONDS,
        purchase_id=str(purchase_id),
    )


__all__ = [
    "MailNotSent",
    "deliver",
    "enqueue_receipt",
    "mail_purchase_receipt",
    "receipt_key",
    "send_mail",
    "sweep_mail",
]
