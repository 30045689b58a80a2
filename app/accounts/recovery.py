"""Getting back in and proving an address: password-reset links and e-mail verification links.

Both are single-use tokens e-mailed as `{SITE_URL}/password/reset/<token>` (30 minutes) and
`{SITE_URL}/account/verify/<token>` (48 hours): 32 random bytes (urlsafe), of which only the SHA-256 is
stored (`account_tokens`). A token is used up by ONE guarded UPDATE (`used_at IS NULL AND expires_at >
now()`), so two clicks -- or two racing requests -- use it once. The e-mail is written to the outbox in the
same transaction and handed to the worker after commit; nothing here talks SMTP.

- Reset: asking again invalidates the user's older reset links. Completing it sets the new password, bumps
  `password_version` (which signs out every session, see auth.py), clears the transaction PIN (the way back
  for a forgotten PIN), e-mails "password changed", and does NOT log anyone in. Inactive (suspended)
  accounts get no link.
- Verification: sent at web sign-up and on request ("resend"); verifying sets `users.email_verified_at`
  once (guarded UPDATE) and emits EMAIL_VERIFIED in that transaction (referral bonuses withheld until now
  are paid there). A used link for an already-verified account answers "already verified".
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.hooks import on_user_signed_up
from app.accounts.models import RESET, VERIFY, AccountToken, User
from app.accounts.passwords import hash_password_async
from app.accounts.services import FormErrors
from app.core.events import EMAIL_VERIFIED, EmailVerified
from app.core.validation import password_problem
from app.mail import outbox

log = structlog.get_logger("app.accounts.recovery")

RESET_TTL = datetime.timedelta(minutes=30)
VERIFY_TTL = datetime.timedelta(hours=48)
TOKEN_BYTES = 32


def new_token() -> tuple[str, str]:
    """(the token for the link, its SHA-256 hex for the table)."""
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    return raw, token_hash(raw)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def reset_link(site_url: str, raw: str) -> str:
    return f"{site_url.rstrip('/')}/password/reset/{raw}"


def verify_link(site_url: str, raw: str) -> str:
    return f"{site_url.rstrip('/')}/account/verify/{raw}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def _issue(
    session: AsyncSession, user: User, purpose: str, ttl: datetime.timedelta
) -> tuple[AccountToken, str]:
    raw, digest = new_token()
    token = AccountToken(
        id=uuid.uuid4(), user_id=user.id, purpose=purpose, token_hash=digest, email=user.email,
        expires_at=_now() + ttl,
    )  # fmt: skip
    session.add(token)
    await session.flush()
    return token, raw


# --- password reset ---------------------------------------------------------------------------------------


async def request_reset(session: AsyncSession, email: str, *, site_url: str) -> int | None:
    """Record a reset link for the account with this e-mail, if there is an active one, and its e-mail
    (returns the outbox id; None when there is no such account). The caller commits and answers the SAME
    way either way."""
    user = (
        await session.execute(select(User).where(User.email == email.strip().lower()))
    ).scalar_one_or_none()
    if user is None or not user.is_active:
        log.info("password_reset_unknown_address")
        return None
    # A new link replaces the older ones still unused.
    await session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user.id, AccountToken.purpose == RESET, AccountToken.used_at.is_(None))
        .values(used_at=_now())
    )
    token, raw = await _issue(session, user, RESET, RESET_TTL)
    mail_id = await outbox.add(
        session,
        key=f"reset:{token.id}",
        user_id=user.id,
        template="password_reset",
        context={"link": reset_link(site_url, raw), "minutes": int(RESET_TTL.total_seconds() // 60)},
        sensitive=True,
        expires_at=token.expires_at,
    )
    outbox.kick_after_commit(session, mail_id)
    log.info("password_reset_requested", user_id=str(user.id))
    return mail_id


async def reset_token_valid(session: AsyncSession, raw: str) -> bool:
    row = (
        await session.execute(
            select(AccountToken.id).where(
                AccountToken.token_hash == token_hash(raw),
                AccountToken.purpose == RESET,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > _now(),
            )
        )
    ).first()
    return row is not None


class InvalidLink(Exception):
    """Unknown, expired or already used."""


_CONSUME = text(
    "UPDATE account_tokens SET used_at = now(), updated_at = now()"
    " WHERE token_hash = :hash AND purpose = :purpose AND used_at IS NULL AND expires_at > now()"
    " RETURNING user_id, email"
)
_SET_PASSWORD = text(
    # The transaction PIN goes too: a reset is how a customer who forgot the PIN gets back to setting one
    # (changing a PIN needs the current one), and whoever controls the e-mail controls the account anyway.
    "UPDATE users SET password_hash = :hash, password_version = password_version + 1, pin_hash = NULL,"
    " updated_at = now() WHERE id = :id AND is_active AND email = :email RETURNING password_version"
)


async def reset_password(session: AsyncSession, raw: str, password: str, confirm: str) -> uuid.UUID:
    """Use the link: set the new password (every session ends), e-mail "password changed". Raises
    FormErrors (the form's fields) or InvalidLink. The caller commits."""
    errors: dict[str, str] = {}
    if problem := password_problem(password):
        errors["password"] = problem
    elif password != confirm:
        errors["password_confirm"] = "The two passwords do not match."
    if errors:
        raise FormErrors(errors)
    password_hash = await hash_password_async(password)  # before the transaction: argon2 takes a while
    used = (await session.execute(_CONSUME, {"hash": token_hash(raw), "purpose": RESET})).first()
    if used is None:
        raise InvalidLink()
    changed = (
        await session.execute(_SET_PASSWORD, {"hash": password_hash, "id": used.user_id, "email": used.email})
    ).first()
    if changed is None:  # suspended since, or the address changed: the link was for someone else
        raise InvalidLink()
    await mail_password_changed(session, used.user_id, version=int(changed.password_version), via="reset")
    log.info("password_reset_done", user_id=str(used.user_id))
    return used.user_id


async def mail_password_changed(session: AsyncSession, user_id: uuid.UUID, *, version: int, via: str) -> None:
    """The "your password was changed" e-mail (one per password version), sent after the caller commits."""
    from app.core.templating import lagos_time

    mail_id = await outbox.add(
        session,
        key=f"password-changed:{user_id}:{version}",
        user_id=user_id,
        template="password_changed",
        preference="password",
        context={"via": via, "changed_at": lagos_time(_now())},
    )
    outbox.kick_after_commit(session, mail_id)


# --- e-mail verification ------------------------------------------------------------------------------------


async def send_verification(session: AsyncSession, user: User, *, site_url: str) -> int | None:
    """Record a verification link and its e-mail (the caller commits). Nothing for a verified user."""
    if user.email_verified_at is not None:
        return None
    token, raw = await _issue(session, user, VERIFY, VERIFY_TTL)
    mail_id = await outbox.add(
        session,
        key=f"verify:{token.id}",
        user_id=user.id,
        template="verify_email",
        context={"link": verify_link(site_url, raw), "hours": int(VERIFY_TTL.total_seconds() // 3600)},
        sensitive=True,
        expires_at=token.expires_at,
    )
    outbox.kick_after_commit(session, mail_id)
    return mail_id


VERIFIED = "verified"
ALREADY = "already"
INVALID = "invalid"

_TOKEN_OWNER = text(
    "SELECT t.user_id, u.email_verified_at FROM account_tokens t JOIN users u ON u.id = t.user_id"
    " WHERE t.token_hash = :hash AND t.purpose = :purpose"
)
_MARK_VERIFIED = text(
    "UPDATE users SET email_verified_at = now(), updated_at = now()"
    " WHERE id = :id AND email = :email AND email_verified_at IS NULL RETURNING email_verified_at"
)


@dataclass(frozen=True, slots=True)
class Verification:
    outcome: str  # verified | already | invalid
    user_id: uuid.UUID | None = None


async def verify_email(session: AsyncSession, raw: str) -> Verification:
    """Use a verification link (the caller commits). Exactly one request -- whatever races -- moves the
    user to verified and emits EMAIL_VERIFIED."""
    digest = token_hash(raw)
    used = (await session.execute(_CONSUME, {"hash": digest, "purpose": VERIFY})).first()
    if used is None:
        owner = (await session.execute(_TOKEN_OWNER, {"hash": digest, "purpose": VERIFY})).first()
        if owner is not None and owner.email_verified_at is not None:
            return Verification(ALREADY, owner.user_id)
        return Verification(INVALID)
    marked = (await session.execute(_MARK_VERIFIED, {"id": used.user_id, "email": used.email})).first()
    if marked is None:
        return Verification(ALREADY, used.user_id)
    await EMAIL_VERIFIED.emit(session, EmailVerified(used.user_id, marked.email_verified_at))
    log.info("email_verified", user_id=str(used.user_id))
    return Verification(VERIFIED, used.user_id)


@on_user_signed_up
async def verify_after_signup(state: Any, user: User) -> None:
    """Web sign-up (after its commit): e-mail the verification link."""
    settings = state.settings
    async with state.alchemy.create_session_maker()() as session:
        fresh = await session.get(User, user.id)
        if fresh is None:
            return
        await send_verification(session, fresh, site_url=settings.site_url)
        await session.commit()


__all__ = [
    "ALREADY",
    "INVALID",
    "RESET_TTL",
    "VERIFIED",
    "VERIFY_TTL",
    "InvalidLink",
    "Verification",
    "mail_password_changed",
    "new_token",
    "request_reset",
    "reset_link",
    "reset_password",
    "reset_token_valid",
    "send_verification",
    "token_hash",
    "verify_email",
    "verify_link",
]
