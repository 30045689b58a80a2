"""VTpass adapter over httpx (both auth modes). Outcome decisions live in mapping.py.

/pay is sent at most once per request_id and never retried (our own transport has retries=0, and this
process refuses a second `purchase` for an id it already sent); after that only /requery is allowed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from app.config.settings import Settings
from app.vtu.providers.base import (
    CustomerInfo,
    CustomerVerificationFailed,
    Outcome,
    ProviderError,
    ProviderResult,
    PurchaseOrder,
    Variation,
)
from app.vtu.providers.catalog import EXAM_QUANTITY, PROFILE_VERIFIED, ServiceKind, service_kind
from app.vtu.providers.http import HttpProvider, TransportFailed
from app.vtu.providers.mapping import (
    STAFF_ALERTS,
    map_http_answer,
    map_transport_failure,
    naira_amount,
    parse_json,
    redact,
    response_code,
    to_kobo,
)

CUSTOMER_ERROR_CODES = frozenset({"011", "012", "020", "021", "022", "023", "024"})


class InvalidOrder(ValueError):
    """The order cannot be expressed as a VTpass /pay request (nothing was sent)."""


def pay_payload(order: PurchaseOrder) -> dict[str, Any]:
    """The /pay body for one order, shaped per service type as VTpass documents it."""
    kind = service_kind(order.service_id)
    payload: dict[str, Any] = {"request_id": order.request_id, "serviceID": order.service_id}
    needs_plan = kind in (ServiceKind.DATA, ServiceKind.CABLE, ServiceKind.EXAM)
    if needs_plan and not order.variation_code and order.subscription_type != "renew":
        raise InvalidOrder(f"{order.service_id} needs a variation_code")
    if kind is ServiceKind.AIRTIME:
        payload["amount"] = naira_amount(order.amount_kobo)
    elif kind is ServiceKind.DATA:
        payload["billersCode"] = order.billers_code or order.phone
        payload["variation_code"] = order.variation_code
    elif kind is ServiceKind.ELECTRICITY:
        if not order.billers_code or order.variation_code not in {"prepaid", "postpaid"}:
            raise InvalidOrder("electricity needs a meter number and variation_code prepaid|postpaid")
        payload |= {"billersCode": order.billers_code, "variation_code": order.variation_code}
        payload["amount"] = naira_amount(order.amount_kobo)
    elif kind is ServiceKind.CABLE:
        if not order.billers_code:
            raise InvalidOrder(f"{order.service_id} needs a smartcard / IUC number")
        payload["billersCode"] = order.billers_code
        if order.variation_code:
            payload["variation_code"] = order.variation_code
        if order.service_id != "startimes":  # StarTimes takes no subscription_type
            if order.subscription_type not in {"change", "renew"}:
                raise InvalidOrder(f"{order.service_id} needs subscription_type change|renew")
            payload["subscription_type"] = order.subscription_type
            if order.subscription_type == "renew":  # renewals are priced by us (Renewal_Amount from verify)
                payload["amount"] = naira_amount(order.amount_kobo)
    elif kind is ServiceKind.EXAM:  # fixed-price PINs: VTpass prices them by variation x quantity
        payload["variation_code"] = order.variation_code
        low, high = EXAM_QUANTITY
        if order.quantity is not None and not low <= order.quantity <= high:
            raise InvalidOrder(f"{order.service_id} quantity must be {low} to {high}")
        if order.service_id in PROFILE_VERIFIED:  # JAMB: the candidate's profile id
            if not order.billers_code:
                raise InvalidOrder(f"{order.service_id} needs the candidate's profile id")
            payload["billersCode"] = order.billers_code
    else:  # a service we have no rules for yet: send everything we were given
        payload["amount"] = naira_amount(order.amount_kobo)
        for key, value in (("billersCode", order.billers_code), ("variation_code", order.variation_code)):
            if value:
                payload[key] = value
    if order.quantity is not None:
        payload["quantity"] = order.quantity
    payload["phone"] = order.phone
    return payload


def parse_variations(body: Mapping[str, Any]) -> list[Variation]:
    content = body.get("content")
    content = content if isinstance(content, Mapping) else {}
    # VTpass spells the list both ways depending on the endpoint version
    items = next((content[k] for k in ("variations", "varations") if k in content), None)
    if not isinstance(items, list):
        raise ProviderError(f"VTpass returned no variation list: {body.get('response_description')!r}")
    plans = []
    for item in items:
        amount = to_kobo(item.get("variation_amount")) if isinstance(item, Mapping) else None
        if amount is None or not item.get("variation_code"):
            continue  # one broken row must not hide the rest of the catalog
        fixed = item.get("fixedPrice")
        plans.append(
            Variation(
                variation_code=str(item["variation_code"]),
                name=str(item.get("name") or item["variation_code"]).strip(),
                amount_kobo=amount,
                fixed_price=fixed is True or str(fixed).strip().lower() in {"yes", "true", "1"},
            )
        )
    return plans


def _yes_no(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    return True if text in {"yes", "true", "1"} else False if text in {"no", "false", "0"} else None


def parse_customer(body: Mapping[str, Any]) -> CustomerInfo:
    """A merchant-verify answer to CustomerInfo; CustomerVerificationFailed when the number was rejected."""
    code = response_code(body)
    description = str(body.get("response_description") or f"VTpass code {code}")
    if code in STAFF_ALERTS:
        raise ProviderError(description, code=code, staff_alert=STAFF_ALERTS[code])
    if code in CUSTOMER_ERROR_CODES:
        raise CustomerVerificationFailed(description, code=code)
    if code != "000":
        raise ProviderError(f"VTpass could not verify the customer: {description}", code=code)
    content = body.get("content")
    content = content if isinstance(content, Mapping) else {}
    name = str(content.get("Customer_Name") or content.get("customerName") or "").strip()
    if content.get("error") or _yes_no(content.get("WrongBillersCode")) or not name:
        raise CustomerVerificationFailed(str(content.get("error") or "The customer number was not found"))
    minimums = [to_kobo(content.get(k)) for k in ("Minimum_Amount", "Min_Purchase_Amount")]
    address = content.get("Address") or content.get("Customer_Address")
    return CustomerInfo(
        name=name,
        address=str(address).strip() if address else None,
        details=redact(content),
        minimum_amount_kobo=max((m for m in minimums if m is not None), default=None),
        renewal_amount_kobo=to_kobo(content.get("Renewal_Amount")),
        can_vend=_yes_no(content.get("Can_Vend")),
    )


class VTPassProvider(HttpProvider):
    slug = "vtpass"

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: httpx.AsyncClient | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        pay_read_timeout: float = 30.0,
    ) -> None:
        base = settings.vtpass_base_url.rstrip("/")
        self._api = (base[: -len("/api")] if base.endswith("/api") else base) + "/api"
        self._keys = (settings.vtpass_api_key, settings.vtpass_public_key, settings.vtpass_secret_key)
        basic = f"{settings.vtpass_username}:{settings.vtpass_password}".encode()
        self._basic = "Basic " + base64.b64encode(basic).decode()
        if all(self._keys):
            self._mode = "keys"
        elif settings.vtpass_username and settings.vtpass_password:
            self._mode = "basic"
        else:
            raise ProviderError("VTpass credentials are missing", staff_alert=STAFF_ALERTS["087"])
        self._secrets = [*self._keys, settings.vtpass_password, self._basic, self._basic.split(" ", 1)[1]]
        self._init_http(
            http_client,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            pay_read_timeout=pay_read_timeout,
        )

    def _headers(self, method: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self._mode == "basic":
            return headers | {"Authorization": self._basic}
        api_key, public_key, secret_key = self._keys
        if method == "GET":
            return headers | {"api-key": api_key, "public-key": public_key}
        return headers | {"api-key": api_key, "secret-key": secret_key}

    async def _send(
        self, method: str, path: str, *, payload: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None, limits: httpx.Timeout | None = None,
    ) -> tuple[dict[str, Any], httpx.Response]:  # fmt: skip
        """Send one request; transport errors propagate, tagged with the redacted request log.

        The log's `queued_at` is when we asked the client; `sent_at` when the request really started to go
        out on a connection (after any wait for the pool and the connect), None if it never did."""
        url = f"{self._api}/{path}"
        headers = self._headers(method)
        log: dict[str, Any] = {
            "method": method,
            "url": url,
            "params": dict(params or {}),
            "headers": redact(headers, self._secrets),
            "body": redact(payload, self._secrets),
            "queued_at": datetime.now(UTC).isoformat(),
            "sent_at": None,
        }

        async def trace(event: str, info: Mapping[str, Any]) -> None:
            if event.endswith("send_request_headers.started") and log["sent_at"] is None:
                log["sent_at"] = datetime.now(UTC).isoformat()

        return await self._timed(
            log,
            lambda: self._client.request(
                method, url, params=params, headers=headers, timeout=limits or self._timeout,
                content=json.dumps(payload).encode() if payload is not None else None,
                extensions={"trace": trace},
            ),
        )  # fmt: skip

    async def purchase(self, order: PurchaseOrder) -> ProviderResult:
        self._refuse_if_sent(order.request_id)
        try:
            payload = pay_payload(order)
        except InvalidOrder as exc:  # nothing left this process, so no order exists anywhere
            return ProviderResult(Outcome.FAILED, None, f"Not sent to VTpass: {exc}", nothing_placed=True)
        self._mark_sent(order.request_id)
        try:
            log, response = await self._send("POST", "pay", payload=payload, limits=self._pay_timeout)
        except TransportFailed as failed:
            return map_transport_failure(failed.reason, request_log=failed.log)
        return map_http_answer(response.status_code, response.content, request_log=log, secrets=self._secrets)

    async def requery(
        self, request_id: str, *, paid_at: datetime | None, needs_token: bool = False
    ) -> ProviderResult:
        try:
            log, response = await self._send("POST", "requery", payload={"request_id": request_id})
        except TransportFailed as failed:
            return map_transport_failure(failed.reason, request_log=failed.log)
        return map_http_answer(
            response.status_code, response.content, requery=True, paid_at=paid_at,
            request_log=log, secrets=self._secrets,
        )  # fmt: skip

    async def _call(
        self, method: str, path: str, *, payload: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any]:  # fmt: skip
        """A non-money call: any problem is a ProviderError (nothing to requery)."""
        try:
            _, response = await self._send(method, path, payload=payload, params=params)
        except TransportFailed as failed:
            raise ProviderError(f"VTpass {path} unreachable ({failed.reason})") from failed
        if response.status_code >= 500:
            raise ProviderError(f"VTpass {path} answered HTTP {response.status_code}")
        try:
            body = parse_json(response.content)
        except ValueError:
            body = None
        if not isinstance(body, Mapping):
            raise ProviderError(f"VTpass {path} answered HTTP {response.status_code} without a JSON object")
        code = response_code(body)
        if code in STAFF_ALERTS:
            description = str(body.get("response_description") or f"VTpass code {code}")
            raise ProviderError(description, code=code, staff_alert=STAFF_ALERTS[code])
        return body

    async def list_variations(self, service_id: str) -> list[Variation]:
        return parse_variations(
            await self._call("GET", "service-variations", params={"serviceID": service_id})
        )

    async def verify_customer(self, service_id: str, customer_number: str, type: str | None) -> CustomerInfo:
        payload = {"billersCode": customer_number, "serviceID": service_id}
        if type:
            payload["type"] = type
        return parse_customer(await self._call("POST", "merchant-verify", payload=payload))

    async def balance(self) -> int:
        body = await self._call("GET", "balance")
        holder = body.get("contents") or body.get("content")
        kobo = to_kobo(holder.get("balance")) if isinstance(holder, Mapping) else None
        if kobo is None:
            raise ProviderError("VTpass balance answer had no balance")
        return kobo
