"""The customer's e-mail preferences page, and the development mailbox.

- `GET|POST /account/notifications` (login required): tick which transactional e-mails to get.
- `GET /dev/mail`, `GET /dev/mail/{name}`: what the `vtu dev` SMTP sink received (.local/mail/*.eml), with
  links shown clickable. Routed only outside production, and answers 404 if APP_ENV=prod all the same.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, MediaType, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from markupsafe import Markup, escape
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_login
from app.accounts.models import User
from app.core.flash import flash
from app.mail import preferences, sink


class NotificationsController(Controller):
    path = "/account/notifications"
    guards = [requires_login]
    include_in_schema = False

    @get("/", name="account:notifications")
    async def page(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        user: User = request.user
        chosen = await preferences.load(db_session, user.id)
        return Template(
            template_name="accounts/notifications.html",
            context={"choices": preferences.CHOICES, "chosen": chosen, "user": user},
        )

    @post("/", status_code=303)
    async def save(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Redirect:
        user: User = request.user
        form = await request.form()
        await preferences.save(db_session, user.id, {name: form.get(name) == "on" for name in form})
        await db_session.commit()
        flash(request, "Your e-mail choices are saved.", category="success")
        return Redirect("/account/notifications", status_code=303)


def _dev_only(request: Request[Any, Any, Any]) -> None:
    if request.app.state.settings.is_prod:
        raise NotFoundException()


_URL = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: str) -> Markup:
    """Plain text with its http(s) links made clickable (everything escaped)."""
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(escape(text[last : match.start()]))
        url = escape(match.group(0))
        out.append(Markup(f'<a href="{url}">{url}</a>'))  # noqa: S704 - both parts escaped above
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


class DevMailController(Controller):
    path = "/dev/mail"
    include_in_schema = False

    @get("/", name="dev:mail")
    async def inbox(self, request: Request[Any, Any, Any]) -> Template:
        _dev_only(request)
        return Template(template_name="core/dev_mail.html", context={"messages": sink.list_mail()})

    @get("/{name:str}", name="dev:mail-message", media_type=MediaType.HTML)
    async def message(self, request: Request[Any, Any, Any], name: str) -> Template:
        _dev_only(request)
        found = sink.read_mail(name)
        if found is None:
            raise NotFoundException("No such message.")
        return Template(
            template_name="core/dev_mail_message.html",
            context={"name": name, "mail": found, "text": linkify(found.text)},
        )
