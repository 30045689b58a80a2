"""Sign-up, log-in, log-out, password change and the customer's dashboard. Thin: parse, call, render.

Forms work as plain posts (full page, 303 on success) and as htmx posts (the form partial is swapped in
place with inline errors; success sends HX-Redirect).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import current_user, login_session, requires_login
from app.accounts.models import User
from app.accounts.services import FormErrors, SignUp, UserService, run_signed_up_hooks
from app.accounts.sessions import rotate
from app.accounts.staff_roles import role_of
from app.accounts.throttle import client_ip, login_buckets
from app.core.db import reads_only
from app.core.flash import flash
from app.core.redirects import DEFAULT_NEXT, done, safe_next
from app.core.throttle import Throttled, throttle_for
from app.ledger.queries import wallet_balance_query

FORM_ERROR_STATUS = 422
SUSPENDED_LOGIN = "This account is suspended: contact support."


def _form_page(
    request: HTMXRequest, page: str, partial: str, context: dict[str, Any], status: int = 200
) -> Template:
    name = partial if request.htmx else page
    return Template(template_name=name, context=context, status_code=status, media_type=MediaType.HTML)


# Friends referred and the wallet balance in one statement, built once (no expression building per request):
# `UserService.count_referred_query` and `wallet_balance_query` side by side (bench/README.md, "pages").
_DASHBOARD_FIGURES = select(
    UserService.count_referred_query(bindparam("user_id")), wallet_balance_query(bindparam("user_id"))
)


async def _dashboard_figures(db_session: AsyncSession, user: User) -> tuple[int, int]:
    """(friends referred, wallet balance in kobo), one round trip."""
    row = (await db_session.execute(_DASHBOARD_FIGURES, {"user_id": user.id})).one()
    return int(row[0]), int(row[1] or 0)


class AccountController(Controller):
    include_in_schema = False

    @get("/signup", name="signup")
    async def signup_page(self, request: HTMXRequest, ref: str | None = None) -> Template | Redirect:
        if current_user(request):
            return Redirect("/dashboard", status_code=303)
        return Template(
            template_name="accounts/signup.html",
            context={"form": {"referral_code": (ref or "").strip().upper()[:16]}, "errors": {}},
        )

    @post("/signup", status_code=200)
    async def signup(self, request: HTMXRequest, db_session: AsyncSession) -> Any:
        form = await request.form()
        values = {
            k: str(form.get(k, "")) for k in ("full_name", "email", "phone", "password", "referral_code")
        }
        users = UserService(session=db_session)
        try:
            user = await users.register(
                SignUp(
                    email=values["email"],
                    password=values["password"],
                    full_name=values["full_name"],
                    phone=values["phone"],
                    referral_code=values["referral_code"] or None,
                )
            )
        except FormErrors as exc:
            values.pop("password")
            return _form_page(
                request,
                "accounts/signup.html",
                "accounts/partials/signup_form.html",
                {"form": values, "errors": exc.fields},
                FORM_ERROR_STATUS,
            )
        login_session(request, user)
        await run_signed_up_hooks(request.app.state, user)
        flash(request, f"Welcome, {user.display_name}! Your wallet is ready.", category="success")
        return done(request, "/dashboard")

    @get("/login", name="login")
    async def login_page(self, request: HTMXRequest, next: str | None = None) -> Template | Redirect:
        if current_user(request):
            return Redirect(safe_next(next), status_code=303)
        return Template(
            template_name="accounts/login.html",
            context={"form": {"next": safe_next(next, default="")}, "errors": {}},
        )

    @post("/login", status_code=200)
    async def login(self, request: HTMXRequest, db_session: AsyncSession) -> Any:
        form = await request.form()
        email = str(form.get("email", "")).strip().lower()
        password = str(form.get("password", ""))
        # No (safe) `next`: customers go to their dashboard, staff to the console's live overview.
        target = safe_next(str(form.get("next", "")) or None, default="")
        context: dict[str, Any] = {"form": {"email": email, "next": target}, "errors": {}}
        users = UserService(session=db_session)
        try:
            outcome = await throttle_for(request.app.state.redis).guard(
                *login_buckets(request.app.state, email, client_ip(request)),
                verify=lambda: users.authenticate(email, password),
            )
        except Throttled as exc:
            context["errors"] = {"__all__": f"Too many failed attempts. Try again in {exc.wait_text()}."}
            page = _form_page(
                request, "accounts/login.html", "accounts/partials/login_form.html", context, 429
            )
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        user = outcome.value
        if user is None:
            context["errors"] = {"__all__": "That e-mail and password do not match an account."}
            return _form_page(
                request,
                "accounts/login.html",
                "accounts/partials/login_form.html",
                context,
                FORM_ERROR_STATUS,
            )
        if user.suspended:  # only told to whoever knows the password; no session is created
            context["errors"] = {"__all__": SUSPENDED_LOGIN}
            return _form_page(
                request,
                "accounts/login.html",
                "accounts/partials/login_form.html",
                context,
                FORM_ERROR_STATUS,
            )
        await db_session.commit()
        login_session(request, user)
        return done(request, target or ("/staff" if role_of(user) else DEFAULT_NEXT))

    @post("/logout", status_code=303)
    async def logout(self, request: HTMXRequest) -> Response[Any]:
        request.clear_session()
        rotate(request)  # the signed-in id is deleted; the goodbye message lives under a new one
        flash(request, "You have been logged out.", category="info")
        return done(request, "/login")

    @get("/account/password", guards=[requires_login])
    async def password_page(self) -> Template:
        return Template(template_name="accounts/password.html", context={"errors": {}})

    @post("/account/password", guards=[requires_login], status_code=200)
    async def change_password(self, request: HTMXRequest, db_session: AsyncSession) -> Any:
        form = await request.form()
        user: User = request.user
        try:
            await UserService(session=db_session).change_password(
                user,
                str(form.get("current_password", ""))[:1000],
                str(form.get("new_password", ""))[:1000],
                str(form.get("confirm_password", ""))[:1000],
                state=request.app.state,
                ip=client_ip(request),
            )
        except FormErrors as exc:
            return _form_page(
                request,
                "accounts/password.html",
                "accounts/partials/password_form.html",
                {"errors": exc.fields},
                FORM_ERROR_STATUS,
            )
        await db_session.commit()
        login_session(request, user, end_others=True)  # this device stays signed in under a new id
        flash(request, "Password changed. Other devices have been signed out.", category="success")
        return done(request, "/dashboard")

    @get("/dashboard", guards=[requires_login], name="dashboard")
    async def dashboard(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        user: User = request.user
        await reads_only(db_session)
        referred, balance = await _dashboard_figures(db_session, user)
        return Template(
            template_name="accounts/dashboard.html",
            context={"user": user, "referred": referred, "wallet_balance_kobo": balance},
        )
