"""`vtu apikeys create|list|revoke`: reseller API keys from the command line; `vtu users suspend|unsuspend`
(added to the `users` group by app/cli.py)."""

from __future__ import annotations

import asyncio
import sys

import click


@click.group(name="apikeys", help="Reseller API keys.")
def apikeys_group() -> None:
    pass


@apikeys_group.command(name="create", help="Create an API key; prints the key alone on the last line.")
@click.option("--email", required=True, help="The user who owns the key.")
@click.option("--name", default="", help="A label for the key (e.g. 'shop server').")
@click.option("--allowed-ips", default="", help="Optional comma-separated IPs/networks allowed to use it.")
@click.option("--callback-url", default="", help="Optional URL for purchase-completion callbacks.")
def apikeys_create(email: str, name: str, allowed_ips: str, callback_url: str) -> None:
    from sqlalchemy import select

    from app.accounts.apikeys import TIER_REFUSED, ApiKeyService, NewApiKey
    from app.accounts.models import User
    from app.accounts.services import FormErrors
    from app.config.settings import get_settings
    from app.core.db import standalone_session

    settings = get_settings()

    async def run() -> NewApiKey | None:
        async with standalone_session(settings) as session:
            user = (
                await session.execute(select(User).where(User.email == email.strip().lower()))
            ).scalar_one_or_none()
            if user is None:
                return None
            keys = ApiKeyService(session, is_prod=settings.is_prod, allowed_tiers=settings.api_key_tiers)
            created = await keys.create(user, name=name, allowed_ips=allowed_ips, callback_url=callback_url)
            await session.commit()
            return created

    try:
        created = asyncio.run(run())
    except FormErrors as exc:
        for field, message in exc.fields.items():
            click.echo(f"error: {field}: {message}", err=True)
        if exc.fields.get("__all__") == TIER_REFUSED:
            tiers = ", ".join(settings.api_key_tiers)
            click.echo(f"API_KEY_TIERS allows: {tiers}; change the user's tier first.", err=True)
        sys.exit(1)
    if created is None:
        click.echo(f"error: no user with e-mail {email}", err=True)
        sys.exit(1)
    key = created.key
    click.echo(f"created API key {key.prefix} ({key.name!r}, id {key.id}) for {email.strip().lower()}")
    click.echo(f"callback signing secret (shown once): {created.callback_secret}")
    click.echo("the key is shown once; store it now:")
    click.echo(created.secret)


@apikeys_group.command(name="list", help="List a user's API keys (never the secrets).")
@click.option("--email", required=True)
def apikeys_list(email: str) -> None:
    from sqlalchemy import select

    from app.accounts.apikeys import ApiKeyService
    from app.accounts.models import User
    from app.config.settings import get_settings
    from app.core.db import standalone_session

    async def run() -> list[str] | None:
        async with standalone_session(get_settings()) as session:
            user = (
                await session.execute(select(User).where(User.email == email.strip().lower()))
            ).scalar_one_or_none()
            if user is None:
                return None
            lines = []
            for key in await ApiKeyService(session).list_for_user(user.id, revoked_limit=50):
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "active"
                used = f"{key.last_used_at:%Y-%m-%d %H:%M}Z" if key.last_used_at else "never"
                lines.append(f"{key.id}  {key.prefix}  {state}  last used {used}  {key.name}")
            return lines

    lines = asyncio.run(run())
    if lines is None:
        click.echo(f"error: no user with e-mail {email}", err=True)
        sys.exit(1)
    click.echo("\n".join(lines) if lines else "no keys")


@apikeys_group.command(name="revoke", help="Revoke a key by id or prefix (staff / incident response).")
@click.argument("key")
@click.option("--by", "by", default="cli", help="Who revokes it (recorded on the key).")
def apikeys_revoke(key: str, by: str) -> None:
    from app.accounts.apikeys import ApiKeyService
    from app.config.settings import get_settings
    from app.core.db import standalone_session

    async def run() -> str:
        async with standalone_session(get_settings()) as session:
            keys = ApiKeyService(session)
            found = await keys.find(key)
            if found is None:
                return "missing"
            done = await keys.revoke(found.id, by=f"cli:{by}")
            await session.commit()
            return f"revoked {found.prefix} ({found.id})" if done else f"{found.prefix} was already revoked"

    outcome = asyncio.run(run())
    if outcome == "missing":
        click.echo(f"error: no API key with id or prefix {key!r}", err=True)
        sys.exit(1)
    click.echo(outcome)


# -- suspension: the console's service functions (app.accounts.suspension), recorded as the operator -------
def _suspension(email: str, reason: str | None, *, lift: bool) -> tuple[str, str | None]:
    """(the one-line result, a warning) or SystemExit(1) with the error on stderr."""
    from sqlalchemy import select

    from app.accounts import suspension
    from app.accounts.models import User
    from app.accounts.sessions import session_store
    from app.audit.service import Actor
    from app.config.settings import get_settings
    from app.core.db import standalone_session
    from app.core.redis import make_redis

    settings = get_settings()
    address = email.strip().lower()

    async def run() -> tuple[str, str | None]:
        async with standalone_session(settings) as session:
            user = (await session.execute(select(User).where(User.email == address))).scalar_one_or_none()
            if user is None:
                raise suspension.Refused(f"no user with e-mail {address}")
            if lift:
                outcome = await suspension.unsuspend(session, Actor.cli(), user.id, reason)
            else:
                outcome = await suspension.suspend(session, Actor.cli(), user.id, reason)
            await session.commit()
            user_id = user.id
        warning = None
        if outcome.changed and not lift:
            redis = make_redis(settings.redis_url)
            try:
                ended = await suspension.sign_out(redis, session_store(redis), user_id)
            except Exception as exc:  # committed already; the web refuses their sessions anyway
                warning = f"warning: could not delete their web sessions ({exc}); they are refused anyway"
            else:
                outcome = suspension.Outcome(True, f"{outcome.message} Web sessions ended: {ended}.")
            finally:
                await redis.aclose()
        return outcome.message, warning

    try:
        return asyncio.run(run())
    except suspension.Refused as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


@click.command(name="suspend", help="Suspend an account: no log-in, web, API or new purchases (audited).")
@click.option("--email", required=True, help="The account's e-mail.")
@click.option("--reason", default="", help="Why (required; kept with the account and in the audit log).")
def users_suspend(email: str, reason: str) -> None:
    if not reason.strip():
        click.echo("error: --reason is required: say why the account is suspended", err=True)
        sys.exit(1)
    message, warning = _suspension(email, reason, lift=False)
    if warning:
        click.echo(warning, err=True)
    click.echo(message)


@click.command(name="unsuspend", help="Lift an account's suspension (audited).")
@click.option("--email", required=True, help="The account's e-mail.")
@click.option("--reason", default="", help="Why (optional; kept in the audit log).")
def users_unsuspend(email: str, reason: str) -> None:
    message, warning = _suspension(email, reason or None, lift=True)
    if warning:
        click.echo(warning, err=True)
    click.echo(message)


__all__ = ["apikeys_group", "users_suspend", "users_unsuspend"]
