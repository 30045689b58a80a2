"""SAQ jobs for funding: credit a stored event, reserve a customer's accounts, and the sweep that retries
whatever a lost job or an outage left behind."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from app.accounts.kyc import KycService, retry_unconfirmed
from app.payments.funding import events_due, process_event
from app.payments.monnify_client import MonnifyClient, MonnifyError
from app.payments.reservations import reserve_for_user, users_needing_reservation

log = structlog.get_logger("app.payments.tasks")


def _monnify(ctx: dict[str, Any]) -> MonnifyClient:
    client = ctx.get("monnify")
    if client is None:
        client = ctx["monnify"] = MonnifyClient(ctx["settings"])
    return client


async def process_monnify_event(ctx: dict[str, Any], *, event_id: int) -> str:
    async with ctx["sessionmaker"]() as session:
        return await process_event(session, ctx["settings"], event_id, _monnify(ctx))


async def reserve_accounts(ctx: dict[str, Any], *, user_id: str) -> str:
    try:
        reservation = await reserve_for_user(ctx["sessionmaker"], _monnify(ctx), uuid.UUID(user_id))
    except MonnifyError as exc:
        return f"failed: {exc}"  # recorded on the row; the sweep retries with back-off
    return reservation.status if reservation else "no such user"


async def sweep_funding(ctx: dict[str, Any]) -> dict[str, int]:
    """Every minute: retry due events, missing reservations and BVN/NIN that Monnify could not be asked
    about (app/accounts/kyc.py `retry_unconfirmed`), each in its own short transaction."""
    async with ctx["sessionmaker"]() as session:
        due = await events_due(session)
        waiting = await users_needing_reservation(session, limit=50)
    credited = reserved = 0
    for event_id in due:
        try:
            async with ctx["sessionmaker"]() as session:
                if await process_event(session, ctx["settings"], event_id, _monnify(ctx)) == "credited":
                    credited += 1
        except Exception:
            log.exception("sweep_event_failed", event_id=event_id)
    for user_id in waiting:
        try:
            await reserve_for_user(ctx["sessionmaker"], _monnify(ctx), user_id)
            reserved += 1
        except MonnifyError:
            break  # Monnify is down: stop hammering it; the next sweep tries again
    kyc = {"kyc_tried": 0, "kyc_verified": 0, "kyc_refused": 0}
    try:
        service = KycService(ctx["sessionmaker"], ctx["settings"], _monnify(ctx))
        report = await retry_unconfirmed(service)
        kyc = {"kyc_tried": report.tried, "kyc_verified": report.verified, "kyc_refused": report.refused}
    except Exception:
        log.exception("sweep_kyc_failed")
    return {"events": len(due), "credited": credited, "reserved": reserved, **kyc}
