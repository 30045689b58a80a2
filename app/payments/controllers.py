"""Monnify webhook endpoint and the customer's Fund Wallet page (with its live funding history)."""

from __future__ import annotations

import json
from typing import Any

import structlog
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_login
from app.accounts.models import User
from app.core.metrics import webhook
from app.payments import queries
from app.payments.funding import receive_event
from app.payments.models import EVENT_RECEIVED
from app.payments.signatures import verify_monnify_signature

log = structlog.get_logger("app.payments.webhooks")


def _client_ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


class MonnifyWebhookController(Controller):
    path = "/payments/webhooks/monnify"
    include_in_schema = False

    @post("/", status_code=200, media_type=MediaType.JSON, exclude_from_auth=True)
    async def receive(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Response[dict[str, str]]:
        settings = request.app.state.settings
        ip = _client_ip(request)
        if settings.monnify_allowed_ips and ip not in settings.monnify_allowed_ips:
            log.warning("monnify_webhook_ip_refused", ip=ip)
            webhook("monnify", "forbidden")
            return Response({"error": "forbidden"}, status_code=403)
        # The signature covers the raw bytes: check it before any JSON parsing.
        raw = await request.body()
        if not settings.monnify_secret_key or not verify_monnify_signature(
            raw, request.headers.get("monnify-signature"), settings.monnify_secret_key
        ):
            log.warning("monnify_webhook_bad_signature", ip=ip, size=len(raw))
            webhook("monnify", "bad_signature")
            return Response({"error": "invalid_signature"}, status_code=401)
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            webhook("monnify", "invalid_json")
            return Response({"error": "invalid_json"}, status_code=400)
        stored = await receive_event(db_session, settings, payload, raw, ip)
        # credited / ignored / unmatched / rejected / failed, `received` (waits for the worker's
        # verification), or `duplicate` (this event was stored before)
        webhook("monnify", stored.status if stored.created else "duplicate")
        if stored.created and stored.status == EVENT_RECEIVED:
            # Verification on (or the inline credit failed): the worker takes it from the stored row.
            await request.app.state.funding.enqueue(
                "process_monnify_event", f"monnify-event:{stored.id}", event_id=stored.id
            )
        return Response({"status": "ok"}, status_code=200)


class FundingController(Controller):
    path = "/wallet"
    guards = [requires_login]
    include_in_schema = False

    @get("/fund", name="wallet:fund")
    async def fund_page(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        user: User = request.user
        reservation = await queries.reservation_for(db_session, user.id)
        if reservation is None or not reservation.banks:
            await request.app.state.funding.ensure_reservation(db_session, user)
        history = await queries.funding_history(db_session, user.id)
        return Template(
            template_name="payments/fund.html",
            context={"reservation": reservation, "history": history, "user": user},
        )

    @get("/fund/accounts", name="wallet:fund-accounts")
    async def accounts_partial(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        user: User = request.user
        reservation = await queries.reservation_for(db_session, user.id)
        return Template(
            template_name="payments/partials/accounts.html",
            context={"reservation": reservation, "user": user},
        )

    @get("/fund/history", name="wallet:fund-history")
    async def history_partial(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        user: User = request.user
        history = await queries.funding_history(db_session, user.id)
        return Template(template_name="payments/partials/history.html", context={"history": history})
