"""A Monnify simulator: auth, V2 reserved accounts, transaction status and signed webhooks.

Serve `MonnifySimulator().app` over real HTTP (tests/fakes/server.py) and point MONNIFY_BASE_URL at it.
It shares no code with app.payments on purpose: signatures and amounts are computed independently, so a
bug in the client cannot hide behind the same bug here.

For `just dev`: `uvicorn --factory tests.fakes.monnify:create_dev_app` (credentials from MONNIFY_* env),
then `POST /sim/transfers {"account_reference" | "account_number", "amount_kobo", "webhook_url"?}`
simulates a customer's bank transfer (records it and sends the signed webhook).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import secrets
import string
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
from litestar import Litestar, Request, Response, get, post, put

LAGOS = timezone(timedelta(hours=1))
BANKS: dict[str, str] = {"035": "Wema bank", "50515": "Moniepoint Microfinance Bank", "232": "Sterling bank"}
SIGNATURE_HEADER = "monnify-signature"


@dataclass
class SimTransaction:
    transaction_reference: str
    payment_reference: str
    account_reference: str
    destination: dict[str, str]
    amount_paid_kobo: int
    fee_kobo: int
    payment_status: str
    paid_on: datetime
    customer: dict[str, str]
    sender: dict[str, str]
    description: str = "Wallet funding"

    @property
    def settlement_amount_kobo(self) -> int:
        return self.amount_paid_kobo - self.fee_kobo


@dataclass
class SentWebhook:
    transaction: SimTransaction
    body: bytes
    signature: str
    response: httpx.Response


@dataclass
class _Failure:
    remaining: int
    status: int
    path_prefix: str


def naira_text(kobo: int) -> str:
    return f"{kobo // 100}.{kobo % 100:02d}"


def naira_number(kobo: int) -> int | float:
    # Monnify sends amountPaid as a JSON number: 30000, or 1000.5 for kobo fractions.
    return kobo // 100 if kobo % 100 == 0 else float(Decimal(kobo) / 100)


def sign(body: bytes, secret_key: str) -> str:
    return hmac.new(secret_key.encode(), body, hashlib.sha512).hexdigest()


def _envelope(body: Any, status: int = 200, message: str = "success", code: str = "0") -> Response[Any]:
    content: dict[str, Any] = {
        "requestSuccessful": status < 400,
        "responseMessage": message,
        "responseCode": code,
    }
    if body is not None:
        content["responseBody"] = body
    return Response(content, status_code=status)


def _error(status: int, message: str, code: str = "99") -> Response[Any]:
    return _envelope(None, status, message, code)


def _kyc_problem(data: dict[str, Any], rejected: set[str]) -> str | None:
    """Monnify's checks of `bvn` / `nin`: 11 digits (a BVN starts with 22), and not a number it rejects."""
    for name in ("bvn", "nin"):
        value = data.get(name)
        if value is None:
            continue
        valid = isinstance(value, str) and len(value) == 11 and value.isascii() and value.isdigit()
        if not valid or (name == "bvn" and not value.startswith("22")):
            return f"Invalid {name.upper()}"
        if value in rejected:
            return f"{name.upper()} could not be validated"
    return None


class MonnifySimulator:
    """In-memory Monnify. Knobs: expires_in, fail_next(), delay(), expire_tokens(), set_transaction()."""

    def __init__(
        self,
        api_key: str = "MK_TEST_SIMULATOR01",
        secret_key: str = "SIMSECRETKEY0123456789ABCDEFGHJK",
        contract_code: str = "7059707855",
        *,
        expires_in: int = 3600,
        fee_percent: str = "1",
        fee_cap_kobo: int = 200_000,
        webhook_url: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.secret_key = secret_key
        self.contract_code = contract_code
        self.expires_in = expires_in
        self.fee_percent = Decimal(fee_percent)
        self.fee_cap_kobo = fee_cap_kobo
        self.webhook_url = webhook_url
        self.login_count = 0
        self.requests: list[tuple[str, str]] = []  # (method, raw path as sent, still percent-encoded)
        self.tokens: dict[str, float] = {}  # token -> time.monotonic() expiry
        self.issued_tokens: list[str] = []
        self.reserved: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, SimTransaction] = {}
        self.overrides: dict[str, dict[str, Any]] = {}
        self.last_transaction: SimTransaction | None = None
        # KYC (CBN rule): refuse to reserve accounts without a BVN or NIN when set; numbers Monnify rejects
        self.require_kyc = False
        self.rejected_numbers: set[str] = set()
        self.kyc_names: dict[str, str] = {}  # BVN/NIN -> the name registered with it (kyc-info renames)
        self._failures: list[_Failure] = []
        self._delays: dict[str, float] = {}
        self._numbers: set[str] = set()
        self._sequence = random.randint(100, 900_000)
        self._lock = threading.Lock()  # the server runs on another thread than the test
        self.app = self._build_app()

    # ---- knobs ------------------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500, path_prefix: str = "") -> None:
        """Answer the next `count` requests (under `path_prefix`) with `status`."""
        with self._lock:
            self._failures.append(_Failure(count, status, path_prefix))

    def delay(self, seconds: float, path_prefix: str = "") -> None:
        """Wait `seconds` before answering requests under `path_prefix` (0 removes the delay)."""
        self._delays[path_prefix] = seconds

    def expire_tokens(self) -> None:
        """Revoke every issued token, as if they had expired server-side."""
        self.tokens.clear()

    def set_transaction(
        self,
        transaction_reference: str,
        payment_status: str | None = None,
        amount_paid_kobo: int | None = None,
    ) -> None:
        """Override what the status endpoint reports (PAID/OVERPAID/PENDING/FAILED, amount mismatch)."""
        override = self.overrides.setdefault(transaction_reference, {})
        if payment_status is not None:
            override["payment_status"] = payment_status
        if amount_paid_kobo is not None:
            override["amount_paid_kobo"] = amount_paid_kobo

    def calls(self, path_prefix: str) -> int:
        return sum(1 for _, path in self.requests if path.startswith(path_prefix))

    def account_number_for(self, account_reference: str, index: int = 0) -> str:
        return str(self.reserved[account_reference]["accounts"][index]["accountNumber"])

    # ---- transfers and webhooks -------------------------------------------------------------------

    def record_transfer(
        self,
        account_reference: str | None,
        amount_kobo: int,
        *,
        account_number: str | None = None,
        payment_status: str = "PAID",
        sender_name: str = "ADAEZE OKAFOR",
        sender_bank_code: str = "058",
        transaction_reference: str | None = None,
    ) -> SimTransaction:
        account, destination = self._destination(account_reference, account_number)
        now = datetime.now(LAGOS)
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        reference = transaction_reference or (
            f"MNFY|{random.randint(10, 99)}|{now:%Y%m%d%H%M%S}|{sequence % 1_000_000:06d}"
        )
        fee = (Decimal(amount_kobo) * self.fee_percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        transaction = SimTransaction(
            transaction_reference=reference,
            payment_reference=reference,
            account_reference=account["accountReference"],
            destination=destination,
            amount_paid_kobo=amount_kobo,
            fee_kobo=min(int(fee), self.fee_cap_kobo, amount_kobo),
            payment_status=payment_status,
            paid_on=now,
            customer={"name": account["customerName"], "email": account["customerEmail"]},
            sender={
                "bankCode": sender_bank_code,
                "accountName": sender_name,
                "accountNumber": "".join(random.choices(string.digits, k=10)),
                "sessionId": "".join(random.choices(string.digits, k=30)),
            },
        )
        self.transactions[reference] = transaction
        self.last_transaction = transaction
        return transaction

    def webhook_payload(self, transaction: SimTransaction, sources: str = "list") -> dict[str, Any]:
        """SUCCESSFUL_TRANSACTION as Monnify sends it; `sources` is "list", "object" ({}) or "missing"."""
        paid = naira_number(transaction.amount_paid_kobo)
        data: dict[str, Any] = {
            "product": {"reference": transaction.account_reference, "type": "RESERVED_ACCOUNT"},
            "transactionReference": transaction.transaction_reference,
            "paymentReference": transaction.payment_reference,
            "paidOn": transaction.paid_on.strftime("%Y-%m-%d %H:%M:%S.")
            + f"{transaction.paid_on.microsecond // 1000:03d}",
            "paymentDescription": transaction.description,
            "metaData": {},
            "paymentSourceInformation": [{**transaction.sender, "amountPaid": paid}],
            "destinationAccountInformation": transaction.destination,
            "amountPaid": paid,
            "totalPayable": paid,
            "cardDetails": {},
            "paymentMethod": "ACCOUNT_TRANSFER",
            "currency": "NGN",
            "settlementAmount": naira_text(transaction.settlement_amount_kobo),
            "paymentStatus": transaction.payment_status,
            "customer": transaction.customer,
        }
        if sources == "object":
            data["paymentSourceInformation"] = {}
        elif sources == "missing":
            del data["paymentSourceInformation"]
        return {"eventType": "SUCCESSFUL_TRANSACTION", "eventData": data}

    def build_webhook(
        self, account_reference: str | None, amount_kobo: int, *, sources: str = "list", **transfer: Any
    ) -> tuple[bytes, str]:
        """Record a transfer and return (raw webhook body, monnify-signature) for a test to post itself."""
        transaction = self.record_transfer(account_reference, amount_kobo, **transfer)
        body = json.dumps(self.webhook_payload(transaction, sources), separators=(",", ":")).encode()
        return body, sign(body, self.secret_key)

    async def send_transfer(
        self,
        webhook_url: str,
        account_reference: str | None,
        amount_kobo: int,
        *,
        sources: str = "list",
        client: httpx.AsyncClient | None = None,
        **transfer: Any,
    ) -> SentWebhook:
        """Simulate a bank transfer into a reserved account: record it and POST the signed webhook."""
        body, signature = self.build_webhook(account_reference, amount_kobo, sources=sources, **transfer)
        assert self.last_transaction is not None
        headers = {"content-type": "application/json", SIGNATURE_HEADER: signature}
        if client is not None:
            response = await client.post(webhook_url, content=body, headers=headers)
        else:
            async with httpx.AsyncClient(timeout=30) as own:
                response = await own.post(webhook_url, content=body, headers=headers)
        return SentWebhook(self.last_transaction, body, signature, response)

    def _destination(
        self, account_reference: str | None, account_number: str | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        if account_number is not None:
            for account in self.reserved.values():
                for bank in account["accounts"]:
                    if bank["accountNumber"] == account_number:
                        return account, {k: bank[k] for k in ("bankCode", "bankName", "accountNumber")}
            raise ValueError(f"no reserved account has number {account_number}")
        if account_reference is None:
            raise ValueError("give account_reference or account_number")
        account = self.reserved.get(account_reference) or {
            # Unknown to the simulator (reserved elsewhere): still send a plausible transfer.
            "accountReference": account_reference,
            "customerName": "Test Customer",
            "customerEmail": "customer@example.com",
            "accounts": [{"bankCode": "035", "bankName": BANKS["035"], "accountNumber": self._new_number()}],
        }
        bank = account["accounts"][0]
        return account, {k: bank[k] for k in ("bankCode", "bankName", "accountNumber")}

    def _new_number(self) -> str:
        with self._lock:
            while True:
                number = str(random.randint(1_000_000_000, 9_999_999_999))
                if number not in self._numbers:
                    self._numbers.add(number)
                    return number

    # ---- HTTP -------------------------------------------------------------------------------------

    async def _before(self, request: Request[Any, Any, Any]) -> Response[Any] | None:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw_path.decode("latin-1")
        self.requests.append((request.method, path))
        wait = max((s for prefix, s in self._delays.items() if path.startswith(prefix)), default=0.0)
        if wait:
            await asyncio.sleep(wait)
        with self._lock:
            for failure in self._failures:
                if failure.remaining > 0 and path.startswith(failure.path_prefix):
                    failure.remaining -= 1
                    return _error(failure.status, "Internal server error")
        return None

    def _bearer_ok(self, request: Request[Any, Any, Any]) -> bool:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def _build_app(self) -> Litestar:
        sim = self

        def unauthorized() -> Response[Any]:
            return Response(
                {"error": "invalid_token", "error_description": "Access token expired"}, status_code=401
            )

        @post("/api/v1/auth/login", status_code=200)
        async def login(request: Request[Any, Any, Any]) -> Response[Any]:
            expected = base64.b64encode(f"{sim.api_key}:{sim.secret_key}".encode()).decode()
            if request.headers.get("authorization", "") != f"Basic {expected}":
                return _error(401, "Full authentication is required to access this resource")
            token = "eyJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(48)
            with sim._lock:
                sim.login_count += 1
                sim.tokens[token] = time.monotonic() + sim.expires_in
                sim.issued_tokens.append(token)
            return _envelope({"accessToken": token, "expiresIn": sim.expires_in})

        @post("/api/v2/bank-transfer/reserved-accounts", status_code=200)
        async def reserve(request: Request[Any, Any, Any]) -> Response[Any]:
            if not sim._bearer_ok(request):
                return unauthorized()
            data = await request.json()
            if not isinstance(data, dict):
                return _error(400, "Invalid request body")
            for name in ("accountReference", "accountName", "customerEmail", "customerName", "contractCode"):
                if not data.get(name):
                    return _error(400, f"{name} is required")
            if data["contractCode"] != sim.contract_code:
                return _error(400, "Invalid contract code")
            if data.get("currencyCode") != "NGN":
                return _error(400, "Invalid currency code")
            if problem := _kyc_problem(data, sim.rejected_numbers):
                return _error(400, problem)
            if sim.require_kyc and not (data.get("bvn") or data.get("nin")):
                return _error(400, "BVN or NIN is required to reserve an account", "99")
            reference = data["accountReference"]
            if reference in sim.reserved:
                return _error(422, "You can not reserve two accounts with the same reference", "R42")
            preferred = data.get("preferredBanks") or []
            codes = list(BANKS) if data.get("getAllAvailableBanks") or not preferred else preferred
            codes = [code for code in codes if code in BANKS]
            if not codes:
                return _error(400, "None of the preferred banks is available")
            now = datetime.now(LAGOS)
            account = {
                "contractCode": sim.contract_code,
                "accountReference": reference,
                "accountName": data["accountName"],
                "currencyCode": "NGN",
                "customerEmail": data["customerEmail"],
                "customerName": data["customerName"],
                "accounts": [
                    {
                        "bankCode": code,
                        "bankName": BANKS[code],
                        "accountNumber": sim._new_number(),
                        "accountName": data["accountName"],
                    }
                    for code in codes
                ],
                "collectionChannel": "RESERVED_ACCOUNT",
                "reservationReference": "".join(random.choices(string.ascii_uppercase + string.digits, k=20)),
                "reservedAccountType": "GENERAL",
                "status": "ACTIVE",
                "createdOn": f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d}",
                "incomeSplitConfig": [],
                "bvn": data.get("bvn"),
                "nin": data.get("nin"),
                "restrictPaymentSource": False,
            }
            sim.reserved[reference] = account
            return _envelope(account)

        @get("/api/v2/bank-transfer/reserved-accounts/{reference:str}")
        async def reserved(request: Request[Any, Any, Any], reference: str) -> Response[Any]:
            if not sim._bearer_ok(request):
                return unauthorized()
            account = sim.reserved.get(reference)
            if account is None:
                return _error(404, "Cannot find reserved account")
            return _envelope(account)

        @put("/api/v1/bank-transfer/reserved-accounts/{reference:str}/kyc-info", status_code=200)
        async def kyc_info(request: Request[Any, Any, Any], reference: str) -> Response[Any]:
            if not sim._bearer_ok(request):
                return unauthorized()
            data = await request.json()
            if not isinstance(data, dict):
                return _error(400, "Invalid request body")
            if not (data.get("bvn") or data.get("nin")):
                return _error(400, "bvn or nin is required")
            if problem := _kyc_problem(data, sim.rejected_numbers):
                return _error(400, problem)
            account = sim.reserved.get(reference)
            if account is None:
                return _error(404, "Cannot find reserved account")
            for name in ("bvn", "nin"):
                if data.get(name):
                    account[name] = data[name]
            # the name on the account becomes the name on the BVN/NIN (providers.md)
            account["accountName"] = sim.kyc_names.get(
                data.get("bvn") or data.get("nin"), account["accountName"]
            )
            return _envelope(
                {
                    "accountReference": reference,
                    "accountName": account["accountName"],
                    "customerEmail": account["customerEmail"],
                    "customerName": account["customerName"],
                    "bvn": account.get("bvn"),
                    "nin": account.get("nin"),
                }
            )

        @get("/api/v2/transactions/{reference:str}")
        async def transaction(request: Request[Any, Any, Any], reference: str) -> Response[Any]:
            if not sim._bearer_ok(request):
                return unauthorized()
            found = sim.transactions.get(reference)
            if found is None:
                return _error(404, "Could not find transaction with the specified transaction reference")
            override = sim.overrides.get(reference, {})
            paid = override.get("amount_paid_kobo", found.amount_paid_kobo)
            source = {**found.sender, "amountPaid": naira_text(paid)}
            return _envelope(
                {
                    "transactionReference": found.transaction_reference,
                    "paymentReference": found.payment_reference,
                    "amountPaid": naira_text(paid),
                    "totalPayable": naira_text(paid),
                    "settlementAmount": naira_text(max(paid - found.fee_kobo, 0)),
                    "paidOn": found.paid_on.strftime("%d/%m/%Y %I:%M:%S %p"),
                    "paymentStatus": override.get("payment_status", found.payment_status),
                    "paymentDescription": found.description,
                    "currency": "NGN",
                    "paymentMethod": "ACCOUNT_TRANSFER",
                    "product": {"type": "RESERVED_ACCOUNT", "reference": found.account_reference},
                    "cardDetails": None,
                    "accountDetails": source,
                    "accountPayments": [source],
                    "customer": found.customer,
                    "metaData": {},
                }
            )

        @post("/sim/transfers", status_code=200)
        async def simulate_transfer(request: Request[Any, Any, Any]) -> Response[Any]:
            # Dev convenience only (not a Monnify endpoint): trigger a transfer + webhook.
            data = await request.json()
            if not isinstance(data, dict):
                return Response({"error": "JSON object expected"}, status_code=400)
            url = data.get("webhook_url") or sim.webhook_url
            if not url:
                return Response({"error": "webhook_url is required"}, status_code=400)
            amount = data.get("amount_kobo")
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                return Response({"error": "amount_kobo must be a positive integer"}, status_code=400)
            try:
                sent = await sim.send_transfer(
                    url, data.get("account_reference"), amount, account_number=data.get("account_number")
                )
            except ValueError as exc:  # no such account
                return Response({"error": str(exc)}, status_code=400)
            return Response(
                {
                    "transactionReference": sent.transaction.transaction_reference,
                    "webhook_status": sent.response.status_code,
                }
            )

        return Litestar(
            route_handlers=[login, reserve, reserved, kyc_info, transaction, simulate_transfer],
            before_request=self._before,
            openapi_config=None,
            logging_config=None,
        )


def create_dev_app() -> Litestar:
    """Factory for `uvicorn --factory`: credentials from the same env vars the app reads."""
    env = os.environ.get
    simulator = MonnifySimulator(
        api_key=env("MONNIFY_API_KEY") or "MK_TEST_SIMULATOR01",
        secret_key=env("MONNIFY_SECRET_KEY") or "SIMSECRETKEY0123456789ABCDEFGHJK",
        contract_code=env("MONNIFY_CONTRACT_CODE") or "7059707855",
        webhook_url=env("MONNIFY_SIM_WEBHOOK_URL") or "http://127.0.0.1:8000/payments/webhooks/monnify/",
    )
    return simulator.app
