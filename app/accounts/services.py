"""Account rules: registration, authentication, password changes. Never renders anything."""

from __future__ import annotations

import datetime
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import BindParameter, ScalarSelect, func, select
from sqlalchemy.exc import IntegrityError

from app.accounts.models import TIERS, User
from app.accounts.passwords import hash_password_async, verify_password_async
from app.accounts.staff_roles import ADMIN, OPERATIONS, ROLES
from app.core.throttle import Throttled
from app.core.validation import InvalidPhone, normalise_email, normalise_phone, password_problem

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed


def new_referral_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


def new_account_reference() -> str:
    return "VTU" + "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))


@dataclass
class FormErrors(Exception):
    """Field -> message. Raised by services, rendered by controllers next to each field."""

    fields: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.fields.items())


@dataclass(frozen=True, slots=True)
class SignUp:
    email: str
    password: str
    full_name: str = ""
    phone: str | None = None
    referral_code: str | None = None
    tier: str = "customer"
    is_staff: bool = False
    is_superuser: bool = False
    # A staff role (app.accounts.staff_roles); `is_staff` alone means operations, `is_superuser` admin.
    staff_role: str | None = None
    # Web sign-ups prove their address with an e-mailed link; accounts an operator creates (CLI, demo
    # data) are trusted as given.
    email_verified: bool = False


def _staff_role(form: SignUp) -> str | None:
    if form.is_superuser:
        return ADMIN
    if form.staff_role is not None:
        return form.staff_role
    return OPERATIONS if form.is_staff else None


class UserRepository(SQLAlchemyAsyncRepository[User]):
    model_type = User


class UserService(SQLAlchemyAsyncRepositoryService[User, UserRepository]):
    repository_type = UserRepository

    async def get_by_email(self, email: str) -> User | None:
        return await self.get_one_or_none(User.email == email.strip().lower())

    async def get_by_referral_code(self, code: str) -> User | None:
        return await self.get_one_or_none(User.referral_code == code.strip().upper())

    async def register(self, form: SignUp, *, commit: bool = True) -> User:
        """Create a user (and everything a user owns) in the caller's transaction, or raise FormErrors.

        Validation happens before any write; a unique-key race is turned into the same field error.
        """
        errors: dict[str, str] = {}
        email = phone = None
        try:
            email = normalise_email(form.email)
        except ValueError as exc:
            errors["email"] = str(exc)
        if form.phone is not None:
            try:
                phone = normalise_phone(form.phone)
            except InvalidPhone as exc:
                errors["phone"] = str(exc)
        name = " ".join(form.full_name.split())
        if form.full_name is not None and len(name) > 120:
            errors["full_name"] = "Use at most 120 characters."
        if problem := password_problem(form.password):
            errors["password"] = problem
        staff_role = _staff_role(form)
        if form.staff_role is not None and form.staff_role not in ROLES:
            errors["staff_role"] = f"Role must be one of {', '.join(ROLES)}."
        if form.is_superuser and form.staff_role not in (None, ADMIN):
            errors["staff_role"] = "A superuser is an admin; leave the role out or choose admin."
        if form.tier not in TIERS:
            errors["tier"] = f"Tier must be one of {', '.join(TIERS)}."
        referrer: User | None = None
        if form.referral_code and form.referral_code.strip():
            referrer = await self.get_by_referral_code(form.referral_code)
            if referrer is not None and (not referrer.is_active or referrer.suspended):
                referrer = None  # a closed or suspended account cannot refer anyone
            if referrer is None:
                errors["referral_code"] = "No customer has that referral code. Check it or leave it empty."
        if email and not errors.get("email") and await self.exists(User.email == email):
            errors["email"] = "An account with this e-mail already exists. Log in instead."
        if phone and await self.exists(User.phone == phone):
            errors["phone"] = "An account with this phone number already exists."
        if errors:
            raise FormErrors(errors)
        assert email is not None
        user = User(
            email=email,
            phone=phone,
            full_name=name,
            password_hash=await hash_password_async(form.password),
            tier=form.tier,
            is_staff=staff_role is not None,
            is_superuser=form.is_superuser,
            staff_role=staff_role,
            account_reference=new_account_reference(),
            referral_code=new_referral_code(),
            referred_by_id=referrer.id if referrer else None,
            email_verified_at=datetime.datetime.now(datetime.UTC) if form.email_verified else None,
        )
        session = self.repository.session
        try:
            async with session.begin_nested():
                session.add(user)
                await session.flush()
                await on_user_created(session, user)
        except IntegrityError as exc:
            raise _integrity_to_form_errors(exc) from exc
        if commit:
            await session.commit()
        return user

    async def authenticate(self, email: str, password: str) -> User | None:
        user = await self.get_by_email(email)
        ok = await verify_password_async(user.password_hash if user else None, password)
        if not (ok and user and user.is_active):
            return None
        if user.suspended:  # the right password, but no session: the caller says the account is suspended
            return user
        user.last_login_at = datetime.datetime.now(datetime.UTC)
        return user

    async def change_password(
        self, user: User, current: str, new: str, confirm: str, *, state: Any, ip: str
    ) -> User:
        """Every field is checked and reported together; the current password goes through the re-entry
        throttle (`throttle.check_password`)."""
        from app.accounts.throttle import check_password

        errors: dict[str, str] = {}
        try:
            outcome = await check_password(state, user, current, ip)
            if not outcome.value:
                errors["current_password"] = "Your current password is not correct."
        except Throttled as exc:
            errors["current_password"] = f"Too many wrong passwords. Try again in {exc.wait_text()}."
        if problem := password_problem(new):
            errors["new_password"] = problem
        elif new != confirm:
            errors["confirm_password"] = "The two new passwords do not match."
        elif new == current:
            errors["new_password"] = "Choose a password different from the current one."
        if errors:
            raise FormErrors(errors)
        user.password_hash = await hash_password_async(new)
        user.password_version = user.password_version + 1
        await self.repository.session.flush()
        from app.accounts.recovery import mail_password_changed

        session: Any = self.repository.session
        await mail_password_changed(session, user.id, version=user.password_version, via="change")
        return user

    @staticmethod
    def count_referred_query(user_id: uuid.UUID | BindParameter[uuid.UUID]) -> ScalarSelect[int]:
        """How many users the user referred, as a scalar subquery (the dashboard reads it with the balance;
        given a bound parameter, it builds a statement once for every user)."""
        return select(func.count()).select_from(User).where(User.referred_by_id == user_id).scalar_subquery()

    async def count_referred(self, user: User) -> int:
        return int(
            (await self.repository.session.execute(select(self.count_referred_query(user.id)))).scalar_one()
        )


def _integrity_to_form_errors(exc: IntegrityError) -> FormErrors:
    text = str(exc.orig)
    if "email" in text:
        return FormErrors({"email": "An account with this e-mail already exists. Log in instead."})
    if "phone" in text:
        return FormErrors({"phone": "An account with this phone number already exists."})
    return FormErrors({"__all__": "We could not create the account. Please try again."})


async def on_user_created(session: object, user: User) -> None:
    """Everything a new user owns is created here, inside the sign-up transaction.

    The ledger opens the customer's wallet; funding queues the reserved-account request.
    """
    from app.accounts import hooks

    for hook in hooks.USER_CREATED:
        await hook(session, user)


async def run_signed_up_hooks(state: object, user: User) -> None:
    """After the sign-up commit: let other domains queue follow-up work. Never fails the sign-up."""
    import structlog

    from app.accounts import hooks

    for hook in hooks.USER_SIGNED_UP:
        try:
            await hook(state, user)
        except Exception:
            structlog.get_logger("app.accounts").exception("signed_up_hook_failed", hook=hook.__qualname__)
