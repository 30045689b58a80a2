"""Reseller API keys: the `ApiKey` model and the rules for creating, listing and revoking keys.

A key looks like `vtu_<8 prefix chars>_<43 secret chars>` (~256 bits of randomness). Only its SHA-256 is
stored (`key_hash`, unique: a request is authenticated by hashing the presented key and looking the hash
up); the prefix is kept in clear so people can tell their keys apart. The full key is shown once, at
creation. Each key also gets a random callback signing secret (`whsec_...`, shown once with the key): when
the key has a callback URL, purchase-completion callbacks are signed with it (app/api/callbacks.py).

Revoking sets `revoked_at` (rows are kept: purchases point at the key that made them).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, Index, String, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.models import User
from app.accounts.services import FormErrors
from app.core.models import UUIDv7AuditBase

KEY_PREFIX = "vtu_"
PREFIX_LENGTH = 8
_PREFIX_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
MAX_ACTIVE_KEYS = 10
MAX_ALLOWED_IPS = 20
NAME_MAX = 60
CALLBACK_URL_MAX = 500
TIER_REFUSED = "API keys are for reseller accounts. Contact support to open one."


class ApiKey(UUIDv7AuditBase):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user_id_created_at", "user_id", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    # "vtu_ab3k9xq2": the start of the key, shown in lists so people can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    # hex SHA-256 of the whole key: the lookup on every request (the key itself is never stored).
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # HMAC-SHA256 key for purchase-completion callbacks (must be readable to sign; shown once to the owner).
    callback_secret: Mapped[str] = mapped_column(String(64))
    callback_url: Mapped[str | None] = mapped_column(String(CALLBACK_URL_MAX), default=None)
    # Client addresses or networks ("203.0.113.7", "198.51.100.0/24"); empty = any address.
    allowed_ips: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default=text("'[]'::jsonb"))
    last_used_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(120), default=None)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def display_prefix(self) -> str:
        return f"{self.prefix}…"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def generate_key() -> tuple[str, str]:
    """(full key, prefix)."""
    prefix = KEY_PREFIX + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def generate_callback_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 200


def parse_allowed_ips(raw: str) -> list[str]:
    """'203.0.113.7, 198.51.100.0/24' -> normalised networks; raises ValueError naming the bad entry."""
    entries = [part for part in raw.replace("\n", ",").replace(" ", ",").split(",") if part.strip()]
    if len(entries) > MAX_ALLOWED_IPS:
        raise ValueError(f"List at most {MAX_ALLOWED_IPS} addresses or networks.")
    networks: list[str] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{entry.strip()[:60]!r} is not an IP address or network.") from None
        if str(network) not in networks:
            networks.append(str(network))
    return networks


def ip_allowed(allowed: list[str] | None, client_ip: str | None) -> bool:
    if not allowed:
        return True
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_callback_url(raw: str, *, is_prod: bool) -> str | None:
    """A callback URL the worker may POST to, or None for ''. Raises ValueError with the reason.

    Production accepts https only and refuses literal private, loopback and link-local addresses and
    `localhost` (a customer must not make our worker call our own network)."""
    value = raw.strip()
    if not value:
        return None
    if len(value) > CALLBACK_URL_MAX:
        raise ValueError(f"Use at most {CALLBACK_URL_MAX} characters.")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("Enter a full URL like https://example.com/vtu/callback.") from None
    allowed_schemes = ("https",) if is_prod else ("https", "http")
    if parts.scheme not in allowed_schemes or not parts.hostname:
        raise ValueError("Enter a full https:// URL." if is_prod else "Enter a full http(s):// URL.")
    if parts.username or parts.password:
        raise ValueError("The URL must not contain a user name or password.")
    if is_prod:
        host = parts.hostname.lower()
        if host == "localhost" or host.endswith(".localhost") or host.endswith(".internal"):
            raise ValueError("Use a public address.")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and not address.is_global:
            raise ValueError("Use a public address.")
        if port is not None and port not in (443, 8443):
            raise ValueError("Use the standard https port.")
    return value


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: `secret` and `callback_secret` exist only here (shown once)."""

    key: ApiKey
    secret: str
    callback_secret: str


class ApiKeyService:
    """API key rules on the caller's session (the caller commits)."""

    def __init__(
        self, session: AsyncSession, *, is_prod: bool = False, allowed_tiers: tuple[str, ...] | None = None
    ) -> None:
        self.session = session
        self.is_prod = is_prod
        # API_KEY_TIERS: who may hold keys (None = anyone; the app passes its setting).
        self.allowed_tiers = allowed_tiers

    async def create(
        self,
        user: User,
        *,
        name: str = "",
        allowed_ips: str = "",
        callback_url: str = "",
    ) -> NewApiKey:
        """Validate everything first; raise FormErrors (field -> message) or add the key to the session."""
        errors: dict[str, str] = {}
        clean_name = " ".join(name.split()) or "API key"
        if len(clean_name) > NAME_MAX:
            errors["name"] = f"Use at most {NAME_MAX} characters."
        networks: list[str] = []
        try:
            networks = parse_allowed_ips(allowed_ips)
        except ValueError as exc:
            errors["allowed_ips"] = str(exc)
        url = None
        try:
            url = check_callback_url(callback_url, is_prod=self.is_prod)
        except ValueError as exc:
            errors["callback_url"] = str(exc)
        if not user.is_active:
            errors["__all__"] = "This account is not active."
        elif user.suspended:
            errors["__all__"] = "This account is suspended: contact support."
        elif not self.tier_allowed(user):
            errors["__all__"] = TIER_REFUSED
        elif await self.count_active(user.id) >= MAX_ACTIVE_KEYS:
            errors["__all__"] = f"You can have at most {MAX_ACTIVE_KEYS} active keys. Revoke one first."
        if errors:
            raise FormErrors(errors)
        secret, prefix = generate_key()
        callback_secret = generate_callback_secret()
        key = ApiKey(
            id=uuid.uuid4(),
            user_id=user.id,
            name=clean_name,
            prefix=prefix,
            key_hash=hash_key(secret),
            callback_secret=callback_secret,
            callback_url=url,
            allowed_ips=networks,
        )
        self.session.add(key)
        await self.session.flush()
        await _mail_key_created(self.session, key)
        return NewApiKey(key, secret, callback_secret)

    def tier_allowed(self, user: User) -> bool:
        return self.allowed_tiers is None or user.tier in self.allowed_tiers

    async def change_callback_url(self, key_id: uuid.UUID, user: User, raw_url: str) -> ApiKey:
        """Point one of the user's active keys' completion callbacks at `raw_url` ('' removes it). Raises
        FormErrors; the caller has already confirmed the user's identity (step-up) and commits."""
        try:
            url = check_callback_url(raw_url, is_prod=self.is_prod)
        except ValueError as exc:
            raise FormErrors({"callback_url": str(exc)}) from None
        key = await self.session.get(ApiKey, key_id)
        if key is None or key.user_id != user.id or key.revoked_at is not None:
            raise FormErrors({"__all__": "That key does not exist or has been revoked."})
        key.callback_url = url
        await self.session.flush()
        return key

    async def count_active(self, user_id: uuid.UUID) -> int:
        stmt = select(func.count()).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        return int((await self.session.execute(stmt)).scalar_one())

    async def list_for_user(self, user_id: uuid.UUID, *, revoked_limit: int = 10) -> list[ApiKey]:
        """Active keys (newest first), then the most recently revoked ones."""
        active = (
            await self.session.execute(
                select(ApiKey)
                .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .order_by(ApiKey.created_at.desc())
            )
        ).scalars()
        revoked = (
            await self.session.execute(
                select(ApiKey)
                .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_not(None))
                .order_by(ApiKey.revoked_at.desc())
                .limit(revoked_limit)
            )
        ).scalars()
        return [*active, *revoked]

    async def list_active(self, *, limit: int = 100) -> list[tuple[ApiKey, str]]:
        """For staff: active keys with their owner's e-mail, most recently used first."""
        rows = await self.session.execute(
            select(ApiKey, User.email)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.last_used_at.desc().nulls_last(), ApiKey.created_at.desc())
            .limit(limit)
        )
        return [(key, email) for key, email in rows.tuples()]

    async def find(self, ident: str) -> ApiKey | None:
        """A key by id or by its displayed prefix (for staff and the CLI)."""
        ident = ident.strip().rstrip("…")
        try:
            return await self.session.get(ApiKey, uuid.UUID(ident))
        except ValueError:
            pass
        rows = list(
            (await self.session.execute(select(ApiKey).where(ApiKey.prefix == ident).limit(2))).scalars()
        )
        return rows[0] if len(rows) == 1 else None

    async def revoke(self, key_id: uuid.UUID, *, by: str, user_id: uuid.UUID | None = None) -> bool:
        """Revoke a key (only the user's own with `user_id`). True if this call revoked it."""
        stmt = (
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now(), revoked_by=by[:120], updated_at=func.now())
            .returning(ApiKey.id)
            .execution_options(synchronize_session=False)
        )
        if user_id is not None:
            stmt = stmt.where(ApiKey.user_id == user_id)
        return (await self.session.execute(stmt)).first() is not None


async def _mail_key_created(session: AsyncSession, key: ApiKey) -> None:
    """ "A new API key was created" e-mail, in the creating transaction (sent after it commits)."""
    from app.core.templating import lagos_time
    from app.mail import outbox

    mail_id = await outbox.add(
        session,
        key=f"api-key:{key.id}",
        user_id=key.user_id,
        template="api_key_created",
        preference="api_key",
        context={
            "key_name": key.name,
            "prefix": key.prefix,
            "created_at": lagos_time(datetime.datetime.now(datetime.UTC)),
        },
    )
    outbox.kick_after_commit(session, mail_id)


__all__ = [
    "ApiKey",
    "ApiKeyService",
    "NewApiKey",
    "check_callback_url",
    "generate_key",
    "hash_key",
    "ip_allowed",
    "looks_like_key",
    "parse_allowed_ips",
]
