"""The outbox: every e-mail is a row in `outgoing_mail` before anything talks SMTP.

- `add(...)` inserts the row in the CALLER's transaction (ON CONFLICT on `dedupe_key` DO NOTHING), so an
  e-mail exists exactly when the change it tells about commits, and one event never mails twice. The
  customer's preference is applied in the same statement: a kind they turned off is recorded as
  `suppressed` and never sent.
- `kick_after_commit(session, mail_id)`: once that transaction commits, the SAQ job `send_mail` is enqueued
  (key `mail:<id>`) on this process's queue (`use_queue`, set at web and worker start-up). A web request
  therefore only writes a row and enqueues a job; it never talks SMTP.
- If the enqueue is lost (Redis down, process killed), the cron `sweep_mail` finds the queued row and
  enqueues it again under the same key.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from typing import Any

import structlog
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from app.mail.models import QUEUED

log = structlog.get_logger("app.mail")

SEND_TASK = "send_mail"
RECEIPT_TASK = "mail_purchase_receipt"
SEND_JOB_TIMEOUT_SECONDS = 60
MAIL_ATTEMPTS = 8  # SMTP attempts before a mail is given up (`failed`)
RETRY_DELAY_SECONDS = 30.0
MAX_RETRY_DELAY_SECONDS = 3600.0

# Preference columns of mail_preferences (a kind of e-mail the customer can turn off).
PREFERENCES = ("funding", "purchase", "password", "api_key")

Executor = AsyncSession | AsyncConnection


def job_key(mail_id: int) -> str:
    return f"mail:{mail_id}"


def receipt_job_key(purchase_id: uuid.UUID | str) -> str:
    return f"mail-receipt:{purchase_id}"


_INSERT = (
    "INSERT INTO outgoing_mail"
    " (dedupe_key, user_id, to_address, template, context, sensitive, expires_at, status)"
    " SELECT :key, u.id, u.email, :template, CAST(:context AS jsonb), :sensitive, :expires_at,"
    " CASE WHEN WANTED THEN 'queued' ELSE 'suppressed' END"
    " FROM users u LEFT JOIN mail_preferences p ON p.user_id = u.id"
    " WHERE u.id = :user_id"
    " ON CONFLICT (dedupe_key) DO NOTHING"
    " RETURNING id, status"
)


def _insert_sql(preference: str | None) -> Any:
    """The insert for one kind of e-mail (`preference`: a fixed column name of mail_preferences)."""
    if preference is not None and preference not in PREFERENCES:
        raise ValueError(f"unknown mail preference {preference!r}")
    return text(_INSERT.replace("WANTED", f"coalesce(p.{preference}, true)" if preference else "true"))


_INSERTS = {name: _insert_sql(name) for name in (None, *PREFERENCES)}


async def add(
    conn: Executor,
    *,
    key: str,
    user_id: uuid.UUID,
    template: str,
    context: dict[str, Any],
    preference: str | None = None,
    sensitive: bool = False,
    expires_at: datetime.datetime | None = None,
) -> int | None:
    """Record an e-mail to the user in the caller's transaction. Returns its id when it is to be sent
    (None: already recorded under this key, suppressed by the user's preference, or no such user).
    One statement; the caller commits."""
    row = (
        await conn.execute(
            _INSERTS[preference],
            {
                "key": key[:200],
                "user_id": user_id,
                "template": template,
                "context": json.dumps(context, default=str),
                "sensitive": sensitive,
                "expires_at": expires_at,
            },
        )
    ).first()
    if row is None:
        return None
    if row.status != QUEUED:
        log.info("mail_suppressed", key=key, user_id=str(user_id), preference=preference)
        return None
    return int(row.id)


# --- after commit: hand the mail to the worker -----------------------------------------------------------

_queue: Any = None
_queue_loop: asyncio.AbstractEventLoop | None = None  # the event loop the queue's connections belong to
_PENDING = "mail_outbox_pending"
_HOOKED = "mail_outbox_hooked"
_tasks: set[asyncio.Task[int]] = set()


def use_queue(queue: Any) -> None:
    """The SAQ queue this process enqueues `send_mail` jobs on (web start-up, worker start-up)."""
    global _queue, _queue_loop
    _queue = queue
    try:
        _queue_loop = asyncio.get_running_loop()
    except RuntimeError:
        _queue_loop = None


def enqueue_kwargs(mail_id: int) -> dict[str, Any]:
    return {
        "key": job_key(mail_id),
        "timeout": SEND_JOB_TIMEOUT_SECONDS,
        "retries": MAIL_ATTEMPTS,
        "retry_delay": RETRY_DELAY_SECONDS,
        "retry_backoff": MAX_RETRY_DELAY_SECONDS,
        "mail_id": mail_id,
    }


async def kick(mail_ids: list[int], queue: Any = None) -> int:
    """Enqueue `send_mail` for each id (same key: a job already queued is not doubled). Never raises: a
    failed enqueue is the sweep's to repeat. Returns how many were enqueued."""
    if queue is None and _queue is not None:
        # Only on the loop that registered it: its Redis connections belong to that loop (a second app on
        # another thread's loop, as the tests run servers, must not write to them from here).
        queue = _queue if _queue_loop in (None, asyncio.get_running_loop()) else None
    if queue is None:
        log.info("mail_no_queue", mail_ids=mail_ids)  # the sweep sends them
        return 0
    enqueued = 0
    for mail_id in mail_ids:
        try:
            enqueued += (await queue.enqueue(SEND_TASK, **enqueue_kwargs(mail_id))) is not None
        except Exception:
            log.exception("mail_enqueue_failed", mail_id=mail_id)
    return enqueued


def _sync_session(conn: Executor) -> Session | None:
    if isinstance(conn, AsyncSession):
        return conn.sync_session
    return None


def kick_after_commit(conn: Executor, mail_id: int | None) -> None:
    """Enqueue the mail's job once the caller's transaction commits (nothing if it rolls back)."""
    if mail_id is None:
        return
    session = _sync_session(conn)
    if session is None:  # a bare connection: no commit hook, the sweep sends it
        return
    if not session.info.get(_HOOKED):
        # Registered once per session and left in place (a listener cannot be removed while SQLAlchemy is
        # dispatching it); with nothing pending they do nothing.
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        session.info[_HOOKED] = True
    session.info.setdefault(_PENDING, []).append(mail_id)


def _after_commit(session: Session) -> None:
    ids: list[int] = session.info.pop(_PENDING, None) or []
    if not ids:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop (sync use): the sweep sends them
    task = loop.create_task(kick(ids))
    _tasks.add(task)  # keep a reference until done
    task.add_done_callback(_tasks.discard)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


async def drain() -> None:
    """Wait for enqueues started by commits (tests; shutdown)."""
    if _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)


__all__ = [
    "MAIL_ATTEMPTS",
    "PREFERENCES",
    "RECEIPT_TASK",
    "SEND_TASK",
    "add",
    "drain",
    "enqueue_kwargs",
    "job_key",
    "kick",
    "kick_after_commit",
    "receipt_job_key",
    "use_queue",
]
