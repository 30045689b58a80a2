"""Sending one message over SMTP with aiosmtplib (only ever called by the worker's jobs)."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

import aiosmtplib

from app.mail.config import SmtpConfig
from app.mail.render import Rendered

SMTP_TIMEOUT_SECONDS = 30.0


class PermanentFailure(Exception):
    """The server refused this message for good (e.g. the recipient does not exist): do not retry."""


def build_message(rendered: Rendered, *, to: str, sender: str, message_id_key: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = email.utils.formatdate(localtime=False)
    domain = email.utils.parseaddr(sender)[1].partition("@")[2] or "localhost"
    # Stable per outbox row: a retried send has the same Message-ID, so clients can drop a duplicate.
    message["Message-ID"] = f"<{message_id_key}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


async def send(config: SmtpConfig, message: EmailMessage) -> None:
    """Deliver to the SMTP server; raises PermanentFailure (5xx for the message) or another error (retry)."""
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            timeout=SMTP_TIMEOUT_SECONDS,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise PermanentFailure(f"recipient refused: {exc}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600 and not isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            raise PermanentFailure(f"{exc.code} {exc.message}") from exc
        raise


__all__ = ["PermanentFailure", "build_message", "send"]
