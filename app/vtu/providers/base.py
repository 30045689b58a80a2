"""The provider contract: what the purchase service may ask a VTU provider and what it gets back.

Amounts are integer kobo everywhere. `purchase` and `requery` never raise for network trouble: an unclear
answer is `Outcome.PENDING`, because a top-up that might have been delivered must never be refunded blind.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # definite: the provider placed no order, refund now
    PENDING = "pending"  # unknown: requery later, never refund blind
    REVERSED = "reversed"  # delivered earlier, then reversed by the provider: refund once

    @property
    def is_final(self) -> bool:
        return self is not Outcome.PENDING


@dataclass(frozen=True, slots=True)
class PurchaseOrder:
    request_id: str  # unique per purchase, sent once to /pay and then only requeried
    service_id: str  # VTpass serviceID, e.g. "mtn", "mtn-data", "ikeja-electric", "dstv"
    amount_kobo: int
    phone: str
    billers_code: str | None = None  # meter number, smartcard number (data: defaults to phone)
    variation_code: str | None = None  # data/cable plan, or "prepaid"/"postpaid" for electricity
    subscription_type: str | None = None  # cable: "change" | "renew" (not for startimes)
    quantity: int | None = None  # exam PINs: how many (VTpass `quantity`)


@dataclass(frozen=True, slots=True)
class ExamPin:
    """One exam PIN as the provider delivered it (a secret: stored only encrypted, never logged)."""

    serial: str | None
    pin: str

    def as_dict(self) -> dict[str, str | None]:
        return {"serial": self.serial, "pin": self.pin}


@dataclass(frozen=True, slots=True)
class ProviderResult:
    outcome: Outcome
    code: str | None  # provider's code ("000", "016", ...) or None when there was no usable answer
    message: str
    token: str | None = None  # electricity token (prepaid)
    units: str | None = None  # e.g. "79.9 kWh"
    provider_reference: str | None = None  # provider's transactionId
    amount_kobo: int | None = None  # face amount the provider reports
    staff_alert: str | None = None  # operational problem staff must fix (float low, IP, credentials)
    # A FAILED answer that proves no order exists at this provider (VTpass 016/018/091..., 015 after the
    # grace; ClubKonnect 4xx, INVALID_REQUESTID after the grace): the only answers a purchase may fail over
    # on (docs/architecture.md, "Provider failover"). Anything else FAILED (e.g. placed, then cancelled)
    # fails the purchase as before.
    nothing_placed: bool = False
    # Nothing placed, but only "not now" (VTpass 019 likely duplicate: the same product and number within
    # 30 s): the purchase is held and sent again with a new request id, never refunded for it.
    retry_later: bool = False
    pins: tuple[ExamPin, ...] = ()  # exam PINs delivered (never in the logs below)
    # The PINs encrypted for storage: set by the purchase engine (app/vtu/exam.py), never by a provider.
    sealed_pins: str | None = None
    request_log: dict[str, Any] = field(default_factory=dict)  # secrets redacted
    response_log: dict[str, Any] | str | None = None  # secrets redacted; None when nothing came back


@dataclass(frozen=True, slots=True)
class Variation:
    variation_code: str
    name: str
    amount_kobo: int
    fixed_price: bool


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    name: str
    address: str | None
    details: dict[str, Any]  # the provider's verify content (JSON-safe), e.g. Meter_Type, Current_Bouquet
    minimum_amount_kobo: int | None = None
    renewal_amount_kobo: int | None = None
    can_vend: bool | None = None


class ProviderError(Exception):
    """The provider could not answer a non-money call (variations, verify, balance) or was misused."""

    def __init__(self, message: str, *, code: str | None = None, staff_alert: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.staff_alert = staff_alert


class CustomerVerificationFailed(ProviderError):
    """The meter / smartcard / account number was checked and rejected (show `message` to the customer)."""


class DuplicatePayAttempt(ProviderError):
    """`purchase` called twice for one request_id in this process; after /pay only `requery` is allowed."""


@runtime_checkable
class Provider(Protocol):
    slug: str  # "stub" | "vtpass": stored with plans and purchases

    # The longest one `purchase` call can take (for VTpass: its /pay timeouts added up). The purchase engine
    # cuts /pay off there, and until then treats a purchase without a logged /pay as possibly in flight.
    @property
    def max_pay_seconds(self) -> float: ...

    async def purchase(self, order: PurchaseOrder) -> ProviderResult: ...

    # `paid_at`: when VTpass's 30 s grace for 015 "unknown request id" starts, i.e. when /pay was known to be
    # over (None: unknown, 015 stays pending). `needs_token`: a prepaid electricity sale, delivered only with
    # its token (ClubKonnect may complete the order before it issues the token; VTpass sends both at once).
    async def requery(
        self, request_id: str, *, paid_at: datetime | None, needs_token: bool = False
    ) -> ProviderResult: ...

    async def list_variations(self, service_id: str) -> list[Variation]: ...

    async def verify_customer(
        self, service_id: str, customer_number: str, type: str | None
    ) -> CustomerInfo: ...

    async def balance(self) -> int: ...

    async def aclose(self) -> None: ...
