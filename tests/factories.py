"""polyfactory factories for models and the inputs that create them."""

from __future__ import annotations

import itertools
from typing import Any

from polyfactory import Use
from polyfactory.factories import DataclassFactory
from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory

from app.accounts.models import User
from app.accounts.services import SignUp, UserService

PASSWORD = "correct-horse-9"
_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


class SignUpFactory(DataclassFactory[SignUp]):
    __check_model__ = False
    email = Use(lambda: f"user{_n()}@example.ng")
    password = PASSWORD
    full_name = Use(lambda: f"Test User {_n()}")
    phone = Use(lambda: f"080{_n() % 100_000_000:08d}")
    referral_code = None
    tier = "customer"
    is_staff = False
    is_superuser = False
    staff_role = None
    # Factory users are established, verified customers; web sign-ups (tests.helpers.sign_up) are not.
    email_verified = True


class UserFactory(SQLAlchemyFactory[User]):
    """Builds detached User rows (for unit tests of rendering/rules); use create_user() to persist."""

    __check_model__ = False
    __set_relationships__ = False
    email = Use(lambda: f"user{_n()}@example.ng")
    phone = Use(lambda: f"081{_n() % 100_000_000:08d}")
    tier = "customer"
    referred_by_id = None
    is_active = True
    is_staff = False
    is_superuser = False
    staff_role = None
    suspended_at = None
    suspended_reason = None
    password_version = 1


async def create_user(session: Any, **overrides: Any) -> User:
    """Persist a user through the real sign-up service (so wallets and other hooks are created too)."""
    return await UserService(session=session).register(SignUpFactory.build(**overrides))
