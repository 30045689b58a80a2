"""`vtu` command groups added to Litestar's CLI (which already provides run, database, workers, ...)."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from click import Command, Group


@click.group(name="users", help="Manage user accounts.")
def users_group() -> None:
    pass


@users_group.command(name="create", help="Create a user (customer by default).")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--phone", default=None, help="Nigerian mobile number (optional).")
@click.option("--name", "full_name", default="", help="Full name (optional).")
@click.option("--staff", is_flag=True, default=False)
@click.option("--superuser", is_flag=True, default=False, help="An admin (same as --role admin).")
@click.option(
    "--role",
    "staff_role",
    type=click.Choice(["support", "operations", "finance", "admin"]),
    default=None,
    help="A staff member with this role (--staff alone means operations).",
)
@click.option("--tier", type=click.Choice(["customer", "reseller"]), default="customer")
@click.option("--referrer", default=None, help="Referral code of the user who referred this one.")
def users_create(
    email: str,
    password: str,
    phone: str | None,
    full_name: str,
    staff: bool,
    superuser: bool,
    staff_role: str | None,
    tier: str,
    referrer: str | None,
) -> None:
    from app.accounts.services import FormErrors, SignUp, UserService
    from app.config.settings import get_settings
    from app.core.db import standalone_session

    async def run() -> str:
        async with standalone_session(get_settings()) as session:
            user = await UserService(session=session).register(
                SignUp(
                    email=email,
                    password=password,
                    full_name=full_name,
                    phone=phone,
                    referral_code=referrer,
                    tier=tier,
                    is_staff=staff,
                    is_superuser=superuser,
                    staff_role=staff_role,
                    email_verified=True,  # an operator vouches for the address
                )
            )
            role = f", role {user.staff_role}" if user.staff_role else ""
            return (
                f"created {user.email} (id {user.id}, tier {user.tier}{role}, "
                f"referral code {user.referral_code})"
            )

    try:
        click.echo(asyncio.run(run()))
    except FormErrors as exc:
        for field, message in exc.fields.items():
            click.echo(f"error: {field}: {message}", err=True)
        sys.exit(1)


def _add_account_commands() -> None:
    from app.accounts.cli import users_suspend, users_unsuspend

    users_group.add_command(users_suspend)
    users_group.add_command(users_unsuspend)


_add_account_commands()  # `vtu users suspend|unsuspend` (app/accounts/cli.py)


@click.group(
    name="services", help="The embedded PostgreSQL and Redis used when DATABASE_URL/REDIS_URL are unset."
)
def services_group() -> None:
    pass


@services_group.command(name="start")
def services_start() -> None:
    import os

    from app.core.embedded import ensure_services

    urls = ensure_services()  # exported: the embedded database's application and owner URLs, when used
    click.echo(f"DATABASE_URL={os.environ['DATABASE_URL']}")
    if owner := os.environ.get("DATABASE_OWNER_URL"):
        click.echo(f"DATABASE_OWNER_URL={owner}")
    click.echo(f"REDIS_URL={urls.redis_url}")


@services_group.command(name="stop")
def services_stop() -> None:
    from app.core.embedded import stop_services

    stopped = stop_services()
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@services_group.command(name="status")
def services_status() -> None:
    from app.core.embedded import postgres_running, redis_running

    click.echo(f"postgres: {'running' if postgres_running() else 'stopped'}")
    click.echo(f"redis: {'running' if redis_running() else 'stopped'}")


# Command groups owned by the domains: CLI name -> "module:attribute" (each module imported only when that
# command runs, or when Litestar's CLI lists them all). Commands in FAST_COMMANDS (app/__main__.py) start
# without Litestar and without building the app.
DOMAIN_COMMANDS: dict[str, str] = {
    "dev": "app.core.devtools:dev_command",
    "seed": "app.core.devtools:seed_command",
    "dev-transfer": "app.core.devtools:dev_transfer_command",
    "ledger": "app.ledger.cli:ledger_group",
    "funding": "app.payments.cli:funding_group",
    "plans": "app.vtu.cli:plans_group",
    "purchases": "app.vtu.cli:purchases_group",
    "apikeys": "app.accounts.cli:apikeys_group",  # reseller API keys
    "backup": "app.core.backup:backup_group",  # vtu backup create|restore
    "keys": "app.core.keys_cli:keys_group",  # vtu keys generate|rotate (DATA_ENCRYPTION_KEYS)
}


def load_command(name: str) -> Command:
    """Our command `name` (`users`, `funding`, `dev-transfer`, ...), importing only the module defining it."""
    if name == users_group.name:
        return users_group
    if name == services_group.name:
        return services_group
    import importlib

    module, _, attr = DOMAIN_COMMANDS[name].partition(":")
    command: Command = getattr(importlib.import_module(module), attr)
    return command


def register_commands(cli: Group) -> None:
    commands = [load_command(name) for name in ("users", "services", *DOMAIN_COMMANDS)]
    for command in commands:
        if command.name not in cli.commands:
            cli.add_command(command)
    from app.core.serve import run_command

    # Litestar's `run` replaced by ours: any number of web processes, graceful shutdown (app/core/serve.py)
    cli.add_command(run_command)
