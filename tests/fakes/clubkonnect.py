"""A ClubKonnect (Nellobytes) simulator: a plain ASGI app answering the GET scripts of its API, served with
tests/fakes/server.py. Follows the facts our adapter was written from (docs/architecture.md, "Providers").

Orders (`APIAirtimeV1.asp`, `APIDatabundleV1.asp`, `APIElectricityV1.asp`, `APICableTVV1.asp`) answer
`{"orderid", "statuscode", "status"}`; by default 100 ORDER_RECEIVED, then the query (`APIQueryV1.asp`)
says 200 ORDER_COMPLETED. Knobs (`configure(number=None, **Behaviour fields)`, number=None sets the
default; the number is the phone, meter or smartcard): answers that stay 100/300 for a while, 4xx
ORDER_ERROR that placed nothing (`order_code`), 5xx ORDER_CANCELLED after placing (`outcome="cancelled"`),
electricity tokens that only show on a later query (`token_after`), IIS HTML 5xx pages (`http_status`,
with or without the order placed), latency and hangs past the client's timeout. Every request is recorded;
`orders` holds each order by RequestID and `duplicates` counts RequestIDs sent twice (must stay 0).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx

USER_ID = "CK100234"
API_KEY = "ck-sim-key-91fe0c"
PREPAID_METER = "1111111111111"
POSTPAID_METER = "1010101010101"
SMARTCARD = "1212121212"

STATUS_TEXT = {
    "100": "ORDER_RECEIVED", "200": "ORDER_COMPLETED", "201": "NETWORK_UNRESPONSIVE",
    "300": "ORDER_PROCESSED",
    "400": "INVALID_CREDENTIALS", "409": "INVALID_RECIPIENT", "417": "INSUFFICIENT_BALANCE",
    "506": "ORDER_CANCELLED", "516": "ORDER_CANCELLED", "600": "ORDER_ONHOLD",
}  # fmt: skip
DATA_PLANS = {  # network code -> (PRODUCT_ID, name, naira)
    "01": (("500.0", "500 MB - 30 days (SME)", 150), ("1000.0", "1 GB - 30 days (SME)", 280),
           ("2000.0", "2 GB - 30 days (SME)", 560), ("5000.0", "5 GB - 30 days (SME)", 1400)),
    "02": (("1000", "1.05 GB - 14 days", 300), ("2000", "2.9 GB - 30 days", 950)),
    "03": (("500", "500 MB - 30 days", 160), ("1500", "1.5 GB - 30 days", 990)),
    "04": (("1000.0", "1 GB - 7 days", 300), ("2000.0", "2 GB - 30 days", 1450)),
}  # fmt: skip
NETWORK_KEYS = {"01": "MTN", "02": "Glo", "03": "m_9mobile", "04": "Airtel"}  # their spellings vary
TV_PACKAGES = {
    "dstv": (("dstv-padi", "DStv Padi", 3600), ("dstv-yanga", "DStv Yanga", 5100),
             ("dstv-confam", "DStv Confam", 9300)),
    "gotv": (("gotv-smallie", "GOtv Smallie", 1575), ("gotv-jinja", "GOtv Jinja", 3300)),
    "startimes": (("nova", "Nova", 1500), ("basic", "Basic", 2600)),
}  # fmt: skip
ORDER_SCRIPTS = {"APIAirtimeV1.asp", "APIDatabundleV1.asp", "APIElectricityV1.asp", "APICableTVV1.asp"}


@dataclass(frozen=True)
class Behaviour:
    latency: float = 0.0  # seconds before answering
    outcome: str = "delivered"  # final state: delivered | cancelled (5xx after placing) | pending (forever)
    pending_answers: int = 1  # answers (the order's included) that say `pending_code` before the final one
    pending_code: str = "100"  # 100 ORDER_RECEIVED, 300 ORDER_PROCESSED, 201, 600
    order_code: str | None = None  # the order is refused with this 4xx and nothing is placed
    token_after: int = 0  # electricity: queries that say 200 without the token before it appears
    http_status: int | None = None  # answer an IIS HTML page with this status instead
    process: bool = True  # with http_status / hang: was the order placed anyway?
    hang: float = 0.0  # sleep this long before answering (past the client's timeout)
    on: tuple[str, ...] = ("order",)  # where the faults apply: order, query


@dataclass
class Recorded:
    script: str
    query: dict[str, str]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Order:
    request_id: str
    orderid: str
    script: str
    params: dict[str, str]
    behaviour: Behaviour
    answers: int = 0
    queries_completed: int = 0

    @property
    def electricity_prepaid(self) -> bool:
        return self.script == "APIElectricityV1.asp" and self.params.get("MeterType") == "01"

    def body(self, *, query: bool) -> dict[str, Any]:
        self.answers += 1
        b = self.behaviour
        if b.outcome == "pending" or self.answers <= b.pending_answers:
            code = b.pending_code
        else:
            code = "506" if b.outcome == "cancelled" else "200"
        answer: dict[str, Any] = {
            "orderid": self.orderid,
            "statuscode": code,
            "status": STATUS_TEXT.get(code),
        }
        if query:
            answer |= {"orderdate": datetime.now(UTC).strftime("%d-%b-%Y %I:%M:%S %p"),
                       "requestid": self.request_id, "amountcharged": self.params.get("Amount", ""),
                       "remark": "simulated"}  # fmt: skip
        if code == "200" and self.electricity_prepaid:
            if query:
                self.queries_completed += 1
            if self.queries_completed > b.token_after or (not query and b.token_after == 0):
                answer["metertoken"] = token_for(self.request_id)
                answer["meterunits"] = "49.6 kWh"
        return answer


def token_for(request_id: str) -> str:
    digits = str(int(hashlib.sha256(request_id.encode()).hexdigest(), 16))[:20]
    return "-".join(digits[i : i + 4] for i in range(0, 20, 4))


class ClubKonnectSimulator:
    def __init__(self, *, user_id: str = USER_ID, api_key: str = API_KEY) -> None:
        self.user_id, self.api_key = user_id, api_key
        self.reset()

    def reset(self) -> None:
        self.requests: list[Recorded] = []
        self.orders: dict[str, Order] = {}
        self.duplicates = 0
        self.default = Behaviour()
        self.by_number: dict[str, Behaviour] = {}
        self.balance_naira = "150,000.00"
        self._ids = itertools.count(6_712_000_001)

    def configure(self, number: str | None = None, **knobs: Any) -> None:
        if number is None:
            self.default = Behaviour(**knobs)
        else:
            self.by_number[number] = Behaviour(**knobs)

    def delivered_to(self, number: str) -> list[str]:
        """RequestIDs of the placed orders for `number` (phone, meter, smartcard) that end delivered."""
        found = []
        for rid, o in self.orders.items():
            numbers = (o.params.get("MobileNumber"), o.params.get("MeterNo"), o.params.get("SmartCardNo"))
            if number in numbers and o.behaviour.outcome == "delivered":
                found.append(rid)
        return found

    def order_requests(self, request_id: str | None = None) -> list[Recorded]:
        hits = [r for r in self.requests if r.script in ORDER_SCRIPTS]
        return [r for r in hits if request_id is None or r.query.get("RequestID") == request_id]

    async def send_callback(self, request_id: str, url: str | None = None) -> httpx.Response:
        """The GET ClubKonnect sends to an order's CallBackURL (unsigned), about its current state."""
        order = self.orders[request_id]
        target = url or order.params.get("CallBackURL", "")
        state = order.body(query=True)
        params = {"orderdate": state["orderdate"], "orderid": order.orderid,
                  "statuscode": state["statuscode"], "orderstatus": state["status"],
                  "orderremark": "simulated callback"}  # fmt: skip
        async with httpx.AsyncClient() as client:
            return await client.get(target, params=params)

    # -- ASGI ---------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        script = scope["path"].strip("/").split("/")[-1]
        query = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
        self.requests.append(Recorded(script, query))
        number = query.get("MobileNumber") or query.get("MeterNo") or query.get("SmartCardNo") or ""
        where = "order" if script in ORDER_SCRIPTS else "query" if script == "APIQueryV1.asp" else "other"
        if where == "query" and query.get("RequestID") in self.orders:
            order = self.orders[query["RequestID"]]
            number = order.params.get("MobileNumber") or order.params.get("MeterNo") or ""
            number = number or order.params.get("SmartCardNo", "")
        behaviour = self.by_number.get(number, self.default)
        faulty = where in behaviour.on
        if faulty and behaviour.latency:
            await asyncio.sleep(behaviour.latency)
        if scope["method"] != "GET":
            return await self._send(send, 405, b"<html>405</html>", "text/html")
        if query.get("UserID") != self.user_id or query.get("APIKey") != self.api_key:
            return await self._json(send, {"statuscode": "400", "status": "INVALID_CREDENTIALS"})
        placed = not faulty or behaviour.process or not (behaviour.http_status or behaviour.hang)
        answer = self._route(script, query, behaviour, placed=placed)
        if faulty and behaviour.hang and not await self._client_stays(receive, behaviour.hang):
            return
        if faulty and behaviour.http_status:
            page = b"<html><head><title>500 - Internal server error.</title></head><body>IIS</body></html>"
            return await self._send(send, behaviour.http_status, page, "text/html")
        await self._json(send, answer)

    def _route(self, script: str, query: dict[str, str], behaviour: Behaviour, *, placed: bool) -> Any:
        if script in ORDER_SCRIPTS:
            return self._order(script, query, behaviour, placed=placed)
        if script == "APIQueryV1.asp":
            order = self.orders.get(query.get("RequestID", ""))
            return order.body(query=True) if order else {"status": "INVALID_REQUESTID"}
        if script == "APIDatabundlePlansV2.asp":
            return {"MOBILE_NETWORK": {
                NETWORK_KEYS[net]: [{"ID": net, "PRODUCT": [
                    {"PRODUCT_CODE": "1", "PRODUCT_ID": pid, "PRODUCT_NAME": name,
                     "PRODUCT_AMOUNT": f"{naira}.00"}
                    for pid, name, naira in plans]}]
                for net, plans in DATA_PLANS.items()}}  # fmt: skip
        if script == "APICableTVPackagesV2.asp":
            return {"TV_ID": {
                tv.upper(): [{"ID": tv, "PRODUCT": [
                    {"PACKAGE_ID": pid, "PACKAGE_NAME": name, "PACKAGE_AMOUNT": str(naira)}
                    for pid, name, naira in packages]}]
                for tv, packages in TV_PACKAGES.items()}}  # fmt: skip
        if script == "APIVerifyElectricityV1.asp":
            known = query.get("MeterNo") in (PREPAID_METER, POSTPAID_METER)
            return {"customer_name": "TESTMETER CK" if known else "INVALID_METERNO"}
        if script == "APIVerifyCableTVV1.asp":
            known = query.get("SmartCardNo") == SMARTCARD
            return {"customer_name": "CK TEST VIEWER" if known else "INVALID_SMARTCARDNO"}
        if script == "APIWalletBalanceV1.asp":
            return {"date": datetime.now(UTC).isoformat(), "id": self.user_id, "balance": self.balance_naira}
        return {"status": "INVALID_SCRIPT"}

    def _order(self, script: str, query: dict[str, str], behaviour: Behaviour, *, placed: bool) -> Any:
        request_id = query.get("RequestID", "")
        if not request_id:
            return {"statuscode": "400", "status": "MISSING_REQUESTID"}
        if request_id in self.orders:
            self.duplicates += 1  # a second order for one RequestID: our adapter must never send it
            return self.orders[request_id].body(query=False)
        if behaviour.order_code:
            code = behaviour.order_code
            return {"statuscode": code, "status": STATUS_TEXT.get(code, "ORDER_ERROR")}
        if script == "APIDatabundleV1.asp":
            plans = {pid for pid, _, _ in DATA_PLANS.get(query.get("MobileNetwork", ""), ())}
            if query.get("DataPlan") not in plans:
                return {"statuscode": "400", "status": "INVALID_DATAPLAN"}
        order = Order(request_id, str(next(self._ids)), script, dict(query), behaviour)
        if placed:
            self.orders[request_id] = order
        return order.body(query=False)

    @staticmethod
    async def _client_stays(receive: Any, seconds: float) -> bool:
        async def hang_up() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        waiter = asyncio.ensure_future(hang_up())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=seconds)
            return not done
        finally:
            waiter.cancel()

    async def _json(self, send: Any, body: Any) -> None:
        await self._send(send, 200, json.dumps(body).encode(), "text/html; charset=utf-8")  # as IIS labels it

    @staticmethod
    async def _send(send: Any, status: int, body: bytes, content_type: str) -> None:
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
