"""The customer's referrals page: their link and code to share, the friends who joined, bonuses earned."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_login
from app.accounts.models import User
from app.core.naira import format_naira_short
from app.referrals import queries
from app.referrals.config import ReferralConfig, ReferralConfigError, current_config


def how_it_works(config: ReferralConfig) -> list[str]:
    lines = []
    if config.funding_bonus_kobo > 0:
        minimum = config.funding_min_kobo
        condition = f" with {format_naira_short(minimum)} or more" if minimum > 0 else ""
        lines.append(
            f"Get {format_naira_short(config.funding_bonus_kobo)} when a friend you invited funds their"
            f" wallet{condition} for the first time."
        )
    if config.margin_bps > 0:
        lines.append("Then earn a little on every airtime, data, electricity or TV top-up they buy.")
    if lines and config.cap_per_referred_kobo > 0:
        lines.append(
            f"Up to {format_naira_short(config.cap_per_referred_kobo)} per friend, paid straight into your"
            " wallet."
        )
    elif lines:
        lines.append("Bonuses are paid straight into your wallet.")
    return lines


def share_links(link: str, site_name: str) -> dict[str, str]:
    intro = f"I top up airtime, data, electricity and TV on {site_name}. Sign up with my link:"
    message = f"{intro} {link}"
    subject = f"Join me on {site_name}"
    return {
        "intro": intro,  # for the Web Share API, which carries the link separately
        "message": message,
        "whatsapp": "https://wa.me/?text=" + quote(message, safe=""),
        "sms": "sms:?&body=" + quote(message, safe=""),
        "email": f"mailto:?subject={quote(subject, safe='')}&body={quote(message, safe='')}",
    }


class ReferralController(Controller):
    path = "/referrals"
    guards = [requires_login]
    include_in_schema = False

    @get("/", name="referrals")
    async def referrals_page(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        user: User = request.user
        try:
            config = current_config()
        except ReferralConfigError:
            config = ReferralConfig(
                funding_bonus_kobo=0, margin_bps=0
            )  # bonuses paused; the link still works
        base = config.link_base_url or str(request.base_url).rstrip("/")
        link = f"{base}/signup?ref={user.referral_code}"
        site_name = request.app.template_engine.engine.globals.get("site_name", "us")  # type: ignore[union-attr]
        data = await queries.summary(db_session, user.id)
        return Template(
            template_name="referrals/index.html",
            context={
                "user": user,
                "link": link,
                "share": share_links(link, site_name),
                "how": how_it_works(config),
                "summary": data,
            },
        )


__all__ = ["ReferralController", "how_it_works", "share_links"]
