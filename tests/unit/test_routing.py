"""VTU_PROVIDER_ORDER parsing, the Router's candidate rules, and which provider answers may fail over
(`ProviderResult.nothing_placed`, docs/architecture.md, "Provider failover")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.vtu.config import VtuConfig, VtuConfigError, config_problems, load_vtu_config
from app.vtu.providers import Outcome
from app.vtu.providers.clubkonnect_mapping import map_body
from app.vtu.providers.mapping import FAILURE_CODES, map_vtpass_body
from app.vtu.routing import AlwaysUsable, Router, configured_order


def test_provider_order_is_parsed_per_service() -> None:
    config = load_vtu_config({"VTU_PROVIDER_ORDER": " mtn=vtpass, ClubKonnect ; mtn-data=vtpass;"})
    assert config.provider_order == {"mtn": ("vtpass", "clubkonnect"), "mtn-data": ("vtpass",)}
    assert load_vtu_config({}).provider_order == {}


@pytest.mark.parametrize(
    "raw",
    ["mtn", "mtn=", "=vtpass", "mtn=vtpass,,clubkonnect", "mtn=vtpass,vtpass", "mtn=vtpass,clubkonnect,"],
)
def test_a_malformed_provider_order_is_refused_by_name(raw: str) -> None:
    with pytest.raises(VtuConfigError, match="VTU_PROVIDER_ORDER"):
        load_vtu_config({"VTU_PROVIDER_ORDER": raw})
    assert any("VTU_PROVIDER_ORDER" in p for p in config_problems({"VTU_PROVIDER_ORDER": raw}))


def test_production_refuses_unknown_or_stub_providers_and_missing_clubkonnect_keys() -> None:
    env = {"VTU_PROVIDER_ORDER": "mtn=vtpass,acme;glo=stub;airtel=vtpass,clubkonnect"}
    problems = " | ".join(config_problems(env, is_prod=True))
    assert "VTU_PROVIDER_ORDER names unknown providers: mtn=acme" in problems
    assert "VTU_PROVIDER_ORDER routes glo to the stub provider" in problems
    assert "VTU_PROVIDER_ORDER routes airtel to ClubKonnect: set CLUBKONNECT_USER_ID" in problems


def test_configured_order_falls_back_to_the_single_provider_settings() -> None:
    config = VtuConfig(
        provider_by_service={"dstv": "stub"}, provider_order={"mtn": ("clubkonnect", "vtpass")}
    )
    assert configured_order(config, "vtpass", "mtn") == ("clubkonnect", "vtpass")
    assert configured_order(config, "vtpass", "dstv") == (
        "stub",
    )  # VTU_PROVIDER_BY_SERVICE: a 1-element order
    assert configured_order(config, "VTpass", "glo") == ("vtpass",)  # VTU_PROVIDER


class Health:
    def __init__(self, down: set[str], order: list[str] | None = None) -> None:
        self.down, self.staff_order = down, order
        self.asked: list[tuple[str, int]] = []

    async def order_for(self, service_id: str, executor: object = None) -> list[str] | None:
        return self.staff_order

    async def usable(self, slug: str, amount_kobo: int) -> bool:
        self.asked.append((slug, amount_kobo))
        return slug not in self.down


CONFIG = VtuConfig(provider_order={"mtn": ("vtpass", "clubkonnect", "stub")})


async def test_candidates_skip_unusable_providers_and_tried_ones() -> None:
    assert await Router(CONFIG, "vtpass").candidates("mtn", 100) == ["vtpass", "clubkonnect", "stub"]
    assert await Router(CONFIG, "vtpass", AlwaysUsable()).candidates("mtn", 1, exclude={"vtpass"}) == [
        "clubkonnect",
        "stub",
    ]
    health = Health({"vtpass"})
    assert await Router(CONFIG, "vtpass", health).candidates("mtn", 5_000) == ["clubkonnect", "stub"]
    assert ("vtpass", 5_000) in health.asked
    assert await Router(CONFIG, "vtpass", health).candidates("mtn", 1, exclude={"clubkonnect"}) == ["stub"]


async def test_health_never_refuses_a_sale_but_failover_needs_a_usable_provider() -> None:
    router = Router(CONFIG, "vtpass", Health({"vtpass", "clubkonnect", "stub"}))
    assert await router.candidates("mtn", 1) == ["vtpass", "clubkonnect", "stub"]  # opening: try anyway
    assert await router.candidates("mtn", 1, exclude={"vtpass"}) == []  # failover: none -> fail + refund


async def test_a_staff_order_replaces_the_configured_one() -> None:
    router = Router(CONFIG, "vtpass", Health(set(), order=["ClubKonnect", "vtpass"]))
    assert await router.candidates("mtn", 1) == ["clubkonnect", "vtpass"]
    assert router.first("mtn") == "vtpass"  # the configured first (plans, meter checks)


# -- which answers may fail over ------------------------------------------------------------------------
@pytest.mark.parametrize("code", sorted(FAILURE_CODES))
def test_every_vtpass_definite_failure_code_placed_nothing(code: str) -> None:
    result = map_vtpass_body({"code": code, "response_description": "X"})
    assert (result.outcome, result.nothing_placed, result.retry_later) == (
        Outcome.FAILED,
        True,
        code == "019",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"code": "000", "content": {"transactions": {"status": "failed"}}},  # placed, then failed
        {"code": "099"},
        {"code": "000", "content": {"transactions": {"status": "pending"}}},
        {"code": "040"},
        {"code": "777"},
    ],
)
def test_other_vtpass_answers_never_fail_over(body: dict) -> None:
    assert map_vtpass_body(body).nothing_placed is False


def test_vtpass_015_places_nothing_only_after_the_grace() -> None:
    now = datetime.now(UTC)
    early = map_vtpass_body({"code": "015"}, requery=True, paid_at=now - timedelta(seconds=5), now=now)
    late = map_vtpass_body({"code": "015"}, requery=True, paid_at=now - timedelta(seconds=31), now=now)
    assert (early.outcome, early.nothing_placed) == (Outcome.PENDING, False)
    assert (late.outcome, late.nothing_placed) == (Outcome.FAILED, True)


@pytest.mark.parametrize(
    ("body", "placed_nothing"),
    [
        ({"statuscode": "417", "status": "INSUFFICIENT_BALANCE"}, True),
        ({"statuscode": "409", "status": "INVALID_RECIPIENT"}, True),
        ({"statuscode": "506", "status": "ORDER_CANCELLED"}, False),  # placed, then cancelled
        ({"statuscode": "100", "status": "ORDER_RECEIVED"}, False),
        ({"statuscode": "200", "status": "ORDER_COMPLETED"}, False),
    ],
)
def test_clubkonnect_only_4xx_placed_nothing(body: dict, placed_nothing: bool) -> None:
    assert map_body(body).nothing_placed is placed_nothing


def test_clubkonnect_unknown_request_id_places_nothing_only_after_the_grace() -> None:
    now = datetime.now(UTC)
    body = {"status": "INVALID_REQUESTID"}
    early = map_body(body, requery=True, paid_at=now - timedelta(seconds=5), now=now)
    late = map_body(body, requery=True, paid_at=now - timedelta(seconds=31), now=now)
    assert (early.outcome, early.nothing_placed) == (Outcome.PENDING, False)
    assert (late.outcome, late.nothing_placed) == (Outcome.FAILED, True)


async def test_choose_asks_health_lazily_and_never_past_the_chosen_provider() -> None:
    """A True while half-open is the provider's one probe: it must be spent only on the provider called."""
    health = Health({"vtpass"})
    taken: list[str] = []

    async def anyone(slug: str) -> bool:
        taken.append(slug)
        return True

    assert await Router(CONFIG, "vtpass", health).choose("mtn", 700, can_take=anyone) == "clubkonnect"
    assert [slug for slug, _ in health.asked] == ["vtpass", "clubkonnect"]  # never "stub"
    health.asked.clear()

    async def not_clubkonnect(slug: str) -> bool:
        return slug != "clubkonnect"  # e.g. it does not sell this plan: health is not even asked

    assert await Router(CONFIG, "vtpass", health).choose("mtn", 1, can_take=not_clubkonnect) == "stub"
    assert [slug for slug, _ in health.asked] == ["vtpass", "stub"]


async def test_choose_falls_back_when_opening_and_gives_up_at_failover() -> None:
    router = Router(CONFIG, "vtpass", Health({"vtpass", "clubkonnect", "stub"}))

    async def anyone(slug: str) -> bool:
        return True

    async def only_stub(slug: str) -> bool:
        return slug == "stub"

    assert await router.choose("mtn", 1, can_take=anyone) == "vtpass"  # opening: the first that can take it
    assert await router.choose("mtn", 1, can_take=only_stub) == "stub"
    assert await router.choose("mtn", 1, can_take=anyone, exclude={"vtpass"}) is None  # failover: none usable
