"""Referral rules and configuration, without a database."""

from __future__ import annotations

import uuid

import pytest

from app.referrals import rules
from app.referrals.config import (
    CAP_PER_REFERRED_KOBO,
    FUNDING_BONUS_KOBO,
    FUNDING_MIN_KOBO,
    MARGIN_BPS,
    ReferralConfig,
    ReferralConfigError,
    config_problems,
    current_config,
    load_referral_config,
    override,
)
from app.referrals.controllers import how_it_works, share_links

REFERRED = uuid.uuid4()
REFERRER = uuid.uuid4()
RULES = ReferralConfig(
    funding_bonus_kobo=10_000, funding_min_kobo=100_000, margin_bps=1_000, cap_per_referred_kobo=100_000
)


def link(**over: object) -> rules.Link:
    values: dict[str, object] = {
        "referred_id": REFERRED,
        "referrer_id": REFERRER,
        "referrer_active": True,
        "referrer_referred_by": None,
        "earned_kobo": 0,
    }
    values.update(over)
    return rules.Link(**values)  # type: ignore[arg-type]


def test_defaults_are_a_sane_nigerian_programme() -> None:
    config = load_referral_config({})
    assert config == ReferralConfig()
    assert (config.funding_bonus_kobo, config.funding_min_kobo) == (FUNDING_BONUS_KOBO, FUNDING_MIN_KOBO)
    assert (FUNDING_BONUS_KOBO, FUNDING_MIN_KOBO, MARGIN_BPS, CAP_PER_REFERRED_KOBO) == (
        10_000,
        100_000,
        1_000,
        100_000,
    )
    assert config.enabled


def test_environment_values_are_read() -> None:
    config = load_referral_config(
        {
            "REFERRAL_FUNDING_BONUS_KOBO": "20000",
            "REFERRAL_FUNDING_MIN_KOBO": "500000",
            "REFERRAL_MARGIN_BPS": "0",
            "REFERRAL_CAP_PER_REFERRED_KOBO": "0",
            "REFERRAL_LINK_BASE_URL": "https://topup.ng/",
        }
    )
    assert config == ReferralConfig(20_000, 500_000, 0, 0, "https://topup.ng")
    assert config.headroom(10**9) is None  # 0 = no cap
    assert not load_referral_config({"REFERRAL_FUNDING_BONUS_KOBO": "0", "REFERRAL_MARGIN_BPS": "0"}).enabled


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REFERRAL_FUNDING_BONUS_KOBO", "100.50"),
        ("REFERRAL_FUNDING_MIN_KOBO", "-1"),
        ("REFERRAL_MARGIN_BPS", "10001"),
        ("REFERRAL_CAP_PER_REFERRED_KOBO", "1e6"),
        ("REFERRAL_LINK_BASE_URL", "topup.ng"),
    ],
)
def test_malformed_values_are_refused_at_start_up(name: str, value: str) -> None:
    with pytest.raises(ReferralConfigError, match=name):
        load_referral_config({name: value})
    [problem] = config_problems({name: value})
    assert name in problem


def test_override_swaps_the_rules_and_restores_them() -> None:
    before = current_config()
    with override(RULES):
        assert current_config() is RULES
    assert current_config() is before


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"referrer_id": None}, rules.NO_REFERRER),
        ({"referrer_id": REFERRED}, rules.SELF_REFERRAL),
        ({"referrer_active": False}, rules.REFERRER_INACTIVE),
        ({"referrer_referred_by": REFERRED}, rules.REFERRAL_LOOP),
    ],
)
def test_who_may_not_earn(over: dict[str, object], reason: str) -> None:
    assert rules.refusal(link(**over)) == reason
    assert rules.funding_bonus(RULES, link(**over), 500_000) == rules.Decision(0, reason)
    assert rules.margin_share(RULES, link(**over), 10_000) == rules.Decision(0, reason)


def test_a_referrer_who_was_referred_by_someone_else_still_earns_one_level() -> None:
    assert rules.refusal(link(referrer_referred_by=uuid.uuid4())) == ""


def test_funding_bonus_needs_the_minimum() -> None:
    assert rules.funding_bonus(RULES, link(), 99_999) == rules.Decision(0, rules.NOTHING_TO_SHARE)
    assert rules.funding_bonus(RULES, link(), 100_000).amount_kobo == 10_000
    assert rules.funding_bonus(RULES, link(), 9_000_000).amount_kobo == 10_000
    assert not rules.funding_qualifies(ReferralConfig(funding_bonus_kobo=0), 10**9)
    assert rules.funding_qualifies(ReferralConfig(funding_min_kobo=0), 1)
    assert not rules.funding_qualifies(ReferralConfig(funding_min_kobo=0), 0)


def test_margin_share_rounds_down_and_ignores_losses() -> None:
    assert rules.margin_share_of(RULES, 3_000) == 300
    assert rules.margin_share_of(RULES, 9) == 0  # 0.9 kobo
    assert rules.margin_share_of(RULES, 19) == 1
    assert rules.margin_share_of(RULES, 0) == 0
    assert rules.margin_share_of(RULES, -2_000) == 0  # a reseller discount is not a margin
    assert rules.margin_share_of(ReferralConfig(margin_bps=0), 3_000) == 0
    assert rules.margin_share(RULES, link(), 9) == rules.Decision(0, rules.NOTHING_TO_SHARE)


def test_the_cap_counts_everything_already_earned() -> None:
    assert rules.margin_share(RULES, link(earned_kobo=99_800), 3_000).amount_kobo == 200
    assert rules.margin_share(RULES, link(earned_kobo=100_000), 3_000) == rules.Decision(0, rules.CAP_REACHED)
    assert rules.funding_bonus(RULES, link(earned_kobo=95_000), 100_000).amount_kobo == 5_000
    uncapped = ReferralConfig(cap_per_referred_kobo=0)
    assert rules.margin_share(uncapped, link(earned_kobo=10**12), 3_000).amount_kobo == 300


@pytest.mark.parametrize(
    ("bonus", "balance", "taken", "uncollected"),
    [(300, 5_000, 300, 0), (300, 300, 300, 0), (300, 100, 100, 200), (300, 0, 0, 300)],
)
def test_clawback_never_takes_more_than_the_wallet_holds(
    bonus: int, balance: int, taken: int, uncollected: int
) -> None:
    assert rules.clawback(bonus, balance) == rules.Clawback(taken, uncollected)


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("adaeze@gmail.com", "ad***@gmail.com"),
        ("bo@yahoo.com", "b***@yahoo.com"),
        ("a@b.ng", "a***@b.ng"),
        ("abc@x.ng", "a***@x.ng"),
    ],
)
def test_emails_are_masked(email: str, masked: str) -> None:
    assert rules.mask_email(email) == masked


def test_page_text_follows_the_rules() -> None:
    lines = how_it_works(RULES)
    assert (
        lines[0]
        == "Get ₦100 when a friend you invited funds their wallet with ₦1,000 or more for the first time."
    )
    assert "Up to ₦1,000 per friend" in lines[-1]
    assert how_it_works(ReferralConfig(funding_bonus_kobo=0, margin_bps=0)) == []
    assert len(how_it_works(ReferralConfig(funding_bonus_kobo=0))) == 2


def test_share_links_are_encoded() -> None:
    share = share_links("https://topup.ng/signup?ref=AB12CD34", "TopUp NG")
    assert share["whatsapp"].startswith("https://wa.me/?text=")
    assert "https%3A%2F%2Ftopup.ng%2Fsignup%3Fref%3DAB12CD34" in share["whatsapp"]
    assert " " not in share["sms"] and share["email"].startswith("mailto:?subject=Join%20me")
