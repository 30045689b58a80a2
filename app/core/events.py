"""Domain events other packages subscribe to, so the domain that raises one never imports its listeners.

Two kinds:
- in-transaction events run inside the DB transaction that made the change (pass the caller's session or
  connection); whatever a listener writes commits or rolls back with it, so it happens exactly when the
  event does. A listener that raises aborts that transaction (the change is then retried by its owner's
  sweep), so listeners must be cheap and must not raise for business reasons.
- after-commit events run once the change is durable; their failures are logged and swallowed (they must
  only hand work to the worker, e.g. enqueue a job).

Listener modules are named in `LISTENER_MODULES` and imported on the first dispatch (and by tests), so every
entry point -- web, worker, CLI -- runs every listener without import cycles.
"""

from __future__ import annotations

import datetime
import importlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

log = structlog.get_logger("app.core.events")

LISTENER_MODULES: list[str] = [
    "app.referrals.listeners",  # referral bonuses (WALLET_FUNDED, PURCHASE_SETTLED)
    "app.api.callbacks",  # reseller purchase-completion callbacks (PURCHASE_FINISHED)
    "app.mail.listeners",  # funding / receipt e-mails (WALLET_FUNDED, PURCHASE_FINISHED)
    "app.core.metrics",  # purchases settled, by status / provider / service (PURCHASE_FINISHED)
]

E = TypeVar("E")
Listener = Callable[[Any, E], Awaitable[None]]

_loaded = False


def load_listeners() -> None:
    global _loaded
    if _loaded:
        return
    for module in LISTENER_MODULES:
        importlib.import_module(module)
    _loaded = True


class Event(Generic[E]):
    def __init__(self, name: str, *, after_commit: bool) -> None:
        self.name = name
        self.after_commit = after_commit
        self.listeners: list[Listener[E]] = []
        self._interest: dict[Listener[E], Callable[[E], bool]] = {}

    def connect(self, listener: Listener[E]) -> Listener[E]:
        """Decorator: subscribe `listener(context, event)` to every event."""
        if listener not in self.listeners:
            self.listeners.append(listener)
        return listener

    def connect_when(self, interested: Callable[[E], bool]) -> Callable[[Listener[E]], Listener[E]]:
        """Decorator: subscribe a listener that only acts on events for which `interested(event)` is true
        (a cheap, side-effect-free check). It lets the emitter know beforehand that nobody needs an
        event, e.g. to skip opening a transaction only listeners would have written in."""

        def register(listener: Listener[E]) -> Listener[E]:
            self._interest[listener] = interested
            return self.connect(listener)

        return register

    def wanted(self, event: E) -> bool:
        """Would any listener act on `event`?"""
        load_listeners()
        return any(self._wants(listener, event) for listener in self.listeners)

    def _wants(self, listener: Listener[E], event: E) -> bool:
        interested = self._interest.get(listener)
        return interested is None or interested(event)

    async def emit(self, context: Any, event: E) -> None:
        """`context`: the open session/connection (in-transaction events) or the runtime (after-commit)."""
        load_listeners()
        for listener in self.listeners:
            if not self._wants(listener, event):
                continue
            if not self.after_commit:
                await listener(context, event)
                continue
            try:
                await listener(context, event)
            except Exception:
                log.exception("event_listener_failed", event_name=self.name, listener=listener.__qualname__)


@dataclass(frozen=True, slots=True)
class WalletFunded:
    """A bank transfer was credited to a customer's wallet (emitted in the crediting transaction)."""

    user_id: uuid.UUID
    amount_paid_kobo: int  # what the customer sent
    credited_kobo: int  # what reached the wallet (after the platform's funding fee)
    transaction_reference: str  # Monnify's transactionReference, unique per transfer
    ledger_transaction_id: int


@dataclass(frozen=True, slots=True)
class PurchaseSettled:
    """A purchase changed status (pending -> successful/failed/reversed, or successful -> reversed).

    In-transaction: emitted with the connection/session of the guarded transition, after its ledger posting.
    After-commit (`PURCHASE_FINISHED`): emitted with the PurchaseService once that transaction committed."""

    purchase_id: uuid.UUID
    user_id: uuid.UUID
    status: str
    previous_status: str
    service_id: str
    amount_kobo: int  # what the wallet paid
    cost_kobo: int  # what the provider charges us
    margin_kobo: int  # amount - cost (may be negative for a reseller discount)
    api_key_id: uuid.UUID | None
    settled_at: datetime.datetime
    provider_slug: str = ""  # the provider that sold it (metrics label)


@dataclass(frozen=True, slots=True)
class EmailVerified:
    """A user proved they own their e-mail address (emitted once per user, in the verifying transaction)."""

    user_id: uuid.UUID
    verified_at: datetime.datetime


# In the crediting transaction (context: the AsyncSession).
WALLET_FUNDED: Event[WalletFunded] = Event("wallet_funded", after_commit=False)
# In the transition's transaction (context: the SQLAlchemy AsyncConnection or AsyncSession that ran it).
PURCHASE_SETTLED: Event[PurchaseSettled] = Event("purchase_settled", after_commit=False)
# After that transaction committed (context: the PurchaseService, which holds `.scheduler`).
PURCHASE_FINISHED: Event[PurchaseSettled] = Event("purchase_finished", after_commit=True)
# In the transaction that marked the user verified (context: the AsyncSession), e.g. release withheld
# referral bonuses.
EMAIL_VERIFIED: Event[EmailVerified] = Event("email_verified", after_commit=False)

__all__ = [
    "EMAIL_VERIFIED",
    "LISTENER_MODULES",
    "PURCHASE_FINISHED",
    "PURCHASE_SETTLED",
    "WALLET_FUNDED",
    "EmailVerified",
    "Event",
    "PurchaseSettled",
    "WalletFunded",
    "load_listeners",
]
