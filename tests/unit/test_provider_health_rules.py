"""What counts as a breaker error, and how a staff-typed provider order is read and validated."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from app.config.settings import Settings
from app.vtu.provider_health import call_failed, result_failed
from app.vtu.provider_routes import RouteError, parse_order, validate_order
from app.vtu.providers import CustomerVerificationFailed, DuplicatePayAttempt, Outcome, ProviderError
from app.vtu.providers.base import ProviderResult


def result(outcome: Outcome, code: str | None) -> ProviderResult:
    return ProviderResult(outcome=outcome, code=code, message="m")


def test_only_answers_without_a_code_are_errors() -> None:
    assert result_failed(result(Outcome.PENDING, None))  # timeout, 5xx, unreadable body
    assert not result_failed(result(Outcome.PENDING, "099"))  # processing: an answer
    assert not result_failed(result(Outcome.FAILED, "016"))  # a definite "no"
    assert not result_failed(result(Outcome.FAILED, "018"))  # low wallet: an answer too
    assert not result_failed(result(Outcome.DELIVERED, "000"))


def test_exceptions() -> None:
    assert call_failed(ProviderError("VTpass /balance unreachable (timed out)")) is True
    assert call_failed(ProviderError("invalid credentials", code="087")) is False
    assert call_failed(CustomerVerificationFailed("wrong meter", code="011")) is False
    assert call_failed(DuplicatePayAttempt("second /pay")) is None
    assert call_failed(TimeoutError()) is True
    assert call_failed(asyncio.CancelledError()) is True  # the /pay cut-off
    assert call_failed(KeyboardInterrupt()) is None


def test_parse_and_validate_order() -> None:
    settings = Settings()
    assert parse_order(" VTpass,clubkonnect ") == ["vtpass", "clubkonnect"]
    assert parse_order("vtpass clubkonnect") == ["vtpass", "clubkonnect"]
    assert validate_order("mtn", ["vtpass", "clubkonnect"], settings) == ["vtpass", "clubkonnect"]
    assert validate_order("mtn", ["stub"], settings) == ["stub"]
    for service_id, slugs, message in (
        ("mtn", [], "at least one"),
        ("mtn", ["vtpass", "vtpass"], "more than once"),
        ("mtn", ["paystack"], "Unknown provider 'paystack'"),
        ("nope", ["vtpass"], "Unknown service"),
    ):
        with pytest.raises(RouteError, match=message):
            validate_order(service_id, slugs, settings)
    prod = dataclasses.replace(settings, app_env="prod")
    with pytest.raises(RouteError, match="Unknown provider 'stub'"):
        validate_order("mtn", ["vtpass", "stub"], prod)


def test_the_probe_cron_is_scheduled_every_minute_with_a_timeout() -> None:
    from workers.settings import CRON, TASKS

    assert "app.vtu.tasks:probe_providers" in TASKS
    assert ("app.vtu.tasks:probe_providers", "* * * * *", 50) in CRON
