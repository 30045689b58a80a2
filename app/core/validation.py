"""Input rules shared by the web forms and the reseller API: Nigerian phone numbers, e-mail, money."""

from __future__ import annotations

import re

_PHONE_LOCAL = re.compile(r"^0[789][01][0-9]{8}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
# VTpass sandbox numbers: accepted for purchases outside production only.
SANDBOX_PHONES = frozenset({"08011111111", "201000000000", "500000000000", "400000000000", "300000000000"})


class InvalidPhone(ValueError):
    pass


def normalise_phone(raw: str, *, allow_sandbox: bool = False) -> str:
    """Return the local form 0XXXXXXXXXX for 0XXXXXXXXXX, 234XXXXXXXXXX or +234XXXXXXXXXX input."""
    value = re.sub(r"[\s\-()]", "", raw or "")
    if allow_sandbox and value in SANDBOX_PHONES:
        return value
    if value.startswith("+234"):
        value = "0" + value[4:]
    elif value.startswith("234") and len(value) == 13:
        value = "0" + value[3:]
    if not _PHONE_LOCAL.fullmatch(value):
        raise InvalidPhone("Enter a Nigerian mobile number like 08031234567 or +2348031234567.")
    return value


def normalise_email(raw: str) -> str:
    value = (raw or "").strip().lower()
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError("Enter a valid e-mail address.")
    return value


def password_problem(password: str) -> str | None:
    """Why a new password is unacceptable, or None."""
    if len(password) < 8:
        return "Use at least 8 characters."
    if len(password) > 128:
        return "Use at most 128 characters."
    if password.isdigit() or password.lower() in {"password", "password1", "12345678", "qwertyui"}:
        return "That password is too easy to guess."
    return None


def escape_like(value: str) -> str:
    """`value` as a literal in a LIKE / ILIKE pattern (escape="\\"): its %, _ and \\ match themselves."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
