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


# Run by the web sign-up AFTER its commit, with (app state, user): hand follow-up work to the worker
# (e.g. reserving bank accounts) without waiting for a sweep. Failures are logged, never shown.
SignedUpHook = Callable[[Any, Any], Awaitable[None]]
USER_SIGNED_UP: list[SignedUpHook] = []


def on_user_signed_up(hook: SignedUpHook) -> SignedUpHook:
    if hook not in USER_SIGNED_UP:
        USER_SIGNED_UP.append(hook)
    return hook


# Modules that register hooks when imported, named here (not imported at the top) so `accounts` still does
# not depend on them, yet every entry point that signs a user up -- web, CLI, worker, tests -- runs every
# hook: services imports this module at the first sign-up, which imports these.
HOOK_MODULES: list[str] = ["app.ledger.accounts", "app.payments.hooks", "app.accounts.recovery"]


def _import_hook_modules() -> None:
    import importlib

    for module in HOOK_MODULES:
        importlib.import_module(module)


_import_hook_modules()
