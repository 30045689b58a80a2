"""Both provider simulators behind one PurchaseService: the real VTpass and ClubKonnect adapters over real
HTTP, routed with VTU_PROVIDER_ORDER (app/vtu/routing.py), on real PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from app.config.settings import Settings
from app.vtu.config import VtuConfig
from app.vtu.providers import ClubKonnectProvider, VTPassProvider
from tests.fakes.clubkonnect import API_KEY, USER_ID, ClubKonnectSimulator
from tests.fakes.server import ThreadedServer, serve
from tests.fakes.vtpass import VTPassSimulator
from tests.integration.purchase_fixtures import Harness, make_service, provider_http_client, sim_settings

Servers = tuple[VTPassSimulator, ThreadedServer, ClubKonnectSimulator, ThreadedServer]


@pytest.fixture(scope="module")
def both_servers() -> Iterator[Servers]:
    vt, ck = VTPassSimulator(), ClubKonnectSimulator()
    with serve(vt) as vt_server, serve(ck) as ck_server:
        yield vt, vt_server, ck, ck_server


def two_provider_settings(
    settings: Settings, servers: Servers, *, schedule: tuple[int, ...] = (1, 1, 1), **extra: Any
) -> Settings:
    """`settings` pointed at both simulators (`extra`: more Settings fields, e.g. the breaker's)."""
    vt, vt_server, _, ck_server = servers
    both = sim_settings(
        settings,
        vt_server.url,
        vt,
        clubkonnect_base_url=ck_server.url,
        clubkonnect_user_id=USER_ID,
        clubkonnect_api_key=API_KEY,
        **extra,
    )
    return dataclasses.replace(both, requery_schedule_seconds=schedule)


def two_provider_adapters(settings: Settings, http: Any) -> dict[str, Any]:
    """The real VTpass and ClubKonnect adapters on one HTTP client (short /pay timeouts keep hangs short)."""
    return {
        "vtpass": VTPassProvider(settings, http_client=http, pay_read_timeout=1.0, read_timeout=5.0),
        "clubkonnect": ClubKonnectProvider(
            settings, http_client=http, pay_read_timeout=1.0, read_timeout=5.0
        ),
    }


def two_provider_harness(
    sessionmaker: Any,
    settings: Settings,
    servers: Servers,
    *,
    order: dict[str, tuple[str, ...]],
    schedule: tuple[int, ...] = (1, 1, 1),
    **config: Any,
) -> Harness:
    both = two_provider_settings(settings, servers, schedule=schedule)
    http = provider_http_client()
    return make_service(
        sessionmaker,
        both,
        config=VtuConfig(provider_order=order, **config),
        providers=two_provider_adapters(both, http),
        http=http,
    )


async def attempt_rows(sessionmaker: Any, purchase_id: uuid.UUID) -> list[Any]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT n, provider_slug, request_id, outcome, code, started_at FROM purchase_attempts"
                " WHERE purchase_id = :id ORDER BY n"
            ),
            {"id": purchase_id},
        )
        return list(rows)
