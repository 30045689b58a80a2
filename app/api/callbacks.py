"""Purchase-completion callbacks: when an API purchase reaches a final state (successful, failed, reversed),
POST the purchase JSON (the same shape as GET /api/v1/purchases/{id}) to the key's callback URL.

- Listener: `PURCHASE_FINISHED` (after commit; context = the PurchaseService). If the purchase was made with
  a key that has a callback URL, it enqueues the SAQ job `deliver_purchase_callback` with the key
  `api-callback:<purchase id>:<status>` (one delivery per purchase and final state; a reversal after a
  success is a second delivery).
- Job: loads the purchase and the key at delivery time (a revoked key or a removed URL stops deliveries),
  signs the raw body and POSTs it. Anything but a 2xx within CALLBACK_TIMEOUT_SECONDS raises, and SAQ
  retries with exponential back-off (CALLBACK_ATTEMPTS attempts, first retry after up to
  CALLBACK_RETRY_DELAY_SECONDS, capped at CALLBACK_MAX_DELAY_SECONDS).
- Signature: header `X-VTU-Signature: sha256=<hex HMAC-SHA256 of the raw body>` keyed with the key's
  callback secret (`whsec_...`, shown once when the key was created). Also `X-VTU-Event:
  purchase.finished` and `X-VTU-Delivery` (the job key). Deliveries are at-least-once: receivers should
  dedupe on (id, status) and may always confirm with GET /api/v1/purchases/{id}.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

import httpx
import structlog
from sqlalchemy import select

from app.accounts.apikeys import ApiKey
from app.api.schemas import purchase_json
from app.core.events import PURCHASE_FINISHED, PurchaseSettled
from app.vtu.models import FINAL_STATUSES
from app.vtu.views import SELECT_PURCHASE, PurchaseView, purchases_table

log = structlog.get_logger("app.api.callbacks")

CALLBACK_TASK = "deliver_purchase_callback"
CALLBACK_TIMEOUT_SECONDS = 10.0
CALLBACK_JOB_TIMEOUT_SECONDS = 30
CALLBACK_ATTEMPTS = 10
CALLBACK_RETRY_DELAY_SECONDS = 15.0
CALLBACK_MAX_DELAY_SECONDS = 3600.0
SIGNATURE_HEADER = "X-VTU-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """What a receiver does (also used by our tests): constant-time compare over the raw bytes."""
    return bool(header) and hmac.compare_digest(sign(body, secret), header or "")


def delivery_key(purchase_id: uuid.UUID | str, status: str) -> str:
    return f"api-callback:{purchase_id}:{status}"


# A key's callback URL is fixed when the key is created (changing it means a new key), so each process
# remembers it: one query per key instead of one per finished purchase. Revocation is checked by the job.
_CALLBACK_URLS: dict[uuid.UUID, str | None] = {}
_CALLBACK_URLS_MAX = 10_000


def remember_callback_url(key_id: uuid.UUID, url: str | None) -> None:
    """What the key's row said when it authenticated a request (saves the lookup when its purchase ends)."""
    if len(_CALLBACK_URLS) >= _CALLBACK_URLS_MAX:
        _CALLBACK_URLS.clear()
    _CALLBACK_URLS[key_id] = url


async def _callback_url(service: Any, key_id: uuid.UUID) -> str | None:
    if key_id in _CALLBACK_URLS:
        return _CALLBACK_URLS[key_id]
    async with service.sessionmaker() as session:
        url = (
            await session.execute(
                select(ApiKey.callback_url).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            )
        ).scalar_one_or_none()
    remember_callback_url(key_id, url)
    return url


@PURCHASE_FINISHED.connect
async def enqueue_purchase_callback(service: Any, event: PurchaseSettled) -> None:
    if event.api_key_id is None or event.status not in FINAL_STATUSES:
        return
    url = await _callback_url(service, event.api_key_id)
    if not url:
        return
    queue = getattr(getattr(service, "scheduler", None), "queue", None)
    if queue is None:
        log.warning("api_callback_no_queue", purchase_id=str(event.purchase_id))
        return
    key = delivery_key(event.purchase_id, event.status)
    job = await queue.enqueue(
        CALLBACK_TASK,
        key=key,
        timeout=CALLBACK_JOB_TIMEOUT_SECONDS,
        retries=CALLBACK_ATTEMPTS,
        retry_delay=CALLBACK_RETRY_DELAY_SECONDS,
        retry_backoff=CALLBACK_MAX_DELAY_SECONDS,
        purchase_id=str(event.purchase_id),
        final_status=event.status,  # not `status`: SAQ's Job has a field of that name
    )
    log.info("api_callback_enqueued", key=key, enqueued=job is not None)


class CallbackFailed(Exception):
    """The receiver did not answer 2xx (SAQ retries the job)."""


async def deliver_purchase_callback(ctx: dict[str, Any], *, purchase_id: str, final_status: str) -> str:
    """SAQ job: POST the signed purchase JSON to the key's callback URL; raise to be retried."""
    pid = uuid.UUID(purchase_id)
    async with ctx["sessionmaker"]() as session:
        row = (await session.execute(SELECT_PURCHASE.where(purchases_table.c.id == pid))).one_or_none()
        purchase = PurchaseView.from_row(row) if row is not None else None
        key = await session.get(ApiKey, purchase.api_key_id) if purchase and purchase.api_key_id else None
    if purchase is None or key is None or key.revoked_at is not None or not key.callback_url:
        return "skipped"
    body = purchase_json(purchase)
    job = ctx.get("job")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "vtu-callbacks/1",
        SIGNATURE_HEADER: sign(body, key.callback_secret),
        "X-VTU-Event": "purchase.finished",
        "X-VTU-Delivery": delivery_key(pid, final_status),
        "X-VTU-Attempt": str(getattr(job, "attempts", 1) or 1),
    }
    try:
        async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_SECONDS, follow_redirects=False) as http:
            response = await http.post(key.callback_url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("api_callback_failed", purchase_id=purchase_id, error=type(exc).__name__)
        raise CallbackFailed(f"{type(exc).__name__} posting to the callback URL") from exc
    if not 200 <= response.status_code < 300:
        log.warning("api_callback_refused", purchase_id=purchase_id, status=response.status_code)
        raise CallbackFailed(f"callback URL answered {response.status_code}")
    log.info("api_callback_delivered", purchase_id=purchase_id, status=purchase.status)
    return "delivered"


__all__ = [
    "CALLBACK_TASK",
    "SIGNATURE_HEADER",
    "deliver_purchase_callback",
    "delivery_key",
    "enqueue_purchase_callback",
    "sign",
    "verify_signature",
]
