"""ClubKonnect (Nellobytes Systems) adapter over httpx, behind the same provider protocol as VTpass.

Every call is a GET with `UserID` and `APIKey` in the query string (so URLs are redacted before they are
logged). Our catalog is keyed by VTpass service ids; this module translates them to ClubKonnect's codes
(networks 01-04, discos 01-10, meter types 01/02). Plans (data bundles, TV packages) are ClubKonnect's own
ids: `list_variations` returns them, and a purchase routed here carries one of them as its variation code.
Outcome decisions live in clubkonnect_mapping.py. An order is sent at most once per request id (no retries,
and this process refuses a second `purchase` for an id it already sent); after that only the query.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

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
from app.vtu.providers.catalog import ServiceKind, service_kind
from app.vtu.providers.clubkonnect_mapping import (
    STAFF_ALERTS,
    map_http_answer,
    map_transport_failure,
    status_code,
)
from app.vtu.providers.http import HttpProvider, TransportFailed
from app.vtu.providers.mapping import naira_amount, parse_json, redact, to_kobo

NETWORKS = {"mtn": "01", "glo": "02", "etisalat": "03", "airtel": "04"}
DISCOS = {
    "eko-electric": "01",
    "ikeja-electric": "02",
    "abuja-electric": "03",
    "kano-electric": "04",
    "portharcourt-electric": "05",
    "jos-electric": "06",
    "ibadan-electric": "07",
    "kaduna-electric": "08",
    "enugu-electric": "09",
    "benin-electric": "10",
}
METER_TYPES = {"prepaid": "01", "postpaid": "02"}
CABLE_TV = {"dstv": "dstv", "gotv": "gotv", "startimes": "startimes"}


class InvalidOrder(ValueError):
    """The order cannot be expressed as a ClubKonnect request (nothing was sent)."""


def network_of(service_id: str) -> str | None:
    return NETWORKS.get(service_id.removesuffix("-data"))


def order_request(order: PurchaseOrder) -> tuple[str, dict[str, str]]:
    """(script, query parameters without credentials) for one order; InvalidOrder when it cannot be sent."""
    kind = service_kind(order.service_id)
    rid = order.request_id
    if kind is ServiceKind.AIRTIME or kind is ServiceKind.DATA:
        network = network_of(order.service_id)
        if network is None:
            raise InvalidOrder(f"ClubKonnect sells no {order.service_id}")
        number = order.billers_code or order.phone
        if kind is ServiceKind.AIRTIME:
            amount = str(naira_amount(order.amount_kobo))
            return "APIAirtimeV1.asp", {"MobileNetwork": network, "Amount": amount, "MobileNumber": number,
                                        "RequestID": rid}  # fmt: skip
        if not order.variation_code:
            raise InvalidOrder(f"{order.service_id} needs a ClubKonnect data plan id")
        return "APIDatabundleV1.asp", {"MobileNetwork": network, "DataPlan": order.variation_code,
                                       "MobileNumber": number, "RequestID": rid}  # fmt: skip
    if kind is ServiceKind.ELECTRICITY:
        disco = DISCOS.get(order.service_id)
        meter_type = METER_TYPES.get(order.variation_code or "")
        if disco is None or meter_type is None or not order.billers_code:
            raise InvalidOrder("electricity needs a known disco, a meter number and prepaid|postpaid")
        return "APIElectricityV1.asp", {
            "ElectricCompany": disco, "MeterType": meter_type, "MeterNo": order.billers_code,
            "Amount": str(naira_amount(order.amount_kobo)), "PhoneNo": order.phone, "RequestID": rid,
        }  # fmt: skip
    if kind is ServiceKind.CABLE:
        tv = CABLE_TV.get(order.service_id)
        if tv is None or not order.billers_code:
            raise InvalidOrder(f"{order.service_id} needs a smartcard / IUC number")
        if not order.variation_code:  # a renewal is the current package again: the router passes its id
            raise InvalidOrder(f"{order.service_id} needs a ClubKonnect package id (also to renew)")
        return "APICableTVV1.asp", {"CableTV": tv, "Package": order.variation_code,
                                    "SmartCardNo": order.billers_code, "PhoneNo": order.phone,
                                    "RequestID": rid}  # fmt: skip
    raise InvalidOrder(f"ClubKonnect sells no {order.service_id}")


def needs_token(order: PurchaseOrder) -> bool:
    return service_kind(order.service_id) is ServiceKind.ELECTRICITY and order.variation_code == "prepaid"


def _entries(tree: Any) -> Iterator[Mapping[str, Any]]:
    """Every object in a nested answer (network and package key spellings vary between their versions)."""
    if isinstance(tree, Mapping):
        yield tree
        for value in tree.values():
            yield from _entries(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _entries(value)


def _first(item: Mapping[str, Any], *names: str) -> Any:
    return next((item[n] for n in names if item.get(n) not in (None, "")), None)


def parse_plans(body: Any, group_id: str) -> list[Variation]:
    """Plans of one network (`ID` "01".."04") or TV (`ID` "dstv"...) from APIDatabundlePlansV2 /
    APICableTVPackagesV2: the group is found by its ID, whatever the key it sits under is spelled."""
    plans: list[Variation] = []
    seen: set[str] = set()
    for entry in _entries(body):
        if str(entry.get("ID", "")).strip().lower() != group_id.lower():
            continue
        for product in _entries(entry.get("PRODUCT")):
            code = _first(product, "PRODUCT_ID", "PACKAGE_ID")
            amount = to_kobo(_first(product, "PRODUCT_AMOUNT", "PACKAGE_AMOUNT"))
            if code is None or amount is None or str(code) in seen:
                continue  # one broken row must not hide the rest of the list
            seen.add(str(code))
            name = _first(product, "PRODUCT_NAME", "PACKAGE_NAME") or code
            plans.append(Variation(str(code), str(name).strip(), amount, fixed_price=True))
    if not plans:
        raise ProviderError(f"ClubKonnect listed no plans for {group_id!r}")
    return plans


def parse_customer(body: Any) -> CustomerInfo:
    if not isinstance(body, Mapping):
        raise ProviderError("ClubKonnect verify answer was not a JSON object")
    code = status_code(body)
    if code in STAFF_ALERTS:
        raise ProviderError(f"ClubKonnect {code}", code=code, staff_alert=STAFF_ALERTS[code])
    name = str(body.get("customer_name") or "").strip()
    status = str(body.get("status") or "").strip().upper()
    if not name or name.upper().startswith("INVALID") or status.startswith("INVALID"):
        raise CustomerVerificationFailed("The customer number was not found", code=code)
    return CustomerInfo(name=name, address=None, details=redact(dict(body)))


class ClubKonnectProvider(HttpProvider):
    slug = "clubkonnect"

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: httpx.AsyncClient | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        pay_read_timeout: float = 30.0,
    ) -> None:
        if not settings.clubkonnect_user_id or not settings.clubkonnect_api_key:
            raise ProviderError(
                "ClubKonnect credentials are missing",
                staff_alert="Set CLUBKONNECT_USER_ID and CLUBKONNECT_API_KEY",
            )
        self._base = settings.clubkonnect_base_url.rstrip("/")
        self._auth = {"UserID": settings.clubkonnect_user_id, "APIKey": settings.clubkonnect_api_key}
        self._secrets = [settings.clubkonnect_api_key, settings.clubkonnect_callback_token]
        token = settings.clubkonnect_callback_token
        # The callback is a GET nobody signs: the URL carries a secret and we requery before acting on it.
        self._callback = (
            f"{settings.site_url}/vtu/webhooks/clubkonnect/{quote(token, safe='')}" if token else ""
        )
        self._init_http(
            http_client,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            pay_read_timeout=pay_read_timeout,
        )

    async def _get(
        self, script: str, params: Mapping[str, str], *, limits: httpx.Timeout | None = None
    ) -> tuple[dict[str, Any], httpx.Response]:
        """One GET; transport errors propagate as TransportFailed with the redacted request log."""
        url = f"{self._base}/{script}"
        log: dict[str, Any] = {
            "method": "GET",
            "url": url,
            "params": redact(dict(params), self._secrets),
            "sent_at": datetime.now(UTC).isoformat(),
        }
        return await self._timed(
            log,
            lambda: self._client.get(
                url, params={**self._auth, **params}, headers={"Accept": "application/json"},
                timeout=limits or self._timeout,
            ),
        )  # fmt: skip

    async def purchase(self, order: PurchaseOrder) -> ProviderResult:
        self._refuse_if_sent(order.request_id)
        try:
            script, params = order_request(order)
        except InvalidOrder as exc:  # nothing left this process: no order exists anywhere
            return ProviderResult(
                Outcome.FAILED, None, f"Not sent to ClubKonnect: {exc}", nothing_placed=True
            )
        if self._callback:
            params["CallBackURL"] = f"{self._callback}?request_id={quote(order.request_id, safe='')}"
        self._mark_sent(order.request_id)
        try:
            log, response = await self._get(script, params, limits=self._pay_timeout)
        except TransportFailed as failed:
            return map_transport_failure(failed.reason, request_log=failed.log)
        return map_http_answer(
            response.status_code, response.content, needs_token=needs_token(order), request_log=log,
            secrets=self._secrets,
        )  # fmt: skip

    async def requery(
        self, request_id: str, *, paid_at: datetime | None, needs_token: bool = False
    ) -> ProviderResult:
        try:
            log, response = await self._get("APIQueryV1.asp", {"RequestID": request_id})
        except TransportFailed as failed:
            return map_transport_failure(failed.reason, request_log=failed.log)
        return map_http_answer(
            response.status_code, response.content, needs_token=needs_token, requery=True, paid_at=paid_at,
            request_log=log, secrets=self._secrets,
        )  # fmt: skip

    async def _call(self, script: str, params: Mapping[str, str]) -> Any:
        """A non-money call: any problem is a ProviderError (nothing to requery)."""
        try:
            _, response = await self._get(script, params)
        except TransportFailed as failed:
            raise ProviderError(f"ClubKonnect {script} unreachable ({failed.reason})") from failed
        if response.status_code >= 400:
            raise ProviderError(f"ClubKonnect {script} answered HTTP {response.status_code}")
        try:
            body = parse_json(response.content)
        except ValueError:
            raise ProviderError(f"ClubKonnect {script} answered without JSON") from None
        code = status_code(body) if isinstance(body, Mapping) else None
        if code in STAFF_ALERTS:
            raise ProviderError(f"ClubKonnect {script}: {code}", code=code, staff_alert=STAFF_ALERTS[code])
        return body

    async def list_variations(self, service_id: str) -> list[Variation]:
        kind = service_kind(service_id)
        if kind is ServiceKind.DATA and (network := network_of(service_id)):
            return parse_plans(await self._call("APIDatabundlePlansV2.asp", {}), network)
        if kind is ServiceKind.CABLE and service_id in CABLE_TV:
            return parse_plans(await self._call("APICableTVPackagesV2.asp", {}), CABLE_TV[service_id])
        raise ProviderError(f"ClubKonnect has no plan list for {service_id}")

    async def verify_customer(self, service_id: str, customer_number: str, type: str | None) -> CustomerInfo:
        kind = service_kind(service_id)
        if kind is ServiceKind.ELECTRICITY and service_id in DISCOS:
            params = {"ElectricCompany": DISCOS[service_id], "MeterNo": customer_number}
            if type in METER_TYPES:
                params["MeterType"] = METER_TYPES[type]
            return parse_customer(await self._call("APIVerifyElectricityV1.asp", params))
        if kind is ServiceKind.CABLE and service_id in CABLE_TV:
            params = {"CableTV": CABLE_TV[service_id], "SmartCardNo": customer_number}
            return parse_customer(await self._call("APIVerifyCableTVV1.asp", params))
        raise ProviderError(f"ClubKonnect cannot verify {service_id} numbers")

    async def balance(self) -> int:
        body = await self._call("APIWalletBalanceV1.asp", {})
        kobo = to_kobo(body.get("balance")) if isinstance(body, Mapping) else None
        if kobo is None:
            raise ProviderError("ClubKonnect balance answer had no balance")
        return kobo
