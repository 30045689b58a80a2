"""Callbacks other domains register to run inside the sign-up transaction (e.g. open the wallet).

Kept as a plain list so `accounts` does not import the domains that depend on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

UserCreatedHook = Callable[[Any, Any], Awaitable[None]]
USER_CREATED: list[UserCreatedHook] = []


def on_user_created(hook: UserCreatedHook) -> UserCreatedHook:
    if hook not in USER_CREATED:
        USER_CREATED.append(hook)
    return hook
