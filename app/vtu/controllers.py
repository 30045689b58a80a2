"""Provider callbacks: `POST /vtu/webhooks/vtpass/{VTPASS_CALLBACK_TOKEN}` and
`GET /vtu/webhooks/clubkonnect/{CLUBKONNECT_CALLBACK_TOKEN}?request_id=...`.

Neither provider signs its callbacks, so the secret URL token is the only thing that tells them apart from
anyone else's request, and even then what they say is only a hint: the purchase is requeried and THAT answer
is applied. (ClubKonnect's callback names only its own order id; our request id rides in the CallBackURL we
gave it with the order, app/vtu/providers/clubkonnect.py.)
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import structlog
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.exceptions import NotFoundException

from app.core.metrics import webhook
from app.vtu.runtime import get_vtu

log = structlog.get_logger("app.vtu.webhooks")

SUCCESS = {"response": "success"}  # anything else makes VTpass retry (up to 5 times)


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison; an unset token matches nothing (the endpoint is then closed)."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


class VTpassCallbackController(Controller):
    path = "/vtu/webhooks/vtpass"
    include_in_schema = False

    @post("/{token:str}", status_code=200, media_type=MediaType.JSON, exclude_from_auth=True)
    async def receive(self, request: Request[Any, Any, Any], token: str) -> Response[dict[str, str]]:
        if not token_matches(token, request.app.state.settings.vtpass_callback_token):
            webhook("vtpass", "bad_token")
            raise NotFoundException()
        raw = await request.body()
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            log.warning("vtpass_callback_not_json", size=len(raw))
            webhook("vtpass", "invalid_json")
            return Response(SUCCESS, status_code=200)  # nothing to act on; a retry would not help
        runtime = await get_vtu(request.app)
        outcome = await runtime.purchases.handle_callback(payload)
        log.info("vtpass_callback", outcome=outcome)
        webhook("vtpass", outcome)  # ignored / unknown / the purchase's status after the requery
        return Response(SUCCESS, status_code=200)


_REQUEST_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def valid_request_id(value: str) -> bool:
    """Our request ids: Lagos-time digits + lower-case letters and digits (providers/request_ids.py)."""
    return 12 < len(value) <= 36 and all(c in _REQUEST_ID_CHARS for c in value)


class ClubKonnectCallbackController(Controller):
    path = "/vtu/webhooks/clubkonnect"
    include_in_schema = False

    @get("/{token:str}", media_type=MediaType.TEXT, exclude_from_auth=True, cache_control=None)
    async def receive(self, request: Request[Any, Any, Any], token: str) -> Response[str]:
        if not token_matches(token, request.app.state.settings.clubkonnect_callback_token):
            webhook("clubkonnect", "bad_token")
            raise NotFoundException()
        request_id = str(request.query_params.get("request_id") or "")
        if not valid_request_id(request_id):
            log.warning("clubkonnect_callback_without_request_id")
            webhook("clubkonnect", "ignored")
            return Response("OK", status_code=200)  # nothing to act on; a retry would not help
        params = {k: str(v)[:200] for k, v in list(request.query_params.items())[:10] if k != "request_id"}
        runtime = await get_vtu(request.app)
        outcome = await runtime.purchases.handle_clubkonnect_callback(request_id, params)
        log.info("clubkonnect_callback", outcome=outcome)
        webhook("clubkonnect", outcome)
        return Response("OK", status_code=200)


__all__ = ["ClubKonnectCallbackController", "VTpassCallbackController", "token_matches"]
