"""VTpass callback: POST /vtu/webhooks/vtpass/{VTPASS_CALLBACK_TOKEN}.

VTpass does not sign callbacks, so the secret URL token is the only thing that tells them apart from anyone
else's POST, and even then the body is only a hint: the purchase is requeried and THAT answer is applied.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import structlog
from litestar import Controller, MediaType, Request, Response, post
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


__all__ = ["VTpassCallbackController", "token_matches"]
