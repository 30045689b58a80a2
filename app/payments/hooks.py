"""Sign-up hooks: every new customer gets a pending reservation row (same transaction as the user), and
the web sign-up asks the worker to reserve the bank accounts right away."""

from __future__ import annotations

from typing import Any

from app.accounts.hooks import on_user_created, on_user_signed_up


@on_user_created
async def queue_reservation(session: Any, user: Any) -> None:
    from app.payments.reservations import request_reservation

    await request_reservation(session, user)


@on_user_signed_up
async def reserve_now(state: Any, user: Any) -> None:
    funding = getattr(state, "funding", None)
    if funding is not None:
        await funding.enqueue("reserve_accounts", f"reserve:{user.id}", user_id=str(user.id))
