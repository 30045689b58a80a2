"""Referral bonus rules that operators tune without a deploy (environment, read once).

Follows app/vtu/config.py: `load_referral_config(env)` parses, `get_referral_config()` caches the process's
copy. The bonus listeners run deep inside money transactions where no config can be passed in, so they read
`current_config()`; tests swap the rules with `override(config)` instead of patching the environment.

Defaults (a Nigerian VTU site): ₦100 to the referrer when the friend's first bank transfer of at least
₦1,000 arrives, plus 10% of the platform's margin on each of the friend's delivered purchases, at most
₦1,000 in total per referred friend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

FUNDING_BONUS_KOBO = 10_000  # ₦100
FUNDING_MIN_KOBO = 100_000  # ₦1,000
MARGIN_BPS = 1_000  # 10% of each delivered purchase's positive margin
CAP_PER_REFERRED_KOBO = 100_000  # ₦1,000 per referred user, all bonuses together


class ReferralConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ReferralConfig:
    # Paid once per referred user, on their first bank transfer of at least `funding_min_kobo` (0 = off).
    funding_bonus_kobo: int = FUNDING_BONUS_KOBO
    funding_min_kobo: int = FUNDING_MIN_KOBO
    # Share of each delivered purchase's margin (price charged - provider cost), in basis points (0 = off).
    margin_bps: int = MARGIN_BPS
    # Most the referrer can earn from one referred user, net of claw-backs (0 = no cap).
    cap_per_referred_kobo: int = CAP_PER_REFERRED_KOBO
    # Scheme + host of the referral link on the page (e.g. https://topup.ng); empty = the request's own.
    link_base_url: str = ""

    @property
    def enabled(self) -> bool:
        return self.funding_bonus_kobo > 0 or self.margin_bps > 0

    def headroom(self, earned_kobo: int) -> int | None:
        """What may still be paid for a referred user who has earned their referrer `earned_kobo`
        (None = unlimited)."""
        if self.cap_per_referred_kobo <= 0:
            return None
        return max(0, self.cap_per_referred_kobo - earned_kobo)


def _kobo(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ReferralConfigError(f"{name} must be a whole number of kobo, 0 or more (got {raw!r})")
    return int(raw)


def load_referral_config(env: Mapping[str, str] | None = None) -> ReferralConfig:
    source = os.environ if env is None else env
    margin_bps = _kobo(source, "REFERRAL_MARGIN_BPS", MARGIN_BPS)
    if margin_bps > 10_000:
        raise ReferralConfigError(f"REFERRAL_MARGIN_BPS must be basis points 0-10000 (got {margin_bps})")
    base = (source.get("REFERRAL_LINK_BASE_URL") or "").strip().rstrip("/")
    if base and not base.startswith(("https://", "http://")):
        raise ReferralConfigError(f"REFERRAL_LINK_BASE_URL must start with https:// (got {base!r})")
    return ReferralConfig(
        funding_bonus_kobo=_kobo(source, "REFERRAL_FUNDING_BONUS_KOBO", FUNDING_BONUS_KOBO),
        funding_min_kobo=_kobo(source, "REFERRAL_FUNDING_MIN_KOBO", FUNDING_MIN_KOBO),
        margin_bps=margin_bps,
        cap_per_referred_kobo=_kobo(source, "REFERRAL_CAP_PER_REFERRED_KOBO", CAP_PER_REFERRED_KOBO),
        link_base_url=base,
    )


@lru_cache(maxsize=1)
def get_referral_config() -> ReferralConfig:
    return load_referral_config()


_override: ReferralConfig | None = None


def current_config() -> ReferralConfig:
    """The rules in force: a test's override, else the environment's."""
    return _override if _override is not None else get_referral_config()


@contextmanager
def override(config: ReferralConfig) -> Iterator[ReferralConfig]:
    """Use `config` for every bonus decision in this process until the block ends (tests, benchmarks)."""
    global _override
    previous, _override = _override, config
    try:
        yield config
    finally:
        _override = previous


__all__ = [
    "ReferralConfig",
    "ReferralConfigError",
    "config_problems",
    "current_config",
    "get_referral_config",
    "load_referral_config",
    "override",
]


def config_problems(env: Mapping[str, str] | None = None) -> list[str]:
    """Start-up check (app.config.settings.validate): a malformed REFERRAL_* value stops the process
    instead of surfacing inside a money transaction."""
    try:
        load_referral_config(env)
    except ReferralConfigError as exc:
        return [str(exc)]
    return []
