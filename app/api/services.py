"""The reseller API's rules on top of the purchase engine: wallet view, tier-priced plans, buying with the
daily spend limit, reading purchases, customer verification. No HTTP here (controllers are thin).

Daily spend limit (API_DAILY_SPEND_LIMIT_KOBO, 0 = off): the sum of the user's API purchases created since
midnight Africa/Lagos that are not failed or reversed (their money came back) may not exceed the limit.
It is checked INSIDE the purchase's own transaction (PurchaseService.buy's `spend_limit`, enforced by the
purchase_open SQL function): after the purchase row is inserted, a transaction-scoped advisory lock per
user serialises the check, and the sum includes the new row, so racing requests cannot overshoot; a refused
purchase is undone with its debit, moving nothing (402 limit_exceeded).
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.api.auth import ApiPrincipal
from app.api.callbacks import delivery_key
from app.api.errors import ApiError, insufficient_funds, invalid
from app.api.schemas import (
    CallbackDeliveryOut,
    CustomerOut,
    FundingAccount,
    PlanOut,
    PurchaseOut,
    ServiceOut,
    Wallet,
)
from app.config.settings import Settings
from app.core.encryption import cipher_for
from app.core.lagos import lagos_midnight
from app.payments import queries as funding_queries
from app.payments.runtime import FundingRuntime
from app.vtu import plans as plan_queries
from app.vtu.errors import CustomerNotFound, InsufficientFunds
from app.vtu.models import STATUSES
from app.vtu.orders import NO_SUBSCRIPTION_TYPE, PurchaseRequest
from app.vtu.providers import ProviderError
from app.vtu.providers.catalog import (
    EXAM_QUANTITY,
    METER_TYPES,
    PROFILE_VERIFIED,
    SERVICES,
    SUBSCRIPTION_TYPES,
    ServiceKind,
    get_service,
)
from app.vtu.runtime import VtuRuntime
from app.vtu.service import SpendLimit
from app.vtu.transitions import utcnow

LIST_LIMIT_MAX = 100
log = structlog.get_logger("app.api")

# The caller's callback deliveries, newest attempt first, with the callback URL of the key that bought.
_DELIVERIES = text(
    "SELECT d.purchase_id, d.final_status, d.attempts, d.delivered_at, d.gave_up_at, d.last_error,"
    " d.updated_at, k.callback_url"
    " FROM api_callback_deliveries d JOIN purchases p ON p.id = d.purchase_id"
    " LEFT JOIN api_keys k ON k.id = p.api_key_id"
    " WHERE p.user_id = :uid ORDER BY d.updated_at DESC, d.purchase_id LIMIT :limit"
)
_ANSWERED = re.compile(r"^callback URL answered (\d{3})$")  # how callbacks._post names a non-2xx answer


def _answered(error: str | None) -> int | None:
    match = _ANSWERED.match(error or "")
    return int(match.group(1)) if match else None


def lagos_day_start(now: datetime.datetime) -> datetime.datetime:
    return lagos_midnight(now).astimezone(datetime.UTC)


class ResellerApi:
    def __init__(self, vtu: VtuRuntime, settings: Settings) -> None:
        self.vtu = vtu
        self.purchases = vtu.purchases
        self.settings = settings
        self._cipher = cipher_for(settings)  # opens exam PINs, for the caller's own purchases only

    async def wallet(
        self, session: AsyncSession, caller: ApiPrincipal, *, funding: FundingRuntime | None
    ) -> Wallet:
        """Balance and the caller's reserved bank accounts (asks for them again if they are missing)."""
        user = caller.user
        balance = await self.purchases.balance(user.id)
        reservation = await funding_queries.reservation_for(session, user.id)
        if (reservation is None or not reservation.banks) and funding is not None:
            owner = await session.get(User, user.id)
            if owner is not None:  # the worker asks Monnify; shown once they exist
                await funding.ensure_reservation(session, owner)
        banks = reservation.banks if reservation is not None else []
        return Wallet(
            balance_kobo=balance,
            currency="NGN",
            account_reference=user.account_reference,
            funding_accounts=[FundingAccount(b.bank_name, b.account_number) for b in banks],
        )

    async def plans(self, session: AsyncSession, caller: ApiPrincipal, service_id: str) -> list[PlanOut]:
        service = get_service(service_id.strip())
        if service is None:
            raise invalid({"service_id": "Unknown service."})
        if service.kind not in (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM):
            raise invalid({"service_id": f"{service.name} has no plans; it is bought by amount."})
        try:
            slug = self.vtu.providers.slug_for(service.service_id)
        except ProviderError as exc:
            raise ApiError(503, "service_unavailable", "This service is not available right now.") from exc
        priced = await plan_queries.priced_plans(
            session, slug=slug, service_id=service.service_id, tier=caller.user.tier, config=self.vtu.config
        )
        return [PlanOut(p.variation_code, p.name, p.price_kobo) for p in priced]

    def services(self) -> list[ServiceOut]:
        """Every service we sell, with the amount limits the purchase engine enforces (its own config)."""
        config = self.vtu.config
        by_amount = {
            ServiceKind.AIRTIME: (config.airtime_min_kobo, config.airtime_max_kobo),
            ServiceKind.ELECTRICITY: (config.electricity_min_kobo, config.electricity_max_kobo),
        }
        out = []
        for service in SERVICES:
            low, high = by_amount.get(service.kind, (None, None))
            by_plan = service.kind in (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM)
            exam = service.kind is ServiceKind.EXAM
            cable_types = service.kind is ServiceKind.CABLE and service.service_id not in NO_SUBSCRIPTION_TYPE
            out.append(
                ServiceOut(
                    service_id=service.service_id,
                    kind=service.kind.value,
                    name=service.name,
                    min_amount_kobo=low,
                    max_amount_kobo=high,
                    plans=f"/api/v1/plans?service_id={service.service_id}" if by_plan else None,
                    verify=service.kind in (ServiceKind.ELECTRICITY, ServiceKind.CABLE)
                    or service.service_id in PROFILE_VERIFIED,
                    meter_types=list(METER_TYPES) if service.kind is ServiceKind.ELECTRICITY else None,
                    subscription_types=list(SUBSCRIPTION_TYPES) if cable_types else None,
                    max_quantity=(1 if service.service_id in PROFILE_VERIFIED else EXAM_QUANTITY[1])
                    if exam
                    else None,
                )
            )
        return out

    async def callbacks(
        self, session: AsyncSession, caller: ApiPrincipal, limit: int | None
    ) -> list[CallbackDeliveryOut]:
        """The caller's most recent callback deliveries (newest attempt first), with when SAQ will try the
        next time for those still being retried."""
        if limit is not None and not 1 <= limit <= LIST_LIMIT_MAX:
            raise invalid({"limit": f"Use a number from 1 to {LIST_LIMIT_MAX}."})
        rows = (await session.execute(_DELIVERIES, {"uid": caller.user_id, "limit": limit or 20})).all()
        waiting = [r for r in rows if r.delivered_at is None and r.gave_up_at is None]
        scheduled = await self._next_attempts(waiting)
        return [
            CallbackDeliveryOut(
                purchase_id=str(r.purchase_id),
                status=r.final_status,
                url_host=urlsplit(r.callback_url).hostname if r.callback_url else None,
                attempts=r.attempts,
                last_status_code=_answered(r.last_error),
                last_error=r.last_error,
                delivered_at=r.delivered_at,
                gave_up_at=r.gave_up_at,
                next_attempt_at=scheduled.get((r.purchase_id, r.final_status)),
                updated_at=r.updated_at,
            )
            for r in rows
        ]

    async def _next_attempts(self, rows: Sequence[Any]) -> dict[tuple[uuid.UUID, str], datetime.datetime]:
        """When SAQ runs each delivery's job next (one Redis round trip). SAQ's Redis queue keeps a retry's
        time as the job's score in its sorted set of incomplete jobs (the job's own `scheduled` stays 0);
        a job not in that set is finished or lost (the sweep re-enqueues lost ones)."""
        queue = self.vtu.queue
        redis, incomplete = getattr(queue, "redis", None), getattr(queue, "_incomplete", None)
        if queue is None or redis is None or incomplete is None or not rows:
            return {}
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.zscore(incomplete, queue.job_id(delivery_key(row.purchase_id, row.final_status)))
                scores = await pipe.execute()
        except Exception:  # Redis unreachable: the list is still worth having, without this column
            log.warning("api_callbacks_next_attempt_unknown", exc_info=True)
            return {}
        return {
            (row.purchase_id, row.final_status): datetime.datetime.fromtimestamp(float(score), datetime.UTC)
            for row, score in zip(rows, scores, strict=True)
            if score  # 0: queued to run at once, not scheduled for later
        }

    async def buy(self, caller: ApiPrincipal, request: PurchaseRequest, idempotency_key: str) -> PurchaseOut:
        limit = self.settings.api_daily_spend_limit_kobo
        try:
            purchase = await self.purchases.buy(
                caller.user,
                request,
                channel="api",
                api_key_id=caller.key_id,
                idempotency_key=idempotency_key,
                spend_limit=SpendLimit(limit, lagos_day_start(utcnow())) if limit > 0 else None,
            )
        except InsufficientFunds as exc:  # the 402 says what the wallet holds now and what was asked
            raise insufficient_funds(await self.purchases.balance(caller.user_id), exc.price_kobo) from exc
        return PurchaseOut.of(purchase, self._cipher)

    async def get(self, caller: ApiPrincipal, purchase_id: str) -> PurchaseOut:
        try:
            pid = uuid.UUID(purchase_id)
        except ValueError:
            raise ApiError(404, "not_found", "No such purchase.") from None
        return PurchaseOut.of(await self.purchases.get(pid, user_id=caller.user_id), self._cipher)

    async def list(self, caller: ApiPrincipal, status: str | None, limit: int | None) -> list[PurchaseOut]:
        errors: dict[str, str] = {}
        if status is not None and status not in STATUSES:
            errors["status"] = f"Use one of {', '.join(STATUSES)}."
        if limit is not None and not 1 <= limit <= LIST_LIMIT_MAX:
            errors["limit"] = f"Use a number from 1 to {LIST_LIMIT_MAX}."
        if errors:
            raise invalid(errors)
        rows = await self.purchases.list_for_user(caller.user_id, status=status or None, limit=limit or 50)
        return [PurchaseOut.of(p, self._cipher) for p in rows]

    async def verify(self, service_id: str, number: str, kind: str | None) -> CustomerOut:
        try:
            info = await self.purchases.verify_customer(service_id, number, kind)
        except CustomerNotFound as exc:
            raise invalid({"customer_number": exc.message}, exc.message) from exc
        return CustomerOut(
            service_id=service_id,
            customer_number=number,
            customer_name=info.name,
            address=info.address,
            details=dict(info.details),
            minimum_amount_kobo=info.minimum_amount_kobo,
            renewal_amount_kobo=info.renewal_amount_kobo,
            can_vend=info.can_vend,
        )


__all__ = ["ResellerApi", "lagos_day_start"]
