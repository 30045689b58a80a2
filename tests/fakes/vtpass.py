"""A VTpass simulator: a plain ASGI app following VTpass's documented API, served with tests/fakes/server.py.

Knobs (`configure(phone=None, **Behaviour fields)`; phone=None sets the default for ordinary numbers):
latency, pending-then-delivered/failed, delivered-then-reversed, forced codes (014, 085, 018, ...),
HTTP 5xx, malformed JSON, hanging past the client timeout, and exam PINs only on requery
(`pins_on_requery`). Every request is recorded in `requests`.
`duplicate_window` (seconds, 0 = off; VTpass itself uses 30): a /pay for the same serviceID and number
(billersCode, else phone) as an order placed less than that long ago answers 019 LIKELY DUPLICATE and
places nothing. The sandbox numbers behave as documented unless reconfigured: 201000000000 pending then
delivered, 500000000000 malformed (stays pending), 400000000000 HTTP 503 and never processed,
300000000000 hangs 60 s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx

from app.vtu.providers.base import PurchaseOrder
from app.vtu.providers.mapping import to_kobo
from app.vtu.providers.request_ids import request_id_time
from app.vtu.providers.stub import (
    ALL_PLANS,
    NO_RESPONSE_PHONE,
    PENDING_PHONE,
    TIMEOUT_PHONE,
    UNEXPECTED_PHONE,
    normalise_phone,
    sandbox_failure_code,
    stub_token,
    transaction_body,
    variations_body,
    verify_body,
)

DESCRIPTIONS = {
    "014": "REQUEST ID ALREADY EXIST", "015": "INVALID REQUEST ID", "016": "TRANSACTION FAILED",
    "018": "LOW WALLET BALANCE", "027": "IP NOT WHITELISTED", "085": "IMPROPER REQUEST ID",
    "087": "INVALID CREDENTIALS", "099": "TRANSACTION IS PROCESSING", "040": "TRANSACTION REVERSAL",
    "019": "LIKELY DUPLICATE TRANSACTION",
}  # fmt: skip


@dataclass(frozen=True)
class Behaviour:
    latency: float = 0.0  # seconds before answering
    outcome: str | None = None  # final status "delivered" | "failed" | "pending"; None: sandbox rules
    pending_answers: int = 0  # answers (the /pay one included) that say pending before the final one
    pending_code: str = "000"  # how pending is said: "000" + status pending, or "099"
    reverse: bool = False  # after the delivered answer, requery answers 040 / reversed
    pay_code: str | None = None  # /pay answers this code and records nothing (e.g. "018", "014", "085")
    http_status: int | None = None  # answer with this status and an HTML body
    malformed: bool = False  # answer truncated JSON
    hang: float = 0.0  # sleep this long before answering (longer than the client's timeout)
    process: bool = True  # with a fault above: was the order still placed?
    on: tuple[str, ...] = ("pay",)  # endpoints the faults apply to: pay, requery, ...
    pins_on_requery: bool = False  # exam PINs: /pay answers delivered WITHOUT the PINs; requery has them


SANDBOX = {
    PENDING_PHONE: Behaviour(pending_answers=1, outcome="delivered"),
    UNEXPECTED_PHONE: Behaviour(malformed=True, outcome="pending"),
    NO_RESPONSE_PHONE: Behaviour(http_status=503, process=False),
    TIMEOUT_PHONE: Behaviour(hang=60.0, outcome="delivered"),
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)


@dataclass
class Txn:
    order: PurchaseOrder
    final: str
    behaviour: Behaviour
    answers: int = 0
    reversed: bool = False

    def body(self, advance: bool = True) -> dict[str, Any]:
        self.answers += int(advance)
        b = self.behaviour
        if self.reversed or (
            b.reverse and self.final == "delivered" and self.answers > b.pending_answers + 1
        ):
            self.reversed = True
            return transaction_body(self.order, "reversed", "040")
        if self.answers <= b.pending_answers or self.final == "pending":
            return transaction_body(self.order, "pending", b.pending_code)
        late_pins = b.pins_on_requery and self.answers <= b.pending_answers + 1
        return transaction_body(
            self.order, self.final, "000" if self.final == "delivered" else "016", with_pins=not late_pins
        )


class VTPassSimulator:
    def __init__(
        self, *, api_key: str = "sim-api-key-3f9a", public_key: str = "PK_sim_public_77c1",
        secret_key: str = "SK_sim_secret_e20b", username: str = "sandbox@vtu.test",
        password: str = "sim-password-5d2e", request_id_tolerance: timedelta = timedelta(minutes=10),
    ) -> None:  # fmt: skip
        self.api_key, self.public_key, self.secret_key = api_key, public_key, secret_key
        self.basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.tolerance = request_id_tolerance
        self.reset()

    def reset(self) -> None:
        self.requests: list[Recorded] = []
        self.transactions: dict[str, Txn] = {}
        self.default = Behaviour()
        self.by_phone: dict[str, Behaviour] = dict(SANDBOX)
        self.variations_key = "variations"  # or "varations", VTpass's other spelling
        self.token_layout = "purchased_code"  # or "token" (newer) / "main_token" (older answers)
        self.balance_naira = "250000.50"
        self.echo_headers = False  # reflect received headers in answers (tests secret redaction)
        self.duplicate_window = 0.0  # seconds; 019 for the same service + number inside it (0: off)
        self._last_order: dict[tuple[str, str], float] = {}
        self.duplicates_refused = 0  # /pay answers 019 given

    def configure(self, phone: str | None = None, **knobs: Any) -> None:
        if phone is None:
            self.default = Behaviour(**knobs)
        else:
            self.by_phone[normalise_phone(phone)] = Behaviour(**knobs)

    def behaviour_for(self, phone: str) -> Behaviour:
        return self.by_phone.get(normalise_phone(phone), self.default)

    def pay_requests(self, request_id: str | None = None) -> list[Recorded]:
        pays = [r for r in self.requests if r.path == "/api/pay" and isinstance(r.body, dict)]
        return [r for r in pays if request_id is None or r.body.get("request_id") == request_id]

    def delivered_to(self, phone: str) -> list[str]:
        """Request ids of the orders for `phone` that are (or will end) delivered and not reversed."""
        wanted = normalise_phone(phone)
        return [
            rid
            for rid, t in self.transactions.items()
            if normalise_phone(t.order.phone) == wanted and t.final == "delivered" and not t.reversed
        ]

    def reverse(self, request_id: str) -> None:
        self.transactions[request_id].reversed = True

    async def send_callback(
        self, url: str, request_id: str, *, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """POST a `transaction-update` callback (requery-shaped data) about one transaction to `url`."""
        payload = {
            "type": "transaction-update",
            "data": self._layout(self.transactions[request_id].body(False)),
        }
        if client is not None:
            return await client.post(url, json=payload)
        async with httpx.AsyncClient() as own:
            return await own.post(url, json=payload)

    # -- ASGI ---------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        method, path = scope["method"], scope["path"].rstrip("/")
        self.requests.append(Recorded(method, path, query, headers, body))
        data = body if isinstance(body, dict) else {}
        phone = str(data.get("phone", ""))
        if path == "/api/requery" and data.get("request_id") in self.transactions:
            phone = self.transactions[data["request_id"]].order.phone
        behaviour = self.behaviour_for(phone)
        endpoint = path.removeprefix("/api/")
        faulty = endpoint in behaviour.on
        if faulty and behaviour.latency:
            await asyncio.sleep(behaviour.latency)
        answer = self._route(method, endpoint, headers, data, query, behaviour if faulty else None)
        if faulty and behaviour.hang and not await self._client_stays(receive, behaviour.hang):
            return  # the client gave up; the order (if processed) stays recorded for requery
        echo = json.dumps(headers) if self.echo_headers else ""
        if echo:
            answer |= {"echo": {"headers": headers, "text": echo}}
        if faulty and behaviour.http_status:
            page = f"<html><h1>Bad Gateway</h1>{echo}</html>".encode()
            return await self._send(send, behaviour.http_status, page, "text/html")
        if faulty and behaviour.malformed:
            broken = '{"code":"000","echo":' + json.dumps(echo) + ',"content":{"transactions":'
            return await self._send(send, 200, broken.encode(), "application/json")
        await self._send(send, 200, json.dumps(answer).encode(), "application/json")

    def _route(
        self, method: str, endpoint: str, headers: dict[str, str], data: dict[str, Any],
        query: dict[str, str], fault: Behaviour | None,
    ) -> dict[str, Any]:  # fmt: skip
        if not self._authorised(method, headers):
            return self._code("087")
        if endpoint == "pay" and method == "POST":
            return self._pay(data, self.behaviour_for(str(data.get("phone", ""))), fault)
        if endpoint == "requery" and method == "POST":
            txn = self.transactions.get(str(data.get("request_id")))
            return self._layout(txn.body()) if txn else self._code("015")
        if endpoint == "service-variations":
            return variations_body(query.get("serviceID", ""), self.variations_key)
        if endpoint == "merchant-verify" and method == "POST":
            return verify_body(str(data.get("serviceID")), str(data.get("billersCode")), data.get("type"))
        if endpoint == "balance":
            return {"code": 1, "contents": {"balance": float(self.balance_naira)}}
        return {"code": "012", "response_description": "UNKNOWN ENDPOINT"}

    def _pay(self, data: dict[str, Any], behaviour: Behaviour, fault: Behaviour | None) -> dict[str, Any]:
        request_id = str(data.get("request_id", ""))
        stamped = request_id_time(request_id)
        if stamped is None or abs(datetime.now(UTC) - stamped) > self.tolerance:
            return self._code("085")
        if behaviour.pay_code:
            return self._code(behaviour.pay_code)
        if request_id in self.transactions:
            return self._code("014")
        order = self._order(data)
        number = (str(data.get("billersCode") or "") or normalise_phone(order.phone), order.service_id)
        last = self._last_order.get(number)
        if self.duplicate_window and last is not None and time.monotonic() - last < self.duplicate_window:
            self.duplicates_refused += 1
            return self._code("019")
        final = behaviour.outcome or ("failed" if sandbox_failure_code(order) else "delivered")
        txn = Txn(order, final, behaviour)
        if fault is None or fault.process or not (fault.hang or fault.http_status or fault.malformed):
            self.transactions[request_id] = txn
            self._last_order[number] = time.monotonic()
        return self._layout(txn.body())

    @staticmethod
    def _order(data: dict[str, Any]) -> PurchaseOrder:
        service_id, code = str(data.get("serviceID", "")), data.get("variation_code")
        plans = {c: naira for c, _, naira in ALL_PLANS.get(service_id, ())}
        amount = to_kobo(data.get("amount"))
        quantity = data.get("quantity")
        if amount is None:  # data / cable "change" / exam PINs: priced by the variation (x quantity)
            amount = plans.get(str(code), 0) * 100 * (quantity if isinstance(quantity, int) else 1)
        return PurchaseOrder(
            str(data.get("request_id")), service_id, amount, str(data.get("phone", "")),
            data.get("billersCode"), code, data.get("subscription_type"), quantity,
        )  # fmt: skip

    def _layout(self, body: dict[str, Any]) -> dict[str, Any]:
        """Rewrite an electricity answer into the newer (`token`) or older (`mainToken`) layout."""
        if not body.get("purchased_code") or self.token_layout == "purchased_code":
            return body
        token, units = stub_token(body["requestId"]), body.pop("units", "")
        if self.token_layout == "token":
            return body | {
                "purchased_code": "",
                "token": f"Token : {token}",
                "units": units,
                "tokenAmount": 1860.47,
            }
        return body | {
            "purchased_code": f"Token : {token} Bonus Token : 1111-2222-3333-4444-5555",
            "mainToken": token, "mainTokenUnits": float(units.split()[0]),
            "bonusToken": "1111-2222-3333-4444-5555",
        }  # fmt: skip

    def _authorised(self, method: str, headers: dict[str, str]) -> bool:
        if headers.get("authorization") == self.basic:
            return True
        second = ("public-key", self.public_key) if method == "GET" else ("secret-key", self.secret_key)
        return headers.get("api-key") == self.api_key and headers.get(second[0]) == second[1]

    @staticmethod
    def _code(code: str) -> dict[str, Any]:
        description = DESCRIPTIONS.get(code, "ERROR")
        return {"code": code, "response_description": description, "content": {"errors": description}}

    @staticmethod
    async def _client_stays(receive: Any, seconds: float) -> bool:
        """Sleep `seconds` unless the client hangs up first (True: it is still waiting)."""

        async def hang_up() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        waiter = asyncio.ensure_future(hang_up())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=seconds)
            return not done
        finally:
            waiter.cancel()

    @staticmethod
    async def _send(send: Any, status: int, body: bytes, content_type: str) -> None:
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
