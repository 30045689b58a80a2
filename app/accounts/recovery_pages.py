"""Pages for getting back in and proving an address (rules in recovery.py). Thin: parse, call, render.

- `GET|POST /password/forgot` (field `email`): the same answer (status and page) whether or not an
  account has that address; throttled per address and per client IP (429, same wording for everyone).
- `GET|POST /password/reset/<token>` (fields `password`, `password_confirm`): a bad, expired or used link
  shows a clear message with a link to ask for a new one (400); success signs out every session, logs
  nobody in, and sends the browser to /login with a notice.
- `GET /account/verify/<token>`: verifies the address (idempotent: "already verified" for a used link of
  a verified account). `POST /account/verify/resend` (login required; plain form or htmx): a new link,
  throttled per user.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import recovery
from app.accounts.auth import requires_login
from app.accounts.models import User
from app.accounts.services import FormErrors
from app.accounts.sessions import end_sessions, rotate
from app.core.flash import flash
from app.core.throttle import Rule, Throttled, throttle_for
from app.core.validation import normalise_email

FORGOT_PER_EMAIL = Rule("forgot-email", limit=3, window_seconds=3600)
FORGOT_PER_IP = Rule("forgot-ip", limit=20, window_seconds=3600)
RESEND_PER_MINUTE = Rule("verify-resend-minute", limit=1, window_seconds=60)
RESEND_PER_HOUR = Rule("verify-resend-hour", limit=5, window_seconds=3600)
TOKEN_MAX = 200  # longer than any token we issue: refused without a query


def _page(name: str, context: dict[str, Any], status: int = 200) -> Template:
    return Template(template_name=name, context=context, status_code=status, media_type=MediaType.HTML)


def _minutes(seconds: int) -> str:
    minutes = max(1, (seconds + 59) // 60)
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


def _token_ok(token: str) -> bool:
    return 0 < len(token) <= TOKEN_MAX


class RecoveryController(Controller):
    include_in_schema = False

    @get("/password/forgot", name="password:forgot")
    async def forgot_page(self) -> Template:
        return _page("accounts/forgot.html", {"form": {}, "errors": {}})

    @post("/password/forgot", status_code=200)
    async def forgot(self, request: HTMXRequest, db_session: AsyncSession) -> Template:
        form = await request.form()
        raw = str(form.get("email", ""))[:300]
        try:
            email = normalise_email(raw)
        except ValueError as exc:
            return _page("accounts/forgot.html", {"form": {"email": raw}, "errors": {"email": str(exc)}}, 422)
        ip = request.client.host if request.client else "unknown"
        try:
            await throttle_for(request.app.state.redis).hit((FORGOT_PER_EMAIL, email), (FORGOT_PER_IP, ip))
        except Throttled as exc:
            # Counted per address whether or not it has an account: this says nothing about who exists.
            page = _page(
                "accounts/forgot.html",
                {
                    "form": {"email": email},
                    "errors": {
                        "__all__": f"Too many reset requests. Try again in {_minutes(exc.retry_after)}."
                    },
                },
                429,
            )
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        await recovery.request_reset(db_session, email, site_url=request.app.state.settings.site_url)
        await db_session.commit()
        # The same page, byte for byte, whether or not the address has an account.
        return _page("accounts/forgot_sent.html", {})

    @get("/password/reset/{token:str}", name="password:reset")
    async def reset_page(self, token: str, db_session: AsyncSession) -> Template:
        if not (_token_ok(token) and await recovery.reset_token_valid(db_session, token)):
            return _page("accounts/reset_invalid.html", {}, 400)
        return _page("accounts/reset.html", {"token": token, "errors": {}})

    @post("/password/reset/{token:str}", status_code=200)
    async def reset(self, request: HTMXRequest, token: str, db_session: AsyncSession) -> Template | Redirect:
        if not _token_ok(token):
            return _page("accounts/reset_invalid.html", {}, 400)
        form = await request.form()
        try:
            user_id = await recovery.reset_password(
                db_session, token, str(form.get("password", "")), str(form.get("password_confirm", ""))
            )
        except FormErrors as exc:
            await db_session.rollback()
            return _page("accounts/reset.html", {"token": token, "errors": exc.fields}, 422)
        except recovery.InvalidLink:
            await db_session.rollback()
            return _page("accounts/reset_invalid.html", {}, 400)
        await db_session.commit()
        await end_sessions(request.app, user_id)  # stored sessions go too, not only their password version
        request.clear_session()  # nobody is logged in by a reset link
        rotate(request)
        flash(
            request,
            "Your password has been changed. Log in with your new password, then set a new transaction PIN.",
            category="success",
        )
        return Redirect("/login", status_code=303)

    @get("/account/verify/{token:str}", name="account:verify")
    async def verify(self, request: Request[Any, Any, Any], token: str, db_session: AsyncSession) -> Template:
        if not _token_ok(token):
            return _page("accounts/verify.html", {"outcome": recovery.INVALID}, 400)
        result = await recovery.verify_email(db_session, token)
        await db_session.commit()
        status = 400 if result.outcome == recovery.INVALID else 200
        return _page("accounts/verify.html", {"outcome": result.outcome}, status)

    @post("/account/verify/resend", guards=[requires_login], status_code=200)
    async def resend(self, request: HTMXRequest, db_session: AsyncSession) -> Response[Any]:
        user: User = request.user
        status, message, category = 200, "", "success"
        if user.email_verified_at is not None:
            message, category = "Your e-mail address is already verified.", "info"
        else:
            try:
                await throttle_for(request.app.state.redis).hit(
                    (RESEND_PER_MINUTE, str(user.id)), (RESEND_PER_HOUR, str(user.id))
                )
            except Throttled as exc:
                status, category = 429, "error"
                message = f"We sent a link a moment ago. You can ask again in {_minutes(exc.retry_after)}."
                retry_after = exc.retry_after
            else:
                await recovery.send_verification(
                    db_session, user, site_url=request.app.state.settings.site_url
                )
                await db_session.commit()
                message = f"We sent a new link to {user.email}. It can take a minute to arrive."
        if request.htmx:
            response: Response[Any] = _page(
                "accounts/partials/verify_banner.html",
                {"user": user, "message": message, "category": category},
                status,
            )
        else:
            flash(request, message, category=category)
            response = Redirect("/dashboard", status_code=303)
        if status == 429:
            response.headers["Retry-After"] = str(retry_after)
        return response
