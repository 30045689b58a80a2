"""`vtu funding ...` commands (operators)."""

from __future__ import annotations

import asyncio
import sys

import click


@click.group(name="funding", help="Wallet funding by bank transfer (Monnify).")
def funding_group() -> None:
    pass


@funding_group.command(
    name="assign",
    help="Credit an unmatched transfer to a customer, once (ledger key monnify:<REF>, the webhook's own).",
)
@click.option("--transaction-reference", "reference", required=True, help="Monnify's transactionReference.")
@click.option("--email", required=True, help="The customer the transfer belongs to.")
@click.option(
    "--reason", required=True, help="How you know it is theirs (kept with the event and the audit log)."
)
def assign_command(reference: str, email: str, reason: str) -> None:
    from app.audit.service import Actor
    from app.config.settings import get_settings
    from app.core.db import make_engine, make_sessionmaker
    from app.payments.assign import (
        AssignRefused,
        assign_unmatched,
        clean_reason,
        event_by_reference,
        user_by_email,
    )
    from app.payments.monnify_client import MonnifyClient

    async def run() -> str:
        settings = get_settings()
        clean_reason(reason)  # a missing reason is refused before anything is looked up
        engine = make_engine(settings, pool_size=1, max_overflow=0)
        try:
            sessionmaker = make_sessionmaker(engine)
            async with sessionmaker() as session:
                event_id = await event_by_reference(session, reference)
                user = await user_by_email(session, email)
                user_id = user.id if user is not None else None
            if event_id is None:
                raise AssignRefused(f"no transfer with transaction reference {reference.strip()!r}")
            if user_id is None:
                raise AssignRefused(f"no user with e-mail {email.strip()!r}")
            async with MonnifyClient(settings) as client:
                assigned = await assign_unmatched(
                    sessionmaker, settings, client, event_id=event_id, user_id=user_id, actor=Actor.cli(),
                    reason=reason,
                )  # fmt: skip
            return assigned.line()
        finally:
            await engine.dispose()

    try:
        click.echo(asyncio.run(run()))
    except AssignRefused as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
