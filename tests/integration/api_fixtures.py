"""Shared pieces for the reseller API tests: the real app served over a real socket (its own thread, event
loop and lifespan), funded users with API keys, and a way to change the API limits for one test."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from app.accounts.apikeys import ApiKeyService, NewApiKey
from app.accounts.models import User
from app.vtu.models import Purchase
from tests.fakes.server import ThreadedServer, serve
from tests.integration.purchase_fixtures import new_buyer

# API_KEY_TIERS allowing customers too (the default is resellers only)
ALL_TIERS = ("customer", "reseller")
DELIVERED = "08011111111"  # the stub provider delivers to this number
FAILING = "08031234567"  # ... and fails (code 016, refunded) for any other number


@dataclass
class ApiServer:
    server: ThreadedServer
    app: Any
    settings: Any

    @property
    def url(self) -> str:
        return self.server.url

    @contextlib.contextmanager
    def limits(self, **changes: Any) -> Iterator[None]:
        """Run with other settings (e.g. api_rate_limit_per_minute=5) on the served app."""
        before = self.app.state.settings
        self.app.state.settings = dataclasses.replace(before, **changes)
        try:
            yield
        finally:
            self.app.state.settings = before


@pytest.fixture(scope="module")
def api_server(settings: Any) -> Iterator[ApiServer]:
    from app.asgi import create_app

    app = create_app(settings)
    with serve(app) as server:
        yield ApiServer(server, app, settings)


@pytest.fixture
def api(api_server: ApiServer, clean_db: None) -> Iterator[ApiServer]:
    """The served app on a clean database, rate limit off unless a test turns it on."""
    with api_server.limits(api_rate_limit_per_minute=0, api_daily_spend_limit_kobo=0):
        yield api_server


@pytest_asyncio.fixture(loop_scope="session")
async def http(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
        yield client


@dataclass
class Reseller:
    user_id: uuid.UUID
    key: str
    key_id: uuid.UUID
    callback_secret: str
    tier: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def buy_headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        return {**self.headers, "Idempotency-Key": idempotency_key or str(uuid.uuid4())}


async def new_key(sessionmaker: Any, user_id: uuid.UUID, **options: str) -> NewApiKey:
    async with sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        created = await ApiKeyService(session).create(user, **options)
        await session.commit()
        return created


async def new_reseller(
    sessionmaker: Any, *, fund: int = 1_000_000, tier: str = "reseller", **options: str
) -> Reseller:
    buyer = await new_buyer(sessionmaker, fund=fund, tier=tier)
    created = await new_key(sessionmaker, buyer.id, **options)
    return Reseller(buyer.id, created.secret, created.key.id, created.callback_secret, tier)


async def purchase_count(sessionmaker: Any, user_id: uuid.UUID) -> int:
    async with sessionmaker() as session:
        stmt = select(func.count()).select_from(Purchase).where(Purchase.user_id == user_id)
        return int((await session.execute(stmt)).scalar_one())


def airtime(phone: str = DELIVERED, amount_kobo: Any = 10_000, **extra: Any) -> dict[str, Any]:
    return {"service_id": "mtn", "phone": phone, "amount_kobo": amount_kobo, **extra}
