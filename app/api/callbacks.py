"""Purchase-completion callbacks: when an API purchase reaches a final state (successful, failed, reversed),
POST the purchase JSON (the same shape as GET /api/v1/purchases/{id}) to the key's callback URL.

- Listener: `PURCHASE_FINISHED` (after commit; context = the PurchaseService). If the purchase was made with
  a key that has a callback URL, it enqueues the SAQ job `deliver_purchase_callback` with the key
  `api-callback:<purchase id>:<status>` (one delivery per purchase and final state; a reversal after a
  success is a second delivery).
- Job: loads the purchase and the key at delivery time (a revoked key or a removed URL stops deliveries),
  signs the raw body and POSTs it to the address checked at send time (`callback_targets`: resolved once,
  public addresses only in prod, connected to by address with the original Host / TLS name; no redirects).
  Anything but a 2xx within CALLBACK_TIMEOUT_SECONDS, or a refused address, is a failed attempt: it is
  recorded and raises, and SAQ retries with exponential back-off (CALLBACK_ATTEMPTS attempts, first
  retry after up to CALLBACK_RETRY_DELAY_SECONDS, capped at CALLBACK_MAX_DELAY_SECONDS).
- Signature: header `X-VTU-Signature: sha256=<hex HMAC-SHA256 of the raw body>` keyed with the key's
  callback secret (`whsec_...`, shown once when the key was created). Also `X-VTU-Event:
  purchase.finished` and `X-VTU-Delivery` (the job key). Deliveries are at-least-once: receivers should
  dedupe on (id, status) and may always confirm with GET /api/v1/purchases/{id}.
- Nothing lost: each attempt is recorded in `api_callback_deliveries`; the cron `sweep_api_callbacks` (every
  minute) enqueues the deliveries of purchases finished 2 min to 24 h ago that have no record (their
  enqueue after commit failed, e.g. Redis was down).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
import uuid
from typing import Any

import httpx
import structlog
from sqlalchemy import select, text

from app.accounts.apikeys import ApiKey
from app.api import callback_targets
from app.api.callback_targets import CallbackTargetError, Target, resolve_targets
from app.api.schemas import purchase_json
from app.config.settings import get_settings
from app.core.encryption import cipher_for
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


# Each process remembers a key's callback URL for a minute: one query per key and minute instead of one per
# finished purchase. Only an optimisation (docs/architecture.md "Processes"): the URL can be changed in
# another process, so an entry expires; the delivery job reads the key afresh (URL, revocation) before
# sending, and sweep_api_callbacks enqueues any callback a stale entry skipped.
_CALLBACK_URLS: dict[uuid.UUID, tuple[str | None, float]] = {}
_CALLBACK_URLS_MAX = 10_000
CALLBACK_URL_CACHE_SECONDS = 60.0


def remember_callback_url(key_id: uuid.UUID, url: str | None) -> None:
    """What the key's row said when it authenticated a request (saves the lookup when its purchase ends)."""
    if len(_CALLBACK_URLS) >= _CALLBACK_URLS_MAX:
        _CALLBACK_URLS.clear()
    _CALLBACK_URLS[key_id] = (url, time.monotonic() + CALLBACK_URL_CACHE_SECONDS)


async def _callback_url(service: Any, key_id: uuid.UUID) -> str | None:
    cached = _CALLBACK_URLS.get(key_id)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    async with service.sessionmaker() as session:
        url = (
            await session.execute(
                select(ApiKey.callback_url).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            )
        ).scalar_one_or_none()
    remember_callback_url(key_id, url)
    return url


def _enqueue_kwargs(purchase_id: uuid.UUID | str, status: str) -> dict[str, Any]:
    return {
        "key": delivery_key(purchase_id, status),
        "timeout": CALLBACK_JOB_TIMEOUT_SECONDS,
        "retries": CALLBACK_ATTEMPTS,
        "retry_delay": CALLBACK_RETRY_DELAY_SECONDS,
        "retry_backoff": CALLBACK_MAX_DELAY_SECONDS,
        "purchase_id": str(purchase_id),
        "final_status": status,  # not `status`: SAQ's Job has a field of that name
    }


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
    # If Redis is down right now this raises (the event logs it): sweep_api_callbacks enqueues it later.
    job = await queue.enqueue(CALLBACK_TASK, **_enqueue_kwargs(event.purchase_id, event.status))
    log.info(
        "api_callback_enqueued", key=delivery_key(event.purchase_id, event.status), enqueued=job is not None
    )


# One row per delivery, upserted by the job after each attempt (never across the HTTP call).
_RECORD = text(
    "INSERT INTO api_callback_deliveries AS d"
    " (purchase_id, final_status, attempts, delivered_at, gave_up_at, last_error, updated_at)"
    " VALUES (:pid, :status, :counted, :delivered_at, :gave_up_at, :error, now())"
    " ON CONFLICT (purchase_id, final_status) DO UPDATE SET"
    " attempts = d.attempts + EXCLUDED.attempts,"
    " delivered_at = coalesce(d.delivered_at, EXCLUDED.delivered_at),"
    " gave_up_at = CASE WHEN coalesce(d.delivered_at, EXCLUDED.delivered_at) IS NULL"
    "   THEN coalesce(EXCLUDED.gave_up_at, d.gave_up_at) END,"
    " last_error = EXCLUDED.last_error, updated_at = now()"
)


async def _record(
    ctx: dict[str, Any],
    purchase_id: uuid.UUID,
    status: str,
    *,
    delivered: bool = False,
    gave_up: bool = False,
    error: str | None = None,
    counted: int = 1,
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    params = {
        "pid": purchase_id,
        "status": status,
        "counted": counted,
        "delivered_at": now if delivered else None,
        "gave_up_at": now if gave_up else None,
        "error": (error or "")[:255] or None,
    }
    async with ctx["sessionmaker"]() as session, session.begin():
        await session.execute(_RECORD, params)


class CallbackFailed(Exception):
    """The receiver did not answer 2xx (SAQ retries the job)."""


async def _post(targets: list[Target], body: bytes, headers: dict[str, str]) -> str | None:
    """POST to the checked addresses in turn (the next one only when one cannot be connected to); None
    on a 2xx, else the problem. Redirects are not followed: a 3xx is a failed attempt. No proxy from the
    environment: the connection goes to the address that was checked."""
    problem = "callback host has no address"
    async with httpx.AsyncClient(
        timeout=CALLBACK_TIMEOUT_SECONDS,
        follow_redirects=False,
        trust_env=False,
        verify=callback_targets.TLS_VERIFY,
    ) as http:
        for target in targets:
            try:
                response = await http.post(
                    target.url,
                    content=body,
                    headers={**headers, **target.headers},
                    extensions=target.extensions,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                problem = f"{type(exc).__name__} posting to the callback URL ({target.address})"
                continue
            except httpx.HTTPError as exc:
                return f"{type(exc).__name__} posting to the callback URL"
            if 200 <= response.status_code < 300:
                return None
            return f"callback URL answered {response.status_code}"
    return problem


async def deliver_purchase_callback(ctx: dict[str, Any], *, purchase_id: str, final_status: str) -> str:
    """SAQ job: POST the signed purchase JSON to the key's callback URL; raise to be retried. Each attempt
    is recorded in api_callback_deliveries (delivered, failed, or given up after the last attempt)."""
    pid = uuid.UUID(purchase_id)
    async with ctx["sessionmaker"]() as session:
        row = (await session.execute(SELECT_PURCHASE.where(purchases_table.c.id == pid))).one_or_none()
        purchase = PurchaseView.from_row(row) if row is not None else None
        key = await session.get(ApiKey, purchase.api_key_id) if purchase and purchase.api_key_id else None
    if purchase is None:
        return "skipped"
    if key is None or key.revoked_at is not None or not key.callback_url:
        await _record(
            ctx, pid, final_status, gave_up=True, error="key revoked or callback URL removed", counted=0
        )
        return "skipped"
    settings = ctx.get("settings") or get_settings()
    body = purchase_json(purchase, cipher_for(settings))  # to the owner's own URL: with its exam PINs
    job = ctx.get("job")
    attempt = int(getattr(job, "attempts", 1) or 1)
    last_attempt = attempt >= int(getattr(job, "retries", 1) or 1)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "vtu-callbacks/1",
        SIGNATURE_HEADER: sign(body, key.callback_secret),
        "X-VTU-Event": "purchase.finished",
        "X-VTU-Delivery": delivery_key(pid, final_status),
        "X-VTU-Attempt": str(attempt),
    }
    try:
        targets = await resolve_targets(
            key.callback_url,
            allow_private=settings.callbacks_reach_private,
            resolve_seconds=CALLBACK_TIMEOUT_SECONDS,
        )
    except CallbackTargetError as exc:  # a refused or unresolvable host is a failed attempt, retried
        problem: str | None = str(exc)
    else:
        problem = await _post(targets, body, headers)
    if problem:
        log.warning("api_callback_failed", purchase_id=purchase_id, error=problem, attempt=attempt)
        await _record(ctx, pid, final_status, gave_up=last_attempt, error=problem)
        raise CallbackFailed(problem)
    await _record(ctx, pid, final_status, delivered=True)
    log.info("api_callback_delivered", purchase_id=purchase_id, status=purchase.status)
    return "delivered"


# Finished API purchases whose key has a callback URL and whose delivery has no record at all: the enqueue
# after commit never reached Redis. A record means the job ran (and retries, or finished, by itself).
_MISSING = text(
    "SELECT p.id, p.status FROM purchases p"
    " JOIN api_keys k ON k.id = p.api_key_id"
    " LEFT JOIN api_callback_deliveries d ON d.purchase_id = p.id AND d.final_status = p.status"
    " WHERE p.status IN ('successful', 'failed', 'reversed')"
    " AND p.completed_at >= :since AND p.completed_at < :until"
    " AND k.callback_url IS NOT NULL AND k.revoked_at IS NULL AND d.purchase_id IS NULL"
    " ORDER BY p.completed_at LIMIT :limit"
)
SWEEP_GRACE_SECONDS = 120  # the listener's own enqueue and first attempt get this long
SWEEP_WINDOW_HOURS = 24
SWEEP_BATCH = 500


async def sweep_api_callbacks(ctx: dict[str, Any]) -> dict[str, int]:
    """SAQ cron: enqueue the completion callbacks whose enqueue was lost (same job key, so a job that is in
    fact still queued or retrying is not doubled)."""
    now = datetime.datetime.now(datetime.UTC)
    params = {
        "since": now - datetime.timedelta(hours=SWEEP_WINDOW_HOURS),
        "until": now - datetime.timedelta(seconds=SWEEP_GRACE_SECONDS),
        "limit": SWEEP_BATCH,
    }
    async with ctx["sessionmaker"]() as session:
        missing = (await session.execute(_MISSING, params)).all()
    queue = ctx["worker"].queue
    enqueued = 0
    for purchase_id, status in missing:
        enqueued += (await queue.enqueue(CALLBACK_TASK, **_enqueue_kwargs(purchase_id, status))) is not None
    if missing:
        log.warning("api_callbacks_recovered", missing=len(missing), enqueued=enqueued)
    return {"missing": len(missing), "enqueued": enqueued}


__all__ = [
    "CALLBACK_TASK",
    "SIGNATURE_HEADER",
    "deliver_purchase_callback",
    "delivery_key",
    "enqueue_purchase_callback",
    "sign",
    "sweep_api_callbacks",
    "verify_signature",
]
