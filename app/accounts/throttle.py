"""The accounts' throttle rules, all on the app's one helper (`app.core.throttle`): every password or PIN
check is counted before it is verified, so parallel guesses get at most the limit.

- log-in: per e-mail (`LOGIN_MAX_FAILURES`, cleared by the right password) and per client IP (four times as
  many: mobile networks put many customers behind one address; a right password gives its attempt back);
- password re-entry (changing the password or PIN, creating API keys, changing a callback URL): per user;
- transaction PIN: per user (`PIN_MAX_FAILURES`, `PIN_LOCKOUT_SECONDS`), see `pins.PinGuard`.
"""

from __future__ import annotations

from typing import Any

from app.accounts.models import User
from app.accounts.passwords import verify_password_async
from app.core.throttle import Bucket, Outcome, Rule, throttle_for

# A shared address gets this many times the per-account limit.
IP_FACTOR = 4


def _settings(state: Any) -> Any:
    return state.settings


def login_buckets(state: Any, email: str, ip: str) -> tuple[Bucket, Bucket]:
    settings = _settings(state)
    limit, window = settings.login_max_failures, settings.login_lockout_seconds
    return (
        (Rule("login-email", limit, window, clear_on_success=True), email.strip().lower()),
        (Rule("login-ip", limit * IP_FACTOR, window), ip),
    )


def password_buckets(state: Any, user: User, ip: str) -> tuple[Bucket, Bucket]:
    """Re-entering the password of a signed-in account: its own count (a stolen session must not get
    unlimited guesses), and the client IP's log-in count (guesses here and at log-in add up)."""
    settings = _settings(state)
    limit, window = settings.login_max_failures, settings.login_lockout_seconds
    return (
        (Rule("password", limit, window, clear_on_success=True), str(user.id)),
        (Rule("login-ip", limit * IP_FACTOR, window), ip),
    )


async def check_password(state: Any, user: User, password: str, ip: str) -> Outcome[bool]:
    """Verify a signed-in user's password through the throttle; raises `Throttled` unverified when full."""
    return await throttle_for(state.redis).guard(
        *password_buckets(state, user, ip),
        verify=lambda: verify_password_async(user.password_hash, password),
    )


def client_ip(connection: Any) -> str:
    return connection.client.host if connection.client else "unknown"


__all__ = ["check_password", "client_ip", "login_buckets", "password_buckets"]
