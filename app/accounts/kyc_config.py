"""KYC tier limits (`KYC_LIMITS`): what a customer may spend per purchase and per Lagos day at each KYC level
(docs/architecture.md, "KYC"). Pure parsing, no imports from the app, so app/config/settings.py can use it.

Format: `LEVEL=single:KOBO,daily:KOBO;...` for levels 0, 1 and 2, every level given, amounts in kobo,
0 = no limit. Example (the default outside APP_ENV=test):
    0=single:500000,daily:2000000;1=single:5000000,daily:20000000;2=single:0,daily:0
"""

from __future__ import annotations

from dataclasses import dataclass

KYC_LEVELS = (0, 1, 2)
DEFAULT_KYC_LIMITS = "0=single:500000,daily:2000000;1=single:5000000,daily:20000000;2=single:0,daily:0"


@dataclass(frozen=True, slots=True)
class LevelLimits:
    level: int
    single_kobo: int  # the most one purchase may cost (0: no limit)
    daily_kobo: int  # the most purchases may cost in one Lagos day, every channel (0: no limit)


def parse_kyc_limits(raw: str, problems: list[str]) -> tuple[LevelLimits, ...]:
    """The limits of levels 0, 1, 2 in order; () when `raw` is empty (no KYC limits at all). A malformed
    value appends one clear problem per mistake to `problems` and gives ()."""
    raw = raw.strip()
    if not raw:
        return ()
    found: dict[int, LevelLimits] = {}
    before = len(problems)
    for part in (p.strip() for p in raw.split(";")):
        if not part:
            continue
        level_text, sep, rest = part.partition("=")
        level_text = level_text.strip()
        if (
            not sep
            or not level_text.isascii()
            or not level_text.isdigit()
            or int(level_text) not in KYC_LEVELS
        ):
            problems.append(f"KYC_LIMITS: {part[:40]!r} must start with a level 0, 1 or 2 and '='")
            continue
        level = int(level_text)
        if level in found:
            problems.append(f"KYC_LIMITS: level {level} is given twice")
            continue
        amounts: dict[str, int] = {}
        for item in (i.strip() for i in rest.split(",")):
            name, colon, value = item.partition(":")
            name, value = name.strip(), value.strip()
            if not colon or name not in ("single", "daily") or name in amounts:
                problems.append(
                    f"KYC_LIMITS: level {level}: {item[:40]!r} must be single:KOBO or daily:KOBO, once each"
                )
                continue
            if not value.isascii() or not value.isdigit() or len(value) > 15:
                problems.append(
                    f"KYC_LIMITS: level {level}: {name} must be whole kobo, 0 = no limit (got {value[:20]!r})"
                )
                continue
            amounts[name] = int(value)
        if set(amounts) != {"single", "daily"}:
            if len(problems) == before:
                problems.append(f"KYC_LIMITS: level {level} needs both single:KOBO and daily:KOBO")
            continue
        found[level] = LevelLimits(level, amounts["single"], amounts["daily"])
    missing = [str(level) for level in KYC_LEVELS if level not in found]
    if missing and len(problems) == before:
        problems.append(f"KYC_LIMITS must give every level 0, 1 and 2 (missing {', '.join(missing)})")
    if len(problems) != before:
        return ()
    return tuple(found[level] for level in KYC_LEVELS)


__all__ = ["DEFAULT_KYC_LIMITS", "KYC_LEVELS", "LevelLimits", "parse_kyc_limits"]
