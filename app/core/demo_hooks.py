"""Other domains add demo data for `vtu seed` / `just dev` here (e.g. fund the demo wallets, sync plans)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

AFTER_SEED: list[Callable[[Any], Awaitable[None]]] = []

# Modules that append their hooks to AFTER_SEED when imported; `load()` imports them (from `vtu seed`).
HOOK_MODULES: list[str] = ["app.referrals.demo", "app.vtu.demo"]


def load() -> None:
    import importlib

    for module in HOOK_MODULES:
        importlib.import_module(module)
