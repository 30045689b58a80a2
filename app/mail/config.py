"""SMTP_URL, MAIL_FROM and SITE_URL, parsed and checked.

`SMTP_URL` is `smtp://user:pass@host:port` (plain; add `?starttls=1` to upgrade with STARTTLS) or
`smtps://user:pass@host:port` (TLS from the first byte). User and password are percent-decoded, so a
password holding `@` or `/` is written `%40` / `%2F`. Without SMTP_URL, mail is kept in the outbox as
`queued` and never sent (development without `vtu dev`); production refuses to start without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from app.config.settings import Settings

DEFAULT_FROM = "TopUp NG <no-reply@localhost>"
_TRUE = {"1", "true", "yes", "on"}


class MailConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # smtps://: TLS from the start
    start_tls: bool = False  # smtp://...?starttls=1: upgrade after EHLO

    def describe(self) -> str:
        """For logs: never the password."""
        scheme = "smtps" if self.use_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}" + ("?starttls=1" if self.start_tls else "")


def parse_smtp_url(url: str) -> SmtpConfig:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise MailConfigError(f"SMTP_URL is not a valid URL ({exc})") from exc
    if parts.scheme not in {"smtp", "smtps"}:
        raise MailConfigError("SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise MailConfigError("SMTP_URL needs a host (smtp://user:pass@host:port)")
    query = parse_qs(parts.query)
    start_tls = (query.get("starttls", [""])[0]).strip().lower() in _TRUE
    use_tls = parts.scheme == "smtps"
    if use_tls and start_tls:
        raise MailConfigError("SMTP_URL: use smtps:// (TLS) or ?starttls=1, not both")
    return SmtpConfig(
        host=parts.hostname,
        port=port or (465 if use_tls else 587 if start_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=use_tls,
        start_tls=start_tls,
    )


def smtp_config(settings: Settings) -> SmtpConfig | None:
    return parse_smtp_url(settings.smtp_url) if settings.smtp_url else None


def mail_from(settings: Settings) -> str:
    return settings.mail_from or DEFAULT_FROM


def mail_problems(settings: Settings) -> list[str]:
    """Malformed values (any profile)."""
    found: list[str] = []
    if settings.smtp_url:
        try:
            parse_smtp_url(settings.smtp_url)
        except MailConfigError as exc:
            found.append(str(exc))
    if settings.mail_from and "@" not in parseaddr(settings.mail_from)[1]:
        found.append(
            f"MAIL_FROM must be an address like 'TopUp NG <no-reply@topup.ng>' (got {settings.mail_from!r})"
        )
    site = urlsplit(settings.site_url)
    if site.scheme not in {"http", "https"} or not site.hostname or site.path not in {"", "/"}:
        found.append(
            f"SITE_URL must be the site's base URL like https://topup.ng (got {settings.site_url!r})"
        )
    return found


def production_mail_problems(settings: Settings) -> list[str]:
    """What production additionally needs: a real SMTP server, a sender, and https links."""
    found = mail_problems(settings)
    if not settings.smtp_url:
        found.append("SMTP_URL is required (password resets and receipts are e-mailed)")
    if not settings.mail_from:
        found.append("MAIL_FROM is required (e.g. 'TopUp NG <no-reply@topup.ng>')")
    if not settings.site_url.startswith("https://") or "127.0.0.1" in settings.site_url:
        found.append("SITE_URL must be the public https:// address of the site (links in e-mails)")
    return found


__all__ = [
    "MailConfigError",
    "SmtpConfig",
    "mail_from",
    "mail_problems",
    "parse_smtp_url",
    "production_mail_problems",
    "smtp_config",
]
