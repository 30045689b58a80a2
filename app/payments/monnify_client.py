"""Async Monnify API client: cached bearer token, bounded retries, typed errors.

One instance per process is enough; it is safe to share between concurrent tasks on one event loop.
Nothing here logs the secret key, the Basic credentials or an access token.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from app.config.settings import Settings
from app.payments.events import parse_monnify_datetime
from app.payments.money import AmountError, naira_to_kobo

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=15.0, pool=5.0)
LOGIN_PATH = "/api/v1/auth/login"
RESERVED_ACCOUNTS_PATH = "/api/v2/bank-transfer/reserved-accounts"
TRANSACTIONS_PATH = "/api/v2/transactions"
KYC_INFO_PATH = "/api/v1/bank-transfer/reserved-accounts/{reference}/kyc-info"
PAID_STATUSES = frozenset({"PAID", "OVERPAID"})


class MonnifyError(Exception):
    """Base class for every Monnify failure."""


class MonnifyUnavailable(MonnifyError):
    """Monnify did not answer usefully (5xx, timeout, connection error) after all retries."""


class MonnifyAuthError(MonnifyError):
    """Credentials missing or rejected, or a fresh token was refused."""


class MonnifyRequestError(MonnifyError):
    """Monnify understood and refused the request (4xx, or requestSuccessful=false)."""

    def __init__(self, status: int, response_code: str | None, message: str) -> None:
        super().__init__(f"Monnify refused the request (HTTP {status}, code {response_code}): {message}")
        self.status = status
        self.response_code = response_code
        self.message = message


@dataclass(frozen=True, slots=True)
class BankAccount:
    bank_code: str
    bank_name: str
    account_number: str


@dataclass(frozen=True, slots=True)
class ReservedAccount:
    account_reference: str
    account_name: str
    reservation_reference: str | None
    status: str | None
    accounts: list[BankAccount]


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    transaction_reference: str
    payment_reference: str | None
    payment_status: str
    amount_paid_kobo: int
    settlement_amount_kobo: int | None
    paid_on: datetime | None  # aware; Monnify's local Lagos time when it gives no offset
    product_reference: str | None
    raw: dict[str, Any]

    @property
    def is_paid(self) -> bool:
        return self.payment_status in PAID_STATUSES


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    renew_at: float  # clock() reading after which the token is renewed before use


def renew_margin(expires_in: float) -> float:
    """Seconds before expiry at which to renew: 60 s or 10 % of the lifetime, whichever is larger.

    Capped at half the lifetime so a short-lived token is still used rather than renewed on every call.
    """
    return min(max(60.0, expires_in * 0.10), expires_in / 2)


class MonnifyClient:
    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        base = settings.monnify_base_url.rstrip("/")
        self._base_url = base.removesuffix("/api")  # tolerate a base URL given with /api
        self._api_key = settings.monnify_api_key
        self._secret_key = settings.monnify_secret_key
        self._contract_code = settings.monnify_contract_code
        self._owns_client = client is None
        self._http = client or httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._clock = clock
        self._sleep = sleep
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self._login_failures = 0
        self._last_login_error: MonnifyError | None = None

    def __repr__(self) -> str:  # never show credentials
        return f"MonnifyClient(base_url={self._base_url!r})"

    async def __aenter__(self) -> MonnifyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    # ---- public operations -------------------------------------------------------------------------

    async def create_reserved_account(
        self,
        account_reference: str,
        account_name: str,
        customer_email: str,
        customer_name: str,
        bvn: str | None = None,
        nin: str | None = None,
        preferred_banks: Sequence[str] | None = None,
    ) -> ReservedAccount:
        """Reserve accounts for a customer; idempotent on `account_reference` (returns an existing one)."""
        payload: dict[str, Any] = {
            "accountReference": account_reference,
            "accountName": account_name,
            "currencyCode": "NGN",
            "contractCode": self._contract_code,
            "customerEmail": customer_email,
            "customerName": customer_name,
            "getAllAvailableBanks": not preferred_banks,
        }
        if preferred_banks:
            payload["preferredBanks"] = list(preferred_banks)
        if bvn:
            payload["bvn"] = bvn
        if nin:
            payload["nin"] = nin
        try:
            body = await self._call("POST", RESERVED_ACCOUNTS_PATH, json=payload)
        except MonnifyRequestError as exc:
            # A retried create (or a second job run) finds the reference taken: that account is ours.
            if not _is_duplicate_reference(exc):
                raise
            existing = await self.get_reserved_account(account_reference)
            if existing is None:
                raise
            log.info("monnify: reserved account %s already existed", account_reference)
            return existing
        return _reserved_account(body)

    async def update_kyc_info(
        self, account_reference: str, *, bvn: str | None = None, nin: str | None = None
    ) -> dict[str, Any]:
        """Attach a BVN and/or NIN to an existing reserved account (`PUT .../{ref}/kyc-info`; CBN rule: a
        funded account without either is restricted). Returns Monnify's responseBody; raises MonnifyError."""
        if not bvn and not nin:
            raise ValueError("give a bvn or a nin")
        payload = {name: value for name, value in (("bvn", bvn), ("nin", nin)) if value}
        path = KYC_INFO_PATH.format(reference=quote(account_reference, safe=""))
        return await self._call("PUT", path, json=payload)

    async def get_reserved_account(self, account_reference: str) -> ReservedAccount | None:
        path = f"{RESERVED_ACCOUNTS_PATH}/{quote(account_reference, safe='')}"
        try:
            body = await self._call("GET", path)
        except MonnifyRequestError as exc:
            if _is_not_found(exc):
                return None
            raise
        return _reserved_account(body)

    async def get_transaction_status(self, transaction_reference: str) -> TransactionStatus:
        # References look like MNFY|04|20211117112842|000170: the pipes must be percent-encoded.
        path = f"{TRANSACTIONS_PATH}/{quote(transaction_reference, safe='')}"
        body = await self._call("GET", path)
        return _transaction_status(body, transaction_reference)

    # ---- token ------------------------------------------------------------------------------------

    async def _access_token(self) -> str:
        token = self._token
        if token is not None and self._clock() < token.renew_at:
            return token.value
        failures_seen = self._login_failures
        async with self._lock:
            token = self._token
            if token is not None and self._clock() < token.renew_at:
                return token.value  # another task renewed it while we waited
            if self._login_failures != failures_seen and self._last_login_error is not None:
                raise self._last_login_error  # a login failed while we waited: share it, don't stampede
            try:
                token = await self._login()
            except MonnifyError as exc:
                self._login_failures += 1
                self._last_login_error = exc
                raise
            self._token = token
            return token.value

    async def _login(self) -> _Token:
        if not self._api_key or not self._secret_key:
            raise MonnifyAuthError("MONNIFY_API_KEY and MONNIFY_SECRET_KEY must be set")
        basic = base64.b64encode(f"{self._api_key}:{self._secret_key}".encode()).decode("ascii")
        started = self._clock()  # count the lifetime from before the request: conservative
        response = await self._send("POST", LOGIN_PATH, {"Authorization": f"Basic {basic}"})
        try:
            body = _envelope(response)
        except MonnifyError as exc:
            raise MonnifyAuthError(f"Monnify login failed (HTTP {response.status_code})") from exc
        access_token = body.get("accessToken")
        expires_in = body.get("expiresIn")
        if not isinstance(access_token, str) or not access_token:
            raise MonnifyAuthError("Monnify login answered without an access token")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
            raise MonnifyAuthError("Monnify login answered without a usable expiresIn")
        log.info("monnify: obtained access token valid for %s s", expires_in)
        return _Token(access_token, started + expires_in - renew_margin(float(expires_in)))

    def _invalidate(self, used: str) -> None:
        # Only drop the token the failed call used; a concurrent task may already hold a newer one.
        if self._token is not None and self._token.value == used:
            self._token = None

    # ---- transport --------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, json: Any = None) -> dict[str, Any]:
        """A bearer-authenticated call; a 401 drops the token and retries once with a new one."""
        token = await self._access_token()
        response = await self._send(method, path, {"Authorization": f"Bearer {token}"}, json)
        if response.status_code == 401:
            log.info("monnify: access token refused on %s %s, logging in again", method, path)
            self._invalidate(token)
            token = await self._access_token()
            response = await self._send(method, path, {"Authorization": f"Bearer {token}"}, json)
            if response.status_code == 401:
                raise MonnifyAuthError(f"Monnify refused a fresh access token on {method} {path}")
        return _envelope(response)

    async def _send(
        self, method: str, path: str, headers: dict[str, str], json: Any = None
    ) -> httpx.Response:
        """Send with retries on 5xx / network errors only; 4xx answers are returned at once."""
        url = self._base_url + path
        problem = ""
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await self._http.request(
                    method, url, headers=headers, json=json, timeout=self._timeout
                )
            except httpx.TransportError as exc:  # connect/read timeouts, refused, reset, protocol errors
                problem = type(exc).__name__
            else:
                if response.status_code < 500:
                    return response
                problem = f"HTTP {response.status_code}"
            if attempt < self._max_attempts:
                delay = self._backoff(attempt)
                log.warning(
                    "monnify: %s %s failed (%s), attempt %d/%d, retrying in %.2f s",
                    method, path, problem, attempt, self._max_attempts, delay,
                )  # fmt: skip
                await self._sleep(delay)
        log.error("monnify: %s %s failed (%s) after %d attempts", method, path, problem, self._max_attempts)
        raise MonnifyUnavailable(f"Monnify unavailable on {method} {path}: {problem}")

    def _backoff(self, attempt: int) -> float:
        delay = min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)  # jitter spreads retries from many workers


# ---- response parsing ------------------------------------------------------------------------------


def _envelope(response: httpx.Response) -> dict[str, Any]:
    """Unwrap {requestSuccessful, responseMessage, responseCode, responseBody} or raise a typed error."""
    try:
        data = response.json()
    except ValueError:
        data = None
    envelope = data if isinstance(data, dict) else {}
    code = envelope.get("responseCode")
    message = envelope.get("responseMessage") or envelope.get("error_description") or envelope.get("error")
    code_text = str(code) if code is not None else None
    if response.status_code >= 400:
        raise MonnifyRequestError(response.status_code, code_text, str(message or response.reason_phrase))
    if data is None or not isinstance(data, dict):
        raise MonnifyError(f"Monnify answered HTTP {response.status_code} with an unexpected body")
    if envelope.get("requestSuccessful") is False:
        raise MonnifyRequestError(response.status_code, code_text, str(message or "request not successful"))
    body = envelope.get("responseBody")
    if not isinstance(body, dict):
        raise MonnifyError("Monnify answered without a responseBody object")
    return body


def _is_duplicate_reference(exc: MonnifyRequestError) -> bool:
    return exc.status == 422 or exc.response_code == "R42" or "same reference" in exc.message.lower()


def _is_not_found(exc: MonnifyRequestError) -> bool:
    message = exc.message.lower()
    return exc.status == 404 or "not found" in message or "cannot find" in message


def _str(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _reserved_account(body: dict[str, Any]) -> ReservedAccount:
    reference = _str(body.get("accountReference"))
    if reference is None:
        raise MonnifyError("reserved account answer lacks accountReference")
    raw_accounts = body.get("accounts")
    if not isinstance(raw_accounts, list):  # V1 shape: one account at the top level
        raw_accounts = [body] if body.get("accountNumber") else []
    accounts = [
        BankAccount(
            bank_code=_str(item.get("bankCode")) or "",
            bank_name=_str(item.get("bankName")) or "",
            account_number=number,
        )
        for item in raw_accounts
        if isinstance(item, dict) and (number := _str(item.get("accountNumber")))
    ]
    return ReservedAccount(
        account_reference=reference,
        account_name=_str(body.get("accountName")) or "",
        reservation_reference=_str(body.get("reservationReference")),
        status=_str(body.get("status")),
        accounts=accounts,
    )


def _transaction_status(body: dict[str, Any], asked_reference: str) -> TransactionStatus:
    status = _str(body.get("paymentStatus"))
    if status is None:
        raise MonnifyError("transaction status answer lacks paymentStatus")
    status = status.upper()
    amount = body.get("amountPaid")
    try:
        paid_kobo = naira_to_kobo(amount) if amount not in (None, "") else None
        settlement = body.get("settlementAmount")
        settlement_kobo = naira_to_kobo(settlement) if settlement not in (None, "") else None
    except AmountError as exc:
        raise MonnifyError(f"transaction status answer has an invalid amount: {exc}") from exc
    if paid_kobo is None:
        if status in PAID_STATUSES:  # a paid transaction without an amount cannot be trusted
            raise MonnifyError("transaction status answer lacks amountPaid")
        paid_kobo = 0
    product = body.get("product")
    product_reference = _str(product.get("reference")) if isinstance(product, dict) else None
    return TransactionStatus(
        transaction_reference=_str(body.get("transactionReference")) or asked_reference,
        payment_reference=_str(body.get("paymentReference")),
        payment_status=status,
        amount_paid_kobo=paid_kobo,
        settlement_amount_kobo=settlement_kobo,
        paid_on=parse_monnify_datetime(body.get("paidOn")),
        product_reference=product_reference,
        raw=body,
    )
