"""Other domains add demo data for `vtu seed` / `just dev` here (e.g. fund the demo wallets, sync plans)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

AFTER_SEED: list[Callable[[Any], Awaitable[None]]] = []
