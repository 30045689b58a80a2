"""Shared pieces for purchase-engine tests: cheap funded buyers, services wired to the VTpass simulator over
real HTTP, a recording scheduler, and ledger assertions (balances + reconcile)."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select, text

from app.config.settings import Settings
from app.ledger.accounts import (
    MONNIFY_CLEARING,
    PURCHASES_IN_FLIGHT,
    REVENUE_COMMISSION,
    open_wallet,
    provider_float,
    system_account_id,
)
from app.ledger.models import LedgerTransaction
from app.ledger.posting import Leg, post_transaction
from app.ledger.queries import system_balances, wallet_balance
from app.ledger.reconcile import run_reconcile
from app.vtu.config import VtuConfig
from app.vtu.models import Purchase
from app.vtu.providers import VTPassProvider
from app.vtu.registry import ProviderRegistry
from app.vtu.runtime import provider_http_client
from app.vtu.scheduling import Scheduled
from app.vtu.service import PurchaseService
from tests.fakes.server import ThreadedServer, serve
from tests.fakes.vtpass import VTPassSimulator

_seq = itertools.count(1)
SHORT_SCHEDULE = (1, 1, 1)


@dataclass(frozen=True)
class Buyer:
    id: uuid.UUID
    tier: str = "customer"


async def new_buyer(sessionmaker: Any, *, fund: int = 0, tier: str = "customer") -> Buyer:
    """A bare user row + wallet (no argon2, no sign-up hooks), funded through the ledger posting API."""
    user_id = uuid.uuid4()
    n = next(_seq)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO users (id, email, full_name, password_hash, account_reference, referral_code,"
                " tier, created_at, updated_at)"
                " VALUES (:id, :email, '', 'x', :ref, :code, :tier, now(), now())"
            ),
            {"id": user_id, "email": f"buyer{n}-{user_id.hex[:6]}@example.ng", "ref": f"P{user_id.hex[:20]}",
             "code": f"P{user_id.hex[:12]}", "tier": tier},
        )  # fmt: skip
        await open_wallet(session, user_id)
    if fund:
        await fund_wallet(sessionmaker, user_id, fund)
    return Buyer(user_id, tier)


async def fund_wallet(sessionmaker: Any, user_id: uuid.UUID, kobo: int) -> None:
    """Credit a user's wallet through the ledger's posting API, as a Monnify transfer would."""
    async with sessionmaker() as session, session.begin():
        wallet = await open_wallet(session, user_id)
        clearing = await system_account_id(session, MONNIFY_CLEARING)
        legs = [Leg(clearing, -kobo), Leg(wallet, kobo)]
        await post_transaction(session, key=f"test:fund:{uuid.uuid4()}", kind="funding", legs=legs)


async def new_buyers(sessionmaker: Any, count: int, *, fund: int) -> list[Buyer]:
    return [await new_buyer(sessionmaker, fund=fund) for _ in range(count)]


class RecordingScheduler:
    """Stands in for SAQ where a test drives requeries itself: remembers what would have been enqueued."""

    def __init__(self) -> None:
        self.calls: list[tuple[uuid.UUID, int, datetime.datetime]] = []

    async def schedule(
        self, purchase_id: uuid.UUID, attempt: int, at: datetime.datetime, *, revive_stuck: bool = False
    ) -> Scheduled:
        self.calls.append((purchase_id, attempt, at))
        return "enqueued"


def sim_settings(settings: Settings, server_url: str, sim: VTPassSimulator, **over: Any) -> Settings:
    return dataclasses.replace(
        settings,
        vtu_provider="vtpass",
        vtpass_base_url=server_url,
        vtpass_api_key=sim.api_key,
        vtpass_public_key=sim.public_key,
        vtpass_secret_key=sim.secret_key,
        requery_schedule_seconds=SHORT_SCHEDULE,
        **over,
    )


def sim_env(server_url: str, sim: VTPassSimulator) -> dict[str, str]:
    """Environment for a subprocess (worker, CLI) that should talk to the simulator."""
    return {
        "VTU_PROVIDER": "vtpass",
        "VTPASS_BASE_URL": server_url,
        "VTPASS_API_KEY": sim.api_key,
        "VTPASS_PUBLIC_KEY": sim.public_key,
        "VTPASS_SECRET_KEY": sim.secret_key,
        "VTU_REQUERY_SCHEDULE_SECONDS": ",".join(map(str, SHORT_SCHEDULE)),
    }


@dataclass
class Harness:
    service: PurchaseService
    registry: ProviderRegistry
    scheduler: Any
    http: Any

    async def aclose(self) -> None:
        await self.registry.aclose()
        await self.http.aclose()


def make_service(
    sessionmaker: Any,
    settings: Settings,
    *,
    scheduler: Any = None,
    config: VtuConfig | None = None,
    providers: dict[str, Any] | None = None,
    http: Any = None,
) -> Harness:
    config = config or VtuConfig()
    http = http or provider_http_client()
    registry = ProviderRegistry(settings, config, http_client=http, providers=providers)
    scheduler = scheduler or RecordingScheduler()
    service = PurchaseService(
        sessionmaker=sessionmaker, settings=settings, config=config, providers=registry, scheduler=scheduler
    )
    return Harness(service, registry, scheduler, http)


def vtpass_harness(
    sessionmaker: Any, settings: Settings, server_url: str, sim: VTPassSimulator, **kw: Any
) -> Harness:
    """The real VTpass adapter over HTTP to the simulator (1 s /pay read timeout: "hangs" stay short)."""
    vt_settings = sim_settings(settings, server_url, sim)
    http = provider_http_client()
    adapter = VTPassProvider(vt_settings, http_client=http, pay_read_timeout=1.0, read_timeout=5.0)
    return make_service(sessionmaker, vt_settings, providers={"vtpass": adapter}, http=http, **kw)


@pytest.fixture(scope="module")
def sim_server() -> Iterator[tuple[VTPassSimulator, ThreadedServer]]:
    sim = VTPassSimulator()
    with serve(sim) as server:
        yield sim, server


@pytest.fixture
def sim(sim_server: tuple[VTPassSimulator, ThreadedServer]) -> VTPassSimulator:
    sim_server[0].reset()
    return sim_server[0]


@pytest_asyncio.fixture(loop_scope="session")
async def vt(
    db: Any, sessionmaker: Any, settings: Settings, sim_server: Any, sim: VTPassSimulator
) -> AsyncIterator[Harness]:
    """A PurchaseService selling through the real VTpass adapter to the simulator, on a clean database."""
    harness = vtpass_harness(sessionmaker, settings, sim_server[1].url, sim)
    try:
        yield harness
    finally:
        await harness.aclose()


# -- assertions -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Money:
    wallet: int
    in_flight: int
    float_: int
    revenue: int


async def money(sessionmaker: Any, user_id: uuid.UUID, slug: str = "vtpass") -> Money:
    async with sessionmaker() as session:
        systems = await system_balances(session)
        return Money(
            wallet=await wallet_balance(session, user_id),
            in_flight=systems.get(PURCHASES_IN_FLIGHT, 0),
            float_=systems.get(provider_float(slug), 0),
            revenue=systems.get(REVENUE_COMMISSION, 0),
        )


async def postings_for(sessionmaker: Any, purchase_id: uuid.UUID) -> list[str]:
    """Idempotency keys of the ledger transactions that reference this purchase, oldest first."""
    async with sessionmaker() as session:
        rows = await session.execute(
            select(LedgerTransaction.idempotency_key)
            .where(
                LedgerTransaction.reference_type == "purchase",
                LedgerTransaction.reference_id == str(purchase_id),
            )
            .order_by(LedgerTransaction.id)
        )
        return list(rows.scalars())


async def assert_reconciled(sessionmaker: Any) -> None:
    report = await run_reconcile(sessionmaker)
    assert report.ok, "\n".join(report.lines())


async def load(sessionmaker: Any, purchase_id: uuid.UUID) -> Purchase:
    async with sessionmaker() as session:
        purchase = await session.get(Purchase, purchase_id)
        assert purchase is not None
        return purchase


async def count_purchases(sessionmaker: Any) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(Purchase))).scalar_one())


async def age_pay_attempt(
    sessionmaker: Any, purchase_id: uuid.UUID, seconds: int, *, finished_seconds: int | None = None
) -> None:
    """Pretend /pay was sent `seconds` ago (VTpass's 30 s '015' rule; the sweep's overdue check): paid_at,
    next_requery_at and the pay exchange's `at` move back by `seconds`, its `finished_at` (when /pay's
    answer or error came back) by `finished_seconds` (default: the same)."""
    finished = seconds if finished_seconds is None else finished_seconds
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE purchases SET paid_at = paid_at - make_interval(secs => :s),"
                " next_requery_at = next_requery_at - make_interval(secs => :s),"
                " exchanges = (SELECT coalesce(jsonb_agg(CASE WHEN e->>'kind' = 'pay'"
                " THEN e || jsonb_build_object('at', (e->>'at')::timestamptz - make_interval(secs => :s))"
                " || CASE WHEN e->>'finished_at' IS NULL THEN '{}'::jsonb ELSE jsonb_build_object("
                "'finished_at', (e->>'finished_at')::timestamptz - make_interval(secs => :f)) END"
                " ELSE e END ORDER BY n), '[]')"
                " FROM jsonb_array_elements(exchanges) WITH ORDINALITY AS x(e, n)) WHERE id = :id"
            ),
            {"s": seconds, "f": finished, "id": purchase_id},
        )
