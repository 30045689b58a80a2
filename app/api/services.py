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
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.api.auth import ApiPrincipal
from app.api.errors import ApiError, invalid
from app.api.schemas import CustomerOut, FundingAccount, PlanOut, PurchaseOut, Wallet
from app.config.settings import Settings
from app.core.lagos import lagos_midnight
from app.payments import queries as funding_queries
from app.payments.runtime import FundingRuntime
from app.vtu import plans as plan_queries
from app.vtu.errors import CustomerNotFound
from app.vtu.models import STATUSES
from app.vtu.orders import PurchaseRequest
from app.vtu.providers import ProviderError
from app.vtu.providers.catalog import ServiceKind, get_service
from app.vtu.runtime import VtuRuntime
from app.vtu.service import SpendLimit
from app.vtu.transitions import utcnow

LIST_LIMIT_MAX = 100


def lagos_day_start(now: datetime.datetime) -> datetime.datetime:
    return lagos_midnight(now).astimezone(datetime.UTC)


class ResellerApi:
    def __init__(self, vtu: VtuRuntime, settings: Settings) -> None:
        self.vtu = vtu
        self.purchases = vtu.purchases
        self.settings = settings

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
        if service.kind not in (ServiceKind.DATA, ServiceKind.CABLE):
            raise invalid({"service_id": f"{service.name} has no plans; it is bought by amount."})
        try:
            slug = self.vtu.providers.slug_for(service.service_id)
        except ProviderError as exc:
            raise ApiError(503, "service_unavailable", "This service is not available right now.") from exc
        priced = await plan_queries.priced_plans(
            session, slug=slug, service_id=service.service_id, tier=caller.user.tier, config=self.vtu.config
        )
        return [PlanOut(p.variation_code, p.name, p.price_kobo) for p in priced]

    async def buy(self, caller: ApiPrincipal, request: PurchaseRequest, idempotency_key: str) -> PurchaseOut:
        limit = self.settings.api_daily_spend_limit_kobo
        purchase = await self.purchases.buy(
            caller.user,
            request,
            channel="api",
            api_key_id=caller.key_id,
            idempotency_key=idempotency_key,
            spend_limit=SpendLimit(limit, lagos_day_start(utcnow())) if limit > 0 else None,
        )
        return PurchaseOut.of(purchase)

    async def get(self, caller: ApiPrincipal, purchase_id: str) -> PurchaseOut:
        try:
            pid = uuid.UUID(purchase_id)
        except ValueError:
            raise ApiError(404, "not_found", "No such purchase.") from None
        return PurchaseOut.of(await self.purchases.get(pid, user_id=caller.user_id))

    async def list(self, caller: ApiPrincipal, status: str | None, limit: int | None) -> list[PurchaseOut]:
        errors: dict[str, str] = {}
        if status is not None and status not in STATUSES:
            errors["status"] = f"Use one of {', '.join(STATUSES)}."
        if limit is not None and not 1 <= limit <= LIST_LIMIT_MAX:
            errors["limit"] = f"Use a number from 1 to {LIST_LIMIT_MAX}."
        if errors:
            raise invalid(errors)
        rows = await self.purchases.list_for_user(caller.user_id, status=status or None, limit=limit or 50)
        return [PurchaseOut.of(p) for p in rows]

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
